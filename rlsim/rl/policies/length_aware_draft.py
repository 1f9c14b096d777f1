"""Length-aware draft budgets (DAS): requests predicted long get more draft tokens.

Mechanism (DAS, "Beat the long tail: Distribution-Aware Speculative decoding for RL training",
2025 preprint; its arXiv id and section numbers were not checked here, the mechanism is as
recalled): the long trajectories make the tail of a rollout step, where the batch is small,
verification cheap and deep drafts pay; the short ones share the compute-bound body, where
drafts cost more than they gain.  DAS predicts each request's length from the prompt's earlier
rollouts and gives the long ones a larger speculation budget (its drafter is a suffix tree of
earlier rollouts; rlsim's is the scenario's).  Here (all numbers assumed):

* **predictor** -- the prompt's earlier rollouts, stood in for by the mean response length of the
  *other* members of the request's GRPO group in the same step (the workload draws
  group-correlated lengths, ``workload.group_length_correlation``; the previous epoch's
  rollouts of the prompt would be such draws if the prompt's latent length factor stays the same
  across epochs -- an assumption: the siblings' lengths are realised in the same step, so they
  stand for a history the dispatcher would have, not for one it could see).  A request's own
  length is never read; a group
  of one has no others and is predicted short.  With ``group_length_correlation = 0`` the
  prediction carries no information about the request (and, as a leave-one-out mean, ranks the
  members of one group inversely to their own lengths);
* **long** -- the ``ceil(long_fraction x n)`` requests of the step's n with the largest
  prediction (ties: the earlier request first);
* **budget** -- ``k_i = long_draft_tokens`` for long requests, ``short_draft_tokens`` for the
  others (0: the request does not draft), fixed for the request's life.

The engine (:mod:`rlsim.speculation.runtime`, budgets): an iteration drafts ``k = min(the
scenario's k, max_i k_i)`` over its running requests (the policy raises the scenario's
``num_speculative_tokens`` to ``long_draft_tokens``), request i accepts ``min(A, k_i)`` of its
draw, the verify pass's GEMMs run on ``sum_i (1 + k_i)`` tokens (attention and logits at
``1 + k`` per request, as for the n-gram proposer's unmatched requests), the drafter drafts the
whole running batch for k rounds (a chain drafter runs in lock-step, as vLLM's EAGLE proposer),
and KV is reserved for ``1 + k`` slots per request.  Acceptance must not depend on context
(config rule): the draws of a jump are solved at the iteration's k.  Lock-step data-parallel
ranks (``data_parallel_size > 1``) are refused (their pass is priced without the budgets).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlsim.rl.policies.seam import PolicyPlan, PolicySeam, no_side_effects

__all__ = ["LengthAwareDraft", "LengthAwareDraftSeam", "predicted_lengths", "long_requests", "draft_budgets"]


class LengthAwareDraft(BaseModel):
    """``rl.policy`` of DAS's length-aware speculation budget (needs ``rollout.engine.speculative_config``
    with context-independent acceptance; ``short_draft_tokens <= long_draft_tokens``: rlsim.config.rules)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["length_aware_draft"] = "length_aware_draft"
    long_draft_tokens: int = Field(default=6, ge=1, le=32, description="k_i of requests predicted long (assumed)")
    short_draft_tokens: int = Field(default=2, ge=0, le=32, description="k_i of the others (assumed; 0: no drafting)")
    long_fraction: float = Field(default=0.25, gt=0, le=1, description="share of a step's requests predicted long "
                                                                       "(assumed)")


def predicted_lengths(group_id: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Per request, the mean response length of the other members of its group (NaN: none)."""
    _, inv, size = np.unique(group_id, return_inverse=True, return_counts=True)
    total = np.bincount(inv, weights=np.asarray(response, dtype=np.float64))
    others = size[inv] - 1
    return np.where(others > 0, (total[inv] - response) / np.maximum(others, 1), np.nan)


def long_requests(predicted: np.ndarray, long_fraction: float) -> np.ndarray:
    """The ``ceil(long_fraction x n)`` requests with the largest prediction (NaN: never long;
    ties: the earlier first), as a boolean mask."""
    n = len(predicted)
    known = ~np.isnan(predicted)
    count = min(int(math.ceil(long_fraction * n - 1e-9)), int(known.sum()))
    order = np.argsort(-np.where(known, predicted, -np.inf), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:count]] = True
    return mask


def draft_budgets(cfg: LengthAwareDraft, group_id: np.ndarray, response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(k_i, predicted long)`` of each request of one step."""
    long = long_requests(predicted_lengths(group_id, response), cfg.long_fraction)
    return np.where(long, cfg.long_draft_tokens, cfg.short_draft_tokens).astype(np.int64), long


class LengthAwareDraftSeam(PolicySeam):
    name = "length_aware_draft"

    def __init__(self, cfg: LengthAwareDraft) -> None:
        self.cfg = cfg

    def scenario(self, sc, source: str | None = None):
        """The engine's ``num_speculative_tokens`` raised to ``long_draft_tokens`` (the most a
        request may draft)."""
        e = sc.rollout.engine
        spec = e.speculative_config
        if spec is None or spec.num_speculative_tokens >= self.cfg.long_draft_tokens:
            return sc
        spec = spec.model_copy(update={"num_speculative_tokens": self.cfg.long_draft_tokens})
        return sc.model_copy(update={"rollout": sc.rollout.model_copy(update={
            "engine": e.model_copy(update={"speculative_config": spec})})})

    def plan(self, res, base: list, seed: int) -> PolicyPlan:
        """The base batches as they are, with each step's ``mean_draft_budget`` and
        ``long_budget_share`` (requests predicted long)."""
        import pandas as pd  # lazily: the CLI imports the policies without pandas

        steps = [draft_budgets(self.cfg, b.group_id, b.response) for b in base]
        data = pd.concat([no_side_effects(base), pd.DataFrame({
            "mean_draft_budget": [float(k.mean()) for k, _ in steps],
            "long_budget_share": [float(long.mean()) for _, long in steps]})], axis=1)
        return PolicyPlan(base, base, data, max(len(b.seq_id) for b in base))

    def draft_budget(self, res, generate: list) -> np.ndarray | None:
        """Each generated request's k_i (in step order); None without speculation.  Lock-step
        data-parallel ranks are refused: their pass (rlsim.cost.dp) is priced at ``1 + k`` tokens
        per request, so the budgets would not shorten it."""
        if res.speculative is None:
            return None
        if res.lockstep:
            from rlsim.errors import ConfigError

            raise ConfigError.at(res.source, "rl.policy.kind", "length_aware_draft",
                                 "needs engines without lock-step data parallelism (rollout dp > 1 is not supported)")
        return np.concatenate([draft_budgets(self.cfg, b.group_id, b.response)[0] for b in generate])
