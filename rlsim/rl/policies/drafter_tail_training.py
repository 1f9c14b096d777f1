"""Drafter training on idle tail GPUs (TLT): speculation's acceptance rises over the steps.

Mechanism (TLT, "Taming the Long Tail", arXiv:2511.16665 -- the adaptive drafter is trained on
the rollout GPUs that sit idle while the long tail of a step's requests finishes; section and
figure numbers not checked here): the GPU-seconds an RL step's engines spend idle during its
generation are spent training the drafter, at no cost to the trainer.  The drafter's per-token
acceptance grows, saturating, with the training it has accumulated and loses it as the policy
drifts away (form and numbers assumed; TLT publishes no such curve):

    S_0 = prior_tail_gpu_s,   S_t = (1 - drift_per_step) x S_{t-1} + H_{t-1}
    a_t = a0 + (max_acceptance - a0) x (1 - exp(-S_t / saturation_gpu_s))

``prior_tail_gpu_s`` is the training accumulated before the simulated window (0: the window is
the start of RL training; a window after many steps at a harvest H has about H / drift_per_step,
the recursion's fixed point).  ``H_j`` = the tail GPU-seconds harvested in step j: over the window of its generation
(dispatch to last finished request), each engine's GPUs x (window - the engine's busy time in
it), from the simulated engines' own timelines (their busy segments).  Step t uses the steps
that had finished when it is dispatched (in a sync pipeline: all earlier ones; async: those
done).  ``a0`` is the drafter as shipped: the scenario's mean conditional rate over its k
positions unless given.  Each request of step t has its acceptance multiplied by ``a_t / a_model``
(``a_model`` that mean rate), so the engine's own heterogeneity and decay stay.

Relation to the scenario's drafter (``rl.drafter``): TLT replaces it.  The policy switches off
``online_training_every_steps`` (no drafter training on the trainer, so no extra trainer cost --
TLT's point) and ``acceptance_drift_per_step`` (the drift is this policy's own, in ``S_t``).
Not modelled: the tail GPUs' training throughput per GPU-second (folded into
``saturation_gpu_s``), the drafter weights' transfer to the engines, and the time an engine is
taken from serving to train (TLT trains only while an engine has nothing to serve).

Side effects per step (beside :data:`rlsim.rl.policies.seam.DATA_COLUMNS`):
``tail_train_gpu_s`` (H_t) and ``drafter_acceptance`` (a_t).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlsim.rl.policies.seam import PolicySeam

__all__ = ["DrafterTailTraining", "DrafterTailTrainingSeam", "tail_acceptance", "accumulated_gpu_s", "idle_gpu_s"]


class DrafterTailTraining(BaseModel):
    """``rl.policy`` of TLT's drafter training on idle tail GPUs (needs ``rollout.engine.speculative_config``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["drafter_tail_training"] = "drafter_tail_training"
    initial_acceptance: float | None = Field(default=None, gt=0, le=1, description="a0; None = the scenario's mean "
                                                                                 "conditional rate (the shipped drafter)")
    max_acceptance: float = Field(default=0.9, gt=0, le=1, description="per-token acceptance of a fully trained, "
                                                                       "current drafter (assumed)")
    saturation_gpu_s: float = Field(default=20_000.0, gt=0, description="accumulated tail GPU-seconds for 63 % of the "
                                                                         "gain (assumed)")
    drift_per_step: float = Field(default=0.05, ge=0, lt=1, description="share of the accumulated training the policy's "
                                                                        "drift undoes per step (assumed)")
    prior_tail_gpu_s: float = Field(default=0.0, ge=0, description="S_0: tail GPU-seconds of training before the "
                                                                   "simulated window (0 = the start of RL training)")


def accumulated_gpu_s(harvested_gpu_s: np.ndarray, drift_per_step: float, prior_gpu_s: float = 0.0) -> float:
    """``S_t`` from ``S_0 = prior_gpu_s`` and ``H_0 .. H_{t-1}`` (module docstring)."""
    s = float(prior_gpu_s)
    for h in np.asarray(harvested_gpu_s, dtype=float):
        s = (1.0 - drift_per_step) * s + float(h)
    return s


def tail_acceptance(cfg: DrafterTailTraining, a0: float, accumulated: float) -> float:
    """``a_t`` for ``S_t = accumulated`` GPU-seconds (module docstring)."""
    return a0 + (cfg.max_acceptance - a0) * (1.0 - math.exp(-float(accumulated) / cfg.saturation_gpu_s))


def idle_gpu_s(busy: list[np.ndarray], t0_s: float, t1_s: float, gpus_per_engine: int) -> float:
    """GPU-seconds idle in ``[t0_s, t1_s]``: per engine (``busy[e]``: (n, 2) busy intervals),
    ``gpus_per_engine`` x (window - busy time inside it)."""
    window = t1_s - t0_s
    idle = 0.0
    for iv in busy:
        iv = np.asarray(iv, dtype=float).reshape(-1, 2)
        inside = np.clip(np.minimum(iv[:, 1], t1_s) - np.maximum(iv[:, 0], t0_s), 0.0, None).sum()
        idle += window - float(inside)
    return gpus_per_engine * idle


class DrafterTailTrainingSeam(PolicySeam):
    name = "drafter_tail_training"
    feedback_columns = ("drafter_acceptance",)

    def __init__(self, cfg: DrafterTailTraining) -> None:
        self.cfg = cfg

    def scenario(self, sc, source: str | None = None):
        """``rl.drafter`` without its own online training or drift (TLT's drafter replaces them)."""
        d = sc.rl.drafter
        if d.online_training_every_steps is None and d.acceptance_drift_per_step == 0:
            return sc
        d = d.model_copy(update={"online_training_every_steps": None, "acceptance_drift_per_step": 0.0})
        return sc.model_copy(update={"rl": sc.rl.model_copy(update={"drafter": d})})

    def model_rate(self, res) -> float:
        """``a_model``: the scenario's mean conditional rate over its k positions."""
        spec = res.speculative
        return float(np.mean(spec.acceptance.conditional_rates(spec.num_speculative_tokens)))

    def step_acceptance(self, res, harvested_gpu_s: np.ndarray) -> tuple[float, dict]:
        """Multiplier ``a_t / a_model`` and ``{"drafter_acceptance": a_t}`` of a step dispatched
        after steps with harvests ``harvested_gpu_s`` (in step order)."""
        rate = self.model_rate(res)
        a0 = rate if self.cfg.initial_acceptance is None else self.cfg.initial_acceptance
        a = tail_acceptance(self.cfg, a0, accumulated_gpu_s(harvested_gpu_s, self.cfg.drift_per_step,
                                                                 self.cfg.prior_tail_gpu_s))
        return a / rate, {"drafter_acceptance": a}
