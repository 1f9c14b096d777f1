"""Concurrency-aware draft sizing (FastGRPO): the draft length follows the running batch.

Mechanism (FastGRPO, arXiv:2509.21792, concurrency-aware speculative decoding: at high
concurrency verification is compute-bound and long drafts cost more than they gain; as the
batch drains in the tail, deeper drafts pay): each iteration drafts
``k = argmax_k B x E[tokens | k] / step_time(B, k)`` over ``min_draft_tokens ..
max_draft_tokens`` for the running batch B -- rlsim's goodput rule
(:mod:`rlsim.speculation.runtime`, ``adaptive_k``), here with a larger ceiling than the
scenario's fixed k.  FastGRPO sizes draft *trees*; rlsim drafts chains (not modelled: the
tree's width).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rlsim.rl.policies.seam import PolicySeam

__all__ = ["ConcurrencyDraft", "ConcurrencyDraftSeam"]


class ConcurrencyDraft(BaseModel):
    """``rl.policy`` of concurrency-aware draft sizing (needs ``rollout.engine.speculative_config``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["concurrency_draft"] = "concurrency_draft"
    max_draft_tokens: int = Field(default=6, ge=1, le=32, description="largest k (assumed)")
    min_draft_tokens: int = Field(default=0, ge=0, le=32, description="smallest k; 0 lets it switch drafting off")


class ConcurrencyDraftSeam(PolicySeam):
    name = "concurrency_draft"

    def __init__(self, cfg: ConcurrencyDraft) -> None:
        self.cfg = cfg

    def scenario(self, sc, source: str | None = None):
        """The engine's speculative_config with goodput-optimal k per iteration up to the ceiling."""
        from rlsim.config.scenario import AdaptiveKConfig

        e = sc.rollout.engine
        spec = e.speculative_config
        if spec is None:
            return sc
        k = max(spec.num_speculative_tokens, self.cfg.max_draft_tokens)
        spec = spec.model_copy(update={"num_speculative_tokens": k, "adaptive_k": AdaptiveKConfig(
            enabled=True, min_k=min(self.cfg.min_draft_tokens, k))})
        return sc.model_copy(update={"rollout": sc.rollout.model_copy(update={
            "engine": e.model_copy(update={"speculative_config": spec})})})
