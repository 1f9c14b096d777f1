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
from rlsim.speculation.runtime import ctx_bucket

__all__ = ["Jump", "JumpPlanner", "decode_jump", "plain_decode_iterations", "MAX_DRAW_CELLS"]

#: Cap on (iterations x sequences) of random draws per fast-path jump with speculation.
MAX_DRAW_CELLS = 200_000


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
    reject_s: float = 0.0        # per iteration: verification beyond the target's kernels (in draft_s)
    serial_s: np.ndarray | float = 0.0  # per iteration: critical-path host time (n-gram; in step_s)
    #: the jump ends because the next iteration's KV slots do not fit (no completion, no limit):
    #: once it is applied in full, the next iteration takes the slow path (and preempts)
    ends_short: bool = False
    #: per iteration: the decoupled drafter's own time (rlsim.speculation.decoupled; 0: coupled)
    remote_s: np.ndarray | float = 0.0
    #: tokens the passes' token-dependent kernels ran on (None: every slot, ``B (1 + k)``)
    timed_tokens: int | None = None
    #: per iteration: the dispatch a pass without a CUDA graph waits for (in target_s; None: none)
    launch_s: np.ndarray | None = None
    #: draft slots beyond the requests' budgets (not verified, not proposed)
    slack: int = 0

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
    # kv.growth_blocks(slots, cached + i) = max(ceil((cached + i) / bs) - held, 0)
    #                                     = max(floor((cached + i + bs - 1 - held * bs) / bs), 0)  (integers)
    #   = #{n >= 0: first + n * bs <= i}, first = held * bs - cached + 1 >= 1: the iterations at which
    # a sequence needs a block.  With every first <= bs, the needs come in rounds of one per
    # sequence (round n in (n bs, (n + 1) bs]), so the (free + 1)-th need is in round free // B at
    # the (free % B)-th smallest first: the last iteration that fits is the one before it.
    bs, free = kv.block_size, kv.free
    first = (kv.shared[slots] + kv.own[slots]) * bs - cached + 1
    B = len(first)
    if int(first.max()) <= bs:
        r = free % B
        return min(m, int(np.partition(first, r)[r]) + (free // B) * bs - 1)
    room = bs - first

    def fits(i: int) -> bool:  # iteration i + 1 holds cached + i + 1 tokens; i iterations need cached + i
        return int(np.maximum((room + i) // bs, 0).sum()) <= free

    if fits(m):
        return m
    lo, hi = 0, m  # largest i with demand(i) <= free: gallop from 1 (short under KV pressure), then bisect
    step = 1
    while step < hi and fits(step):
        lo, step = step, 2 * step
    hi = min(hi, step)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _per_iteration(x, m: int) -> np.ndarray:
    """``x`` (a scalar or per-iteration array) as ``m`` values: ``x`` itself when it already is
    one value per iteration, a filled array for a scalar (``np.full``: the values and dtype of
    ``np.broadcast_to``, at a fraction of its per-call cost), else broadcast."""
    if isinstance(x, np.ndarray):
        return x if x.shape == (m,) else np.broadcast_to(x, (m,))
    return np.full(m, x)


class JumpPlanner:
    """Plans an engine's jumps from its state (reads it; only the acceptance buffer changes)."""

    def __init__(self, requests, kv: KvCache, forward, params, spec, engine_id: int = 0) -> None:
        self.requests, self.kv, self.forward, self.params, self.spec = requests, kv, forward, params, spec
        self.engine_id = engine_id

    def accepted(self, run: np.ndarray, rounds: int, k: int) -> np.ndarray:
        """Accepted drafts (rounds x len(run)) in the next ``rounds`` draft rounds of ``run`` at
        ``k`` drafts each: ``min(A, k_i)`` of the same draw for requests with draft budgets k_i.
        With context-dependent acceptance a request's later rounds start where its capped rounds
        left it (``1 + min(A, k_i)`` tokens each), so each cap is drawn as its own chain at
        ``k_i`` (the draw at ``k_i`` is ``min(A, k_i)`` of the draw at ``k``)."""
        req, draws = self.requests, self.spec.draws
        seq, first = req.seq_ids[run], req.draft_rounds[run]
        ctx = (req.prompt[run] + req.generated[run]).astype(np.float64)
        if self.spec.budgets is None:
            return draws.accepted(seq, first, rounds, k, ctx)
        caps = np.minimum(req.draft_budget[run], k)
        if not draws.sampler.needs_context:
            return np.minimum(draws.accepted(seq, first, rounds, k, ctx), caps[None, :])
        out = np.zeros((rounds, len(run)), dtype=np.int64)
        for cap in np.unique(caps[caps > 0]).tolist():
            sel = caps == cap
            out[:, sel] = draws.accepted(seq[sel], first[sel], rounds, int(cap), ctx[sel])
        return out

    def plan_plain(self, run: np.ndarray, now: float, limit: int | None = None) -> Jump | None:
        """A jump over plain decode iterations up to the next completion or KV shortage (or
        ``limit`` iterations)."""
        B, cached, remaining = len(run), self.requests.computed[run], self.requests.remaining(run)
        m = plain_decode_iterations(cached, remaining, self.kv, run)
        short = m < int(remaining.min()) and (limit is None or m < limit)
        m = m if limit is None else min(m, limit)
        if m == 0:
            return None  # the next iteration preempts: take the slow path
        ctx = float(cached.sum()) + B * np.arange(1, m + 1, dtype=np.float64)
        m_k = self._adaptive_limit(B, ctx, m)
        if m_k == 0:
            return None  # the next iteration changes k: take the slow path
        short = short and m_k == m  # not cut short by a change of k
        m, ctx = m_k, ctx[:m_k]
        target, launch = self.forward.decode_split_s(B, ctx)
        return self._jump(run, cached, 0, m, ctx, target, np.zeros(m), None, None, now, short, launch=launch)

    def plan_spec(self, run: np.ndarray, k: int, now: float, limit: int | None = None) -> Jump | None:
        """A jump with speculation: acceptance drawn for the coming rounds (at most ``limit``)."""
        B, q, cached = len(run), 1 + k, self.requests.computed[run]
        if B * q > self.params.max_num_batched_tokens:
            return None
        if int(self.kv.growth_blocks(run, cached + q).sum()) > self.kv.free:
            return None  # the very next iteration is short of KV: the slow path preempts
        remaining = self.requests.remaining(run)
        first_done = remaining.min() / (1.0 + self.spec.expected_accepted[k])  # expected rounds to a completion
        rows = int(min(remaining.min(), max(1, MAX_DRAW_CELLS // (B * k)), first_done + 4))  # may end event-free
        accepted = self.accepted(run, rows, k)
        advance = 1 + accepted
        m, before = decode_jump(cached, remaining, self.kv, run, advance, q)
        m = m if limit is None else min(m, limit)
        ctx = (cached + before[:m]).sum(axis=1).astype(np.float64) + B * q
        m = self._adaptive_limit(B, ctx - B * k, m)
        if m == 0:
            return None
        ctx = ctx[:m]
        slack = 0 if self.spec.budgets is None else self.spec.budget_slack(k, self.requests.draft_budget[run])
        target, launch, timed = self.spec.target_split_s(B, ctx, k, slack)
        draft = self.spec.drafter.propose_times_s(B, ctx, k)
        return self._jump(run, cached, k, m, ctx, target, draft, advance[:m], accepted[:m], now, slack=slack,
                          timed=timed, launch=launch)

    def _jump(self, run, cached, k, m, ctx, target, draft, advance, accepted, now, ends_short=False, slack=0,
              timed=None, launch=0.0) -> Jump:
        B = len(run)
        host, reject, serial, remote = self.params.host_s(B, 0), 0.0, 0.0, 0.0
        if k > 0:
            reject = self.spec.verify_extra_s(B, k, slack)
            overlap, serial = self.spec.host_parts_s(B, k, ctx, slack)
            dec = self.spec.decoupled
            if dec is None:
                host, draft = host + overlap, draft + reject
            else:  # the drafter on its own GPUs, pipelined with the verify pass
                host, remote, draft = host + overlap, draft, dec.extra_s(self.engine_id, target, draft, reject, B, k)
        step = _per_iteration(self.params.step_s(target + draft, host, B) + serial, m)
        return Jump(run, cached, k, m, ctx, target, _per_iteration(draft, m), step, np.cumsum(step), advance,
                    accepted, now, reject, _per_iteration(serial, m), ends_short, remote, timed,
                    _per_iteration(launch, m), slack)

    def _adaptive_limit(self, B: int, ctx_after_first_token: np.ndarray, m: int) -> int:
        """With adaptive k, end the jump where the context bucket (and so maybe k) changes."""
        if self.spec is None or not self.spec.adaptive or m == 0:
            return m
        buckets = ctx_bucket((np.asarray(ctx_after_first_token[:m]) - B) / B)
        change = np.flatnonzero(buckets != buckets[0])
        return int(change[0]) if len(change) else m
