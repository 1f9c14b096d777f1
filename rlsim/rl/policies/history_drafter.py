"""History (suffix) drafter: drafts from earlier rollouts of the same prompt.

Mechanism (RhymeRL, "HistoSpec": rollouts of a prompt in successive epochs are similar, so
earlier responses serve as drafts; SPEC-RL reuses the previous epoch's trajectory as the draft;
DAS keeps a suffix tree of recent rollouts -- all 2025 preprints; sections and arXiv ids not
checked here): the drafter proposes continuations found in the ``h`` earlier rollouts of the
prompt.  Its per-token acceptance grows with the history and falls with the policy's drift
since those rollouts were generated:

    a_hist(h, d) = max_acceptance x (1 - exp(-h / history_scale_rollouts)) x (1 - drift_per_step) ** d

(functional form assumed: saturation in the history, geometric decay in the versions, as the
frozen drafter's drift in rlsim.rl.pipeline).  In a steady-state window of epoch ``e`` (epochs
completed before it) every prompt has ``h = e x n`` earlier rollouts (n per visit), made
``d = ceil(dataset_prompts / num_prompts_per_step)`` versions ago (one epoch).

The engine drafts from whichever source proposes more likely tokens (hybrid, as SuffixDecoding
and DAS fall back to the model drafter): each request's acceptance is multiplied by
``max(1, a_hist / a_model)``, ``a_model`` the scenario's mean conditional rate over its k
positions (:func:`history_scale`).  The drafter's cost stays the scenario's drafter (a suffix
lookup is host work rlsim does not charge separately: the speed-up is, if anything, understated).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlsim.rl.policies.seam import PolicySeam

__all__ = ["HistoryDrafter", "HistoryDrafterSeam", "history_acceptance", "history_scale"]


class HistoryDrafter(BaseModel):
    """``rl.policy`` of a history / suffix drafter (needs ``rollout.engine.speculative_config``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["history_drafter"] = "history_drafter"
    dataset_prompts: int = Field(default=17_000, ge=1, description="prompts per epoch (assumed: DAPO-Math-17k scale)")
    epoch: int = Field(default=2, ge=0, description="epochs completed before the simulated window (assumed)")
    max_acceptance: float = Field(default=0.95, gt=0, le=1, description="per-token acceptance with unlimited fresh "
                                                                       "history (assumed)")
    history_scale_rollouts: float = Field(default=8.0, gt=0, description="earlier rollouts for 63 % of the "
                                                                          "saturation (assumed)")
    drift_per_step: float = Field(default=0.002, ge=0, lt=1, description="relative fall of the history's acceptance "
                                                                          "per policy version (assumed)")


def history_acceptance(cfg: HistoryDrafter, history_rollouts: float, versions_since: float) -> float:
    """``a_hist(h, d)`` of the module docstring."""
    grow = 1.0 - math.exp(-float(history_rollouts) / cfg.history_scale_rollouts)
    return cfg.max_acceptance * grow * (1.0 - cfg.drift_per_step) ** float(versions_since)


def history_scale(cfg: HistoryDrafter, model_rate: float, groups_per_step: int, group_size: int) -> float:
    """Acceptance multiplier ``max(1, a_hist / a_model)`` in a window of epoch ``cfg.epoch``."""
    d = math.ceil(cfg.dataset_prompts / groups_per_step)
    a = history_acceptance(cfg, cfg.epoch * group_size, d)
    return max(1.0, a / model_rate) if model_rate > 0 else 1.0


class HistoryDrafterSeam(PolicySeam):
    name = "history_drafter"

    def __init__(self, cfg: HistoryDrafter) -> None:
        self.cfg = cfg

    def acceptance_scale(self, res, generate: list) -> np.ndarray | None:
        spec = res.speculative
        if spec is None:
            return None
        wl = res.scenario.workload
        rate = float(np.mean(spec.acceptance.conditional_rates(spec.num_speculative_tokens)))
        s = history_scale(self.cfg, rate, wl.num_prompts_per_step, wl.num_generations_per_prompt)
        return np.full(sum(len(b.seq_id) for b in generate), s)
