"""Rollout-acceleration policies behind one seam (issue 17; :mod:`rlsim.rl.policies.seam`).

``rl.policy`` is one of :data:`RolloutPolicy` (a discriminated union on ``kind``, frozen,
extra fields forbidden); absent, the RL run is exactly the scenario's.  One module per policy:

* ``dynamic_sampling`` -- DAPO's over-generation and filtering of all-equal-reward groups;
* ``partial_rollout`` -- a per-step token budget (Kimi k1.5) or APRIL's over-provisioning with a
  count-triggered stop; the unfinished trajectories recycled;
* ``history_drafter`` -- drafts from earlier rollouts of the prompt (RhymeRL, SPEC-RL, DAS);
* ``concurrency_draft`` -- draft length chosen per iteration from the running batch (FastGRPO);
* ``length_aware_draft`` -- per-request draft budgets, more for requests predicted long (DAS);
* ``drafter_tail_training`` -- the drafter trained on the idle tail GPUs of each step (TLT);
* ``multi_turn`` -- agentic multi-turn rollouts: tool latency between turns, KV kept or evicted.
* ``tail_migration`` -- long requests moved from busy to idle engines in the tail (Seer, RLHFuse).
* ``decoupled_draft`` -- the drafter on a separate GPU pool, pipelined with verification (SpecActor).

:data:`NAMED` gives each policy with its default numbers by name (``rlsim compare --policies``);
``none`` is the scenario as it is and ``no_spec`` the same without speculation.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from rlsim.rl.policies.concurrency_draft import ConcurrencyDraft, ConcurrencyDraftSeam
from rlsim.rl.policies.decoupled_draft import DecoupledDraft, DecoupledDraftSeam
from rlsim.rl.policies.drafter_tail_training import DrafterTailTraining, DrafterTailTrainingSeam
from rlsim.rl.policies.dynamic_sampling import DynamicSampling, DynamicSamplingSeam
from rlsim.rl.policies.history_drafter import HistoryDrafter, HistoryDrafterSeam
from rlsim.rl.policies.length_aware_draft import LengthAwareDraft, LengthAwareDraftSeam
from rlsim.rl.policies.multi_turn import MultiTurn, MultiTurnSeam
from rlsim.rl.policies.partial_rollout import PartialRollout, PartialRolloutSeam
from rlsim.rl.policies.seam import DATA_COLUMNS, PolicyPlan, PolicySeam
from rlsim.rl.policies.tail_migration import TailMigration, TailMigrationSeam

__all__ = ["RolloutPolicy", "NAMED", "seam_for", "PolicySeam", "PolicyPlan", "DATA_COLUMNS",
           "DynamicSampling", "PartialRollout", "HistoryDrafter", "ConcurrencyDraft",
           "DrafterTailTraining", "MultiTurn", "TailMigration", "LengthAwareDraft", "DecoupledDraft"]

RolloutPolicy = Annotated[Union[DynamicSampling, PartialRollout, HistoryDrafter, ConcurrencyDraft, DrafterTailTraining,
                                    MultiTurn, TailMigration, LengthAwareDraft, DecoupledDraft],
                          Field(discriminator="kind")]

_SEAMS = {"dynamic_sampling": DynamicSamplingSeam, "partial_rollout": PartialRolloutSeam,
          "history_drafter": HistoryDrafterSeam, "concurrency_draft": ConcurrencyDraftSeam,
          "drafter_tail_training": DrafterTailTrainingSeam,
          "multi_turn": MultiTurnSeam, "tail_migration": TailMigrationSeam, "length_aware_draft": LengthAwareDraftSeam,
          "decoupled_draft": DecoupledDraftSeam}

#: Policies by name with their default numbers (``none``: no policy; ``no_spec``: no speculation).
NAMED = {"none": None, "no_spec": None, "dynamic_sampling": DynamicSampling(), "partial_rollout": PartialRollout(),
         "active_partial_rollout": PartialRollout(trigger="count"),
         "history_drafter": HistoryDrafter(), "concurrency_draft": ConcurrencyDraft(), "drafter_tail_training": DrafterTailTraining(),
         "multi_turn": MultiTurn(), "multi_turn_evict": MultiTurn(kv="evict"),
         "tail_migration": TailMigration(), "length_aware_draft": LengthAwareDraft(),
         "decoupled_draft": DecoupledDraft()}


def seam_for(policy) -> PolicySeam | None:
    """The seam of an ``rl.policy`` value (None for no policy)."""
    return None if policy is None else _SEAMS[policy.kind](policy)
