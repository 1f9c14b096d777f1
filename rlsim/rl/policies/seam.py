"""The rollout-policy seam: what a rollout-acceleration policy may change in an RL run (issue 17).

A policy is data (``rl.policy``: one ``kind`` of :data:`rlsim.rl.policies.RolloutPolicy`) and
acts at three points of the RL path, each a method of :class:`PolicySeam` with a no-op default:

* :meth:`PolicySeam.scenario` -- engine settings the policy owns (e.g. concurrency-aware draft
  sizing), applied before the scenario is resolved, in speculative runs only (every policy's
  settings act on speculation: a run's no-speculation baseline keeps the scenario's pool);
* :meth:`PolicySeam.plan` -- **admission / stop**: from the seeded base batches (the same for
  every policy, so policies are compared on identical sequences) it says what the rollout pool
  generates in each step and what the trainer trains (over-generation and filtering,
  segmented / recycled partial rollouts), with each step's training-data side effects
  (:data:`DATA_COLUMNS`);
* :meth:`PolicySeam.warmup_steps` -- steps before the policy's own state (a buffer of
  unfinished trajectories) is steady: the run's warm-up is at least this;
* :meth:`PolicySeam.acceptance_scale` -- **per-request draft budget / acceptance**: a multiplier
  of each generated request's draft acceptance (history drafters);
* :meth:`PolicySeam.draft_budget` -- **per-request draft budget**: the most drafts each generated
  request verifies per round, fixed at dispatch (length-aware speculation);
* :meth:`PolicySeam.migration` -- **dispatch / migration** at run time: a hook the engine pool
  calls when an engine goes idle and at each engine's iteration boundary (tail migration);
* :meth:`PolicySeam.drafting` -- **where the drafter runs**: a decoupled drafter pool priced
  by :mod:`rlsim.speculation.decoupled` (SpecActor-style), or None (vLLM's coupled drafting);
* :meth:`PolicySeam.drafter_pool_gpus` -- GPUs a drafter pool took from the rollout pool
  (they train in a colocated pipeline, and are no training GPUs in a disaggregated one);
* :meth:`PolicySeam.step_acceptance` -- **run-time feedback** (only for a seam with
  ``feedback_columns``): at each step's dispatch, from the GPU-seconds the engines sat idle in
  the generation of each step finished by then, that step's acceptance multiplier and its
  ``feedback_columns`` (drafter training on idle tail GPUs).

Without a policy none of this runs: the pipeline uses the base batches as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PolicySeam", "PolicyPlan", "DATA_COLUMNS", "restride", "no_side_effects"]

#: Per-step training-data side effects every policy reports (one row per step).
#: ``over_generation_factor`` = requests generated / trajectories trained; the shares and the
#: staleness are over the trajectories trained in the step (staleness in policy versions the
#: policy adds, the pipeline's own lag apart).
DATA_COLUMNS = ("generated_requests", "trained_trajectories", "trained_tokens", "filtered_groups",
                "over_generation_factor", "off_policy_token_share", "off_policy_seq_share", "mean_staleness_steps")


@dataclass(frozen=True)
class PolicyPlan:
    """``generate[t]``: the requests the rollout pool serves in step t (global ids
    ``t * stride + i``); ``train[t]``: the trajectories the trainer trains in step t (their full
    prompt and response lengths); ``data``: one row per step, :data:`DATA_COLUMNS` (and any
    columns of the policy's own); ``turns``: per step, the multi-turn structure of the generated
    requests (rlsim.rl.policies.multi_turn.Turns; None: every request is dealt at dispatch)."""

    generate: list
    train: list
    data: pd.DataFrame
    stride: int
    turns: list | None = None


class PolicySeam:
    """No-op defaults; a policy overrides the points it acts on."""

    name = "none"
    #: per-step columns the run records from :meth:`step_acceptance` (none: it is not called)
    feedback_columns: tuple[str, ...] = ()

    def scenario(self, sc, source: str | None = None):
        """The scenario with the engine settings the policy owns (default: unchanged); refusals
        name ``source`` (the scenario's file)."""
        return sc

    def warmup_steps(self, res, seed: int) -> int:
        """Steps before the policy's own state is steady in the run with ``seed`` (the run's
        warm-up is at least this)."""
        return 0

    def plan(self, res, base: list, seed: int) -> PolicyPlan:
        """Generate and train the base batches as they are."""
        return PolicyPlan(base, base, no_side_effects(base), max(len(b.seq_id) for b in base))

    def acceptance_scale(self, res, generate: list) -> np.ndarray | None:
        """Per generated request (in step order), a multiplier of its acceptance; None = 1."""
        return None

    def draft_budget(self, res, generate: list) -> np.ndarray | None:
        """Per generated request (in step order), its draft budget k_i (the engine's iteration k
        caps it; rlsim.speculation.runtime); None = no budgets (every request drafts k)."""
        return None

    def migration(self, res):
        """The engine pool's migration hook (``EnginePool.migration``), or None (default)."""
        return None

    def drafting(self, res, sampler):
        """The decoupled drafter pool of the run (rlsim.speculation.decoupled.DecoupledDrafting)
        priced with the run's acceptance ``sampler``, or None: the drafter runs on the target's
        GPUs (default)."""
        return None

    def drafter_pool_gpus(self, res) -> int:
        """GPUs a drafter pool taken from the rollout pool holds in a scenario the policy was
        applied to (:meth:`scenario`; default 0): they train in a colocated pipeline and are no
        training GPUs in a disaggregated one."""
        return 0

    def scenario_fields(self) -> dict[str, str]:
        """Scenario fields :meth:`scenario` sets from the policy's own, ``{scenario field: policy
        field}``: a refusal of the re-resolved scenario names the policy field (default none)."""
        return {}

    def step_acceptance(self, res, harvested_gpu_s: np.ndarray) -> tuple[float, dict]:
        """``(acceptance multiplier, {feedback column: value})`` of a step dispatched after steps
        whose generation left ``harvested_gpu_s`` idle GPU-seconds (in step order); the run
        records each step's harvest as ``tail_train_gpu_s`` beside the feedback columns."""
        raise NotImplementedError


def no_side_effects(batches: list) -> pd.DataFrame:
    """Side-effect rows of steps that generate and train the same fresh batches."""
    n = np.array([len(b.seq_id) for b in batches], dtype=np.int64)
    zero = np.zeros(len(batches))
    tokens = np.array([int(b.response.sum()) for b in batches], dtype=np.int64)
    import pandas as pd

    return pd.DataFrame({"generated_requests": n, "trained_trajectories": n, "trained_tokens": tokens, "filtered_groups": 0 * n,
                         "over_generation_factor": zero + 1.0, "off_policy_token_share": zero,
                         "off_policy_seq_share": zero, "mean_staleness_steps": zero})


def restride(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[list, int]:
    """Step batches from per-step ``(group key, prompt, response)`` arrays: sequence ids
    ``t * stride + i`` (stride = the largest step) and group ids unique over the run
    (``t * group_stride + j``, j numbering the step's distinct group keys in order of first
    appearance), as the pool and the engines require."""
    from rlsim.rl.pipeline import StepBatch

    stride = max(1, max(len(p[1]) for p in parts))
    locals_ = []
    for key, _, _ in parts:
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        locals_.append(rank[inv])
    gstride = max(1, max((int(g.max()) + 1 if len(g) else 0) for g in locals_))
    out = []
    for t, ((_, prompt, response), g) in enumerate(zip(parts, locals_)):
        n = len(prompt)
        out.append(StepBatch(np.arange(n, dtype=np.int64) + t * stride, g + t * gstride,
                             np.asarray(prompt, dtype=np.int64), np.asarray(response, dtype=np.int64)))
    return out, stride
