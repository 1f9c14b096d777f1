"""Where the RL path calls the policy seam (rlsim.rl.run and rlsim.rl.pipeline); each function
is the identity without ``rl.policy``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlsim.rl.policies import seam_for
from rlsim.rl.policies.seam import DATA_COLUMNS, PolicyPlan, PolicySeam
from rlsim.rl.policies.decoupled_draft import DECOUPLED_COLUMNS
from rlsim.rl.policies.tail_migration import MIGRATION_COLUMNS

__all__ = ["policy_resolved", "policy_warmup", "policy_plan", "policy_trained", "policy_acceptance", "policy_draft_budget",
           "policy_feedback", "policy_migration", "policy_drafting", "policy_drafter_pool_gpus", "policy_report"]


def _seam(res):
    return seam_for(res.scenario.rl.policy)


def policy_resolved(res):
    """``res`` with the engine settings the policy owns (re-resolved only when they change)."""
    seam = _seam(res)
    if seam is None:
        return res
    sc = seam.scenario(res.scenario, res.source)
    if sc == res.scenario:
        return res
    from rlsim.config import LoadedScenario
    from rlsim.errors import ConfigError, format_location
    from rlsim.sim import resolve

    try:
        return resolve(LoadedScenario(sc, res.source, res.base_dir, {}))
    except ConfigError as e:  # a field the policy set is reported as the policy's field the user wrote
        msg = str(e)
        for field, own in seam.scenario_fields().items():
            where = f"{format_location(res.source, field)} = "
            if msg.startswith(where):
                raise type(e)(f"{format_location(res.source, own)} = {msg[len(where):]}") from None
        raise


def policy_warmup(res, seed: int) -> int:
    """Steps before the policy's own state is steady in the run with ``seed`` (0 without a policy)."""
    seam = _seam(res)
    return 0 if seam is None else seam.warmup_steps(res, seed)


def policy_plan(res, base: list, seed: int) -> PolicyPlan | None:
    """What each step generates and trains under the policy (None without one)."""
    seam = _seam(res)
    return None if seam is None else seam.plan(res, base, seed)


def policy_trained(res, base: list, seed: int) -> list:
    """The batches the trainer trains (the base batches without a policy)."""
    p = policy_plan(res, base, seed)
    return base if p is None else p.train[: len(base)]


def policy_acceptance(res, generate: list) -> np.ndarray | None:
    """Per generated request, the policy's acceptance multiplier (None = 1)."""
    seam = _seam(res)
    return None if seam is None else seam.acceptance_scale(res, generate)


def policy_draft_budget(res, generate: list) -> np.ndarray | None:
    """Per generated request, the policy's draft budget (None: no budgets)."""
    seam = _seam(res)
    return None if seam is None else seam.draft_budget(res, generate)


def policy_feedback(res) -> PolicySeam | None:
    """The seam whose acceptance follows the run (``step_acceptance``), or None (no policy, none
    with feedback, or no speculation to act on)."""
    seam = _seam(res)
    return seam if seam is not None and seam.feedback_columns and res.speculative is not None else None


def policy_migration(res):
    """The engine pool's migration hook of the policy (None: no policy, or one without)."""
    seam = _seam(res)
    return None if seam is None else seam.migration(res)


def policy_drafting(res, sampler):
    """The decoupled drafter pool of the policy priced with the run's acceptance ``sampler``
    (None: no policy, or the drafter on the target's GPUs)."""
    seam = _seam(res)
    return None if seam is None else seam.drafting(res, sampler)


def policy_drafter_pool_gpus(res, speculative: bool) -> int:
    """GPUs the policy's drafter pool holds in a run (0: no policy, none, or a run without
    speculation, whose scenario keeps the whole rollout pool: rlsim.rl.run.run_pipeline)."""
    seam = _seam(res)
    return 0 if seam is None or not speculative else seam.drafter_pool_gpus(res)


def policy_report(res, steps: pd.DataFrame, plan: PolicyPlan) -> tuple[pd.DataFrame, dict]:
    """The per-step table with the policy's data columns, and the steady-state summary of them
    and of the run's feedback columns if it recorded them (means over the steps after the
    warm-up; ``name`` and ``params`` of the policy)."""
    data = plan.data.iloc[: len(steps)].reset_index(drop=True)
    own = [c for c in data.columns if c not in DATA_COLUMNS]  # the policy's own columns (multi_turn)
    out = pd.concat([steps.reset_index(drop=True), data[list(DATA_COLUMNS) + own]], axis=1)
    steady = out[~out["warmup"]]
    pol = res.scenario.rl.policy
    summary = {"name": pol.kind, "params": pol.model_dump(mode="json")}
    summary.update({c: float(steady[c].mean()) for c in list(DATA_COLUMNS) + own})
    # the columns the run itself recorded, when it did: feedback, tool-wait idle time, migrations
    ran = ("tail_train_gpu_s",) + _seam(res).feedback_columns + ("rollout_idle_gpu_s",) + MIGRATION_COLUMNS + DECOUPLED_COLUMNS
    summary.update({c: float(steady[c].mean()) for c in ran if c in out})
    return out, summary
