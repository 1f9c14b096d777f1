"""The engine's fast path: how far a decode-only batch can run unchanged, and the planned jump.

While every running request decodes and no waiting request can be admitted
(:meth:`rlsim.engine.scheduler.Scheduler.closed`), the batch is fixed until the first event:

* a completion (some sequence's emitted tokens reach its response length) -- that iteration is
  included;
* a KV shortage (the blocks needed for the next iteration's ``q`` = 1 + k slots exceed the free
  pool, :meth:`rlsim.engine.kv.KvCache.growth_blocks`) -- that iteration is excluded: the slow
  path runs it and preempts.

The engine then times all those iterations in one numpy expression and jumps (DESIGN 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlsim.engine.kv import KvCache

__all__ = ["Jump", "decode_jump", "plain_decode_iterations"]


@dataclass(frozen=True)
class Jump:
    """A planned fast-path jump: ``iterations`` decode iterations of the running batch ``slots``."""

    slots: np.ndarray
    cached_tokens: np.ndarray  # of each sequence at the start
    k: int                     # drafts per iteration (0: no speculation)
    iterations: int
    context_tokens: np.ndarray  # total context of the batch per iteration
    target_s: np.ndarray       # target pass time per iteration
    draft_s: np.ndarray        # drafting time per iteration
    step_s: np.ndarray         # step time per iteration
    cumulative_s: np.ndarray   # cumulative step time
    advance: np.ndarray | None   # tokens advanced per (iteration, sequence); None without drafts (1 each)
    accepted: np.ndarray | None  # accepted drafts per (iteration, sequence)
    start_s: float

    @property
    def duration_s(self) -> float:
        return float(self.cumulative_s[-1])

    def iterations_started_by(self, elapsed_s: float) -> int:
        """Iterations begun within ``elapsed_s`` of the start (the one in progress included)."""
        return int(np.searchsorted(self.cumulative_s, elapsed_s, side="right")) + 1


def decode_jump(cached: np.ndarray, remaining: np.ndarray, kv: KvCache, slots: np.ndarray,
                advance: np.ndarray, q: int) -> tuple[int, np.ndarray]:
    """Iterations (rows of ``advance``) that can run before the next event (may be 0), and the
    tokens each sequence advanced before each row."""
    cum = np.cumsum(advance, axis=0)
    before = cum - advance
    done_rows = np.flatnonzero((cum >= remaining).any(axis=1))
    m = int(done_rows[0]) + 1 if len(done_rows) else advance.shape[0]
    extra = kv.growth_blocks(slots, cached + before[:m] + q).sum(axis=1)
    short = np.flatnonzero(extra > kv.free)
    if len(short):
        m = min(m, int(short[0]))
    return m, before


def plain_decode_iterations(cached: np.ndarray, remaining: np.ndarray, kv: KvCache, slots: np.ndarray) -> int:
    """Without speculation every sequence advances one token per iteration: iterations until the
    first completion or the first iteration whose KV slots do not fit (binary search)."""
    m = int(remaining.min())

    def fits(i: int) -> bool:  # iteration i + 1 holds cached + i + 1 tokens; i iterations need cached + i
        return int(kv.growth_blocks(slots, cached + i).sum()) <= kv.free

    if fits(m):
        return m
    lo, hi = 0, m  # largest i with demand(i) <= free
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
