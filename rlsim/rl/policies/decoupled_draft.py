"""Decoupled speculation (SpecActor-style): the drafter on a separate GPU pool, overlapped with
the target's verification.

Mechanism (SpecActor, "fast RL rollout with decoupled speculative decoding", 2025 preprint; as
recalled -- its arXiv id, sections and figures were not checked here, and /work/shared/reference
holds no copy): the rollout engines' drafter moves to ``drafter_gpus`` GPUs **taken from the
rollout pool** (a fair comparison at a fixed GPU count: the pool keeps ``rollout GPUs -
drafter_gpus`` GPUs, i.e. that many fewer engines' worth; the drafters take whole engines' GPUs).
The drafter runs in ``drafter_gpus / drafter_tensor_parallel_size`` instances, engine e served
by instance ``e mod instances`` (its load share: the engines that instance serves), and drafts
round r + 1 while the target verifies round r; the cost of an iteration -- ``max(verify, remote
draft)`` when every request of the lock-step batch accepted all its drafts and had its bonus
token guessed (``P(A_{k+1} = k + 1)`` each), ``verify + remote draft`` otherwise, priced at
its expectation, plus the link's transfer -- is the one rule of
:mod:`rlsim.speculation.decoupled` (the fast and the slow path both call it).

Acceptance priced: the run's own per-sequence rates (the acceptance sampler's scales -- the
heterogeneity, rl.drafter drift, the greedy -> temperature scale, a policy's multiplier -- times
the model's conditional rates, clipped to 1 as the sampler does): a sequence of scale c has
``P(A_k = k) = prod_{j <= k} min(1, c a_j)`` and ``E[A_k] = sum_{i <= k} prod_{j <= i} min(1, c a_j)``;
the pool is priced with their means over the run's sequences.  Context decay and regime
acceptance change the rates along a sequence: refused.

Defaults (assumed): ``drafter_gpus`` None = an eighth of the rollout GPUs rounded up to a
multiple of ``lcm(engine GPUs, drafter TP)`` (4 of 32 for the 8B TP1 scenario, 16 of 128 for the 235B TP8 one);
``drafter_tensor_parallel_size`` 1 (an EAGLE-3 head fits one GPU; it sets the scenario's
``draft_tensor_parallel_size``).

Per-step columns (over the iterations that start in the step's generation window
``[dispatch_s, batch_done_s]``; in an async pipeline the windows of consecutive steps overlap):
``drafter_gpus``; ``draft_hidden_share`` -- expected share of drafting iterations whose
drafting was hidden behind the verify pass; ``drafter_utilisation`` -- the drafter's own busy
seconds (before the load share) over ``instances x window``.

The drafter pool's GPUs (:meth:`DecoupledDraftSeam.drafter_pool_gpus`, the one count) train in a
``sync_colocated`` pipeline (the trainer keeps the whole pool; the drafter sleeps during
training like the engines, its weight sync not modelled) and are no training GPUs in a
disaggregated one (the default trainer pool is the cluster less rollout and drafter GPUs); the
run's own no-speculation baseline has the whole rollout pool and no drafter pool, as ``rlsim
compare``'s ``no_spec`` (the policy's settings apply to speculative runs only).  The drafter's
per-round host overhead is not the target engine's (``SpecRuntime.host_parts_s``).  Not modelled:
adaptive k priced with decoupled costs (``adaptive_k`` keeps the coupled step time), the
drafter's memory freed on the target GPUs, lock-step DP engine groups (refused: the rule of
``rlsim.sim.build.lockstep_dp``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlsim.errors import ConfigError
from rlsim.hardware import ops
from rlsim.rl.policies.seam import PolicySeam
from rlsim.speculation.decoupled import HIDDEN_LAYERS, DecoupledDrafting

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DecoupledDraft", "DecoupledDraftSeam", "drafting_for", "decoupled_per_step", "DECOUPLED_COLUMNS",
           "DEFAULT_POOL_FRACTION"]

DECOUPLED_COLUMNS = ("drafter_gpus", "draft_hidden_share", "drafter_utilisation")
#: Default drafter pool: this share of the rollout GPUs, rounded up to whole engines (assumed).
DEFAULT_POOL_FRACTION = 1 / 8


class DecoupledDraft(BaseModel):
    """``rl.policy`` of decoupled drafting on a separate GPU pool (needs a GPU drafter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["decoupled_draft"] = "decoupled_draft"
    drafter_gpus: int | None = Field(default=None, ge=1, description="GPUs taken from the rollout pool for the drafter; "
                                                                     "None = an eighth, a multiple of lcm(engine GPUs, drafter TP) (assumed)")
    drafter_tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs per drafter instance (assumed)")


def _where(field: str) -> str:
    return f"rl.policy.{field}"


class DecoupledDraftSeam(PolicySeam):
    name = "decoupled_draft"

    def __init__(self, cfg: DecoupledDraft) -> None:
        self.cfg = cfg

    def scenario(self, sc, source: str | None = None):
        """The rollout pool less the drafter GPUs, the drafter at its own TP, and the policy with
        its pool size resolved (refusals name the field).  Applied once per run (rlsim.rl.policies.run)."""
        e = sc.rollout.engine
        spec = e.speculative_config
        if spec is None:
            return sc
        if spec.method == "ngram":
            raise ConfigError.at(source, _where("kind"), self.cfg.kind, "needs a GPU drafter; "
                                 "rollout.engine.speculative_config.method = 'ngram' drafts on the host")
        acc = spec.acceptance
        if acc.context_decay is not None or acc.kind == "regime":
            field, value = ("acceptance.context_decay", "set") if acc.context_decay is not None else ("acceptance.kind", acc.kind)
            raise ConfigError.at(source, f"rollout.engine.speculative_config.{field}", value,
                                 f"cannot be priced by rl.policy.kind = '{self.cfg.kind}' (its acceptance is priced "
                                 "with rates constant along a sequence)")
        gpus, group, dtp = sc.rollout.num_gpus or sc.cluster.num_gpus, e.tensor_parallel_size, self.cfg.drafter_tensor_parallel_size
        pool = self.cfg.drafter_gpus
        if pool is None:
            unit = math.lcm(group, dtp)
            pool = unit * max(1, math.ceil(gpus * DEFAULT_POOL_FRACTION / unit))
        if pool % group:
            raise ConfigError.at(source, _where("drafter_gpus"), pool, "is not a multiple of one rollout engine's GPUs "
                                 f"(rollout.engine.tensor_parallel_size = {group}): the drafters take whole engines")
        if pool % dtp:
            raise ConfigError.at(source, _where("drafter_gpus"), pool,
                                 f"is not a multiple of rl.policy.drafter_tensor_parallel_size = {dtp}")
        if pool >= gpus and self.cfg.drafter_gpus is None:
            raise ConfigError.at(source, "rollout.num_gpus" if sc.rollout.num_gpus else "cluster.num_gpus", gpus,
                                 f"leaves no rollout engine beside the default drafter pool of rl.policy.kind = "
                                 f"'{self.cfg.kind}' ({pool} GPUs; set rl.policy.drafter_gpus)")
        if pool >= gpus:
            raise ConfigError.at(source, _where("drafter_gpus"), pool, f"leaves no rollout engine: the rollout pool has "
                                 f"{gpus} GPUs, {group} per engine")
        spec = spec.model_copy(update={"draft_tensor_parallel_size": dtp})
        rollout = sc.rollout.model_copy(update={"num_gpus": gpus - pool, "engine": e.model_copy(
            update={"speculative_config": spec})})
        rl = sc.rl.model_copy(update={"policy": self.cfg.model_copy(update={"drafter_gpus": pool})})
        return sc.model_copy(update={"rollout": rollout, "rl": rl})

    def drafter_pool_gpus(self, res) -> int:
        """GPUs the drafter pool holds in a scenario the policy was applied to (0 without speculation)."""
        if res.speculative is None:
            return 0
        assert self.cfg.drafter_gpus is not None, "drafter_pool_gpus needs the scenario() the policy resolved"
        return self.cfg.drafter_gpus

    def scenario_fields(self) -> dict[str, str]:
        """Fields :meth:`scenario` sets, by the policy field the user wrote."""
        return {"rollout.engine.speculative_config.draft_tensor_parallel_size": _where("drafter_tensor_parallel_size")}

    def drafting(self, res, sampler) -> DecoupledDrafting | None:
        """The decoupled drafter pool of a run priced with its acceptance sampler's rates (None
        without speculation); lock-step DP engine groups are refused."""
        if res.speculative is None:
            return None
        if res.lockstep:
            e = res.scenario.rollout.engine
            raise ConfigError.at(res.source, _where("kind"), self.cfg.kind, "needs engines without lock-step data "
                                 f"parallelism (rollout.engine.data_parallel_size = {e.data_parallel_size} with expert "
                                 f"parallelism on the MoE model {res.arch.name})")
        return drafting_for(res, self.drafter_pool_gpus(res), self.cfg.drafter_tensor_parallel_size, sampler.scales)


def drafting_for(res, drafter_gpus: int, drafter_tp: int, scales=None) -> DecoupledDrafting:
    """:class:`DecoupledDrafting` of a resolved scenario (its engines, drafter, acceptance model
    and link) with ``drafter_gpus`` GPUs in instances of ``drafter_tp`` placed after the
    engines' GPUs (instance i on GPUs ``engines x tp + [i dtp, (i + 1) dtp)``; engine e served by
    instance ``e mod instances``), priced at the per-sequence acceptance ``scales`` (the
    sampler's; None: 1)."""
    spec, hw = res.speculative, res.hw
    kmax = spec.num_speculative_tokens
    c = np.ones(1) if scales is None else np.asarray(scales, dtype=float)
    survive = np.cumprod(np.clip(c[:, None] * spec.acceptance.conditional_rates(kmax + 1)[None, :], 0.0, 1.0), axis=1)
    p_ready = np.concatenate([[1.0], survive[:, 1:].mean(axis=0)])  # P(A_{k+1} = k + 1), k = 0..kmax
    tokens = 1.0 + np.concatenate([[0.0], np.cumsum(survive[:, :kmax], axis=1).mean(axis=0)])  # 1 + E[A_k]
    instances = drafter_gpus // drafter_tp
    engines = np.arange(res.num_engines)
    instance = engines % instances
    share = np.bincount(instance, minlength=instances)[instance]
    drafter_gpu = res.num_engines * res.tp + instance * drafter_tp
    same = ops.same_nvlink_domain(hw, ops.engine_gpu(engines, res.tp), drafter_gpu)
    hidden = HIDDEN_LAYERS.get(spec.method, 0) * res.arch.hidden_size * 2.0  # bf16 activations (assumed)
    return DecoupledDrafting(drafter_gpus, instances, share, p_ready, tokens, hw, same, hidden)


def decoupled_per_step(engines, dispatch_s: np.ndarray, done_s: np.ndarray, dec: DecoupledDrafting) -> pd.DataFrame:
    """:data:`DECOUPLED_COLUMNS` per step from the engines' decoupled-drafting log
    (``EngineStats.remote_log``) over each step's generation window."""
    import pandas as pd

    log = np.array([r for e in engines for r in e.stats.remote_log], dtype=float).reshape(-1, 4)
    hidden, util = np.full(len(dispatch_s), np.nan), np.full(len(dispatch_s), np.nan)
    for t, (t0, t1) in enumerate(zip(dispatch_s, done_s)):
        rows = log[(log[:, 0] >= t0) & (log[:, 0] < t1)]
        its = rows[:, 1].sum()
        hidden[t] = rows[:, 2].sum() / its if its else np.nan
        util[t] = rows[:, 3].sum() / (dec.instances * (t1 - t0)) if t1 > t0 else np.nan
    return pd.DataFrame({"drafter_gpus": np.full(len(dispatch_s), dec.drafter_gpus), "draft_hidden_share": hidden,
                         "drafter_utilisation": util})
