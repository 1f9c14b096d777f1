"""What an engine needs at run time to speculate: drafter, acceptance sampler, k policy.

The k used in an iteration (vLLM: ``num_speculative_tokens``) is

* 0 when the running batch reaches ``disable_by_batch_size`` (vLLM's switch);
* with ``adaptive_k``: ``argmax_k B * E[tokens | k] / step_time(B, k, ctx)`` over
  ``min_k..num_speculative_tokens`` (goodput, SmartSpec-style), where the mean context per
  sequence is quantised to powers of two so the decision is piecewise constant (the fast path
  ends a jump where the bucket changes, keeping it identical to one-iteration stepping);
* otherwise ``num_speculative_tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlsim.cost.forward import ForwardModel
from rlsim.speculation.drafter import Drafter
from rlsim.speculation.draws import AcceptanceDraws

__all__ = ["SpecRuntime", "ctx_bucket"]


def ctx_bucket(mean_ctx_per_seq):
    """Power-of-two bucket of the mean context per sequence (vectorised)."""
    return np.floor(np.log2(np.maximum(np.asarray(mean_ctx_per_seq, dtype=np.float64), 1.0))).astype(np.int64)


@dataclass
class SpecRuntime:
    """Speculation settings resolved for one engine pool (shared by its engines)."""

    k_max: int
    drafter: Drafter
    sampler: object  # rlsim.speculation.acceptance.AcceptanceSampler
    target: ForwardModel
    expected_accepted: np.ndarray  # E[accepted | k] for k = 0..k_max (base acceptance model)
    disable_by_batch_size: int | None = None
    adaptive: bool = False
    min_k: int = 0
    _cache: dict = field(default_factory=dict)
    draws: AcceptanceDraws = field(init=False)

    def __post_init__(self) -> None:
        self.draws = AcceptanceDraws(self.sampler)  # accepted drafts by sequence id, buffered

    def step_time_s(self, batch: int, ctx_tokens: float, k: int) -> float:
        """GPU time of one iteration: verify pass of 1 + k tokens per sequence plus drafting."""
        ctx = np.array([ctx_tokens + batch * k], dtype=np.float64)
        t = self.target.decode_times_s(batch, ctx, q=1 + k) + self.drafter.propose_times_s(batch, ctx, k)
        return float(t[0])

    def k_for(self, batch: int, ctx_tokens: float) -> int:
        """k for an iteration with ``batch`` decoding sequences holding ``ctx_tokens`` in all."""
        if self.disable_by_batch_size is not None and batch >= self.disable_by_batch_size:
            return 0
        if not self.adaptive:
            return self.k_max
        bucket = int(ctx_bucket(ctx_tokens / max(batch, 1)))
        key = (batch, bucket)
        if key not in self._cache:
            self._cache[key] = self._best_k(batch, float(2.0 ** bucket) * math.sqrt(2.0) * batch)
        return self._cache[key]

    def _best_k(self, batch: int, ctx_tokens: float) -> int:
        best, best_rate = self.min_k, -1.0
        for k in range(self.min_k, self.k_max + 1):
            rate = (1.0 + self.expected_accepted[k]) / self.step_time_s(batch, ctx_tokens, k)
            if rate > best_rate * (1 + 1e-12):
                best, best_rate = k, rate
        return best
