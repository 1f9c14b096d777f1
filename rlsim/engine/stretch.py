"""KV-thrash stretches counted, not stepped: plain decoding through its preemptions.

Under a deep waiting queue on a KV cache too small for the running batch (the Vidur workload:
2,048 requests of 512 + 2,048 tokens on one H100), vLLM's scheduler alternates a few decode
iterations with an iteration that preempts the newest running request (a running request needs
a block and none is free; recompute mode).  Nothing else changes in between while the queue's
head (the request just preempted, which must prefill its whole context again) does not fit.
:meth:`rlsim.engine.engine.Engine.advance` steps such a stretch with lean paths; this module
runs it by counting, which it can do exactly when:

* there is no prefix caching (freed blocks are only counted: no cache order to keep);
* the policy's victim is the last running request (FCFS), no drafts, every arrival visible;
* every running request's next block is due within ``block_size`` tokens (no look-ahead
  blocks): then request ``j`` needs a block exactly at iterations ``tau = first_j + n *
  block_size`` of the stretch (``first_j = held_j * block_size - cached_j + 1``), since a
  survivor runs every iteration, so the blocks the batch needs at iteration ``tau`` are the
  count of its requests in phase ``tau mod block_size``.

The next shortage is found from those counts (whole rounds of ``B`` blocks per
``block_size`` iterations, then phase by phase); the preempting iteration walks its needers
in running order as :meth:`rlsim.engine.scheduler.Scheduler.schedule` does (the first one short
of a block preempts from the tail until it fits or was the last itself; it is then scheduled
after the others, as the general loop orders it).  The stretch stops before an iteration in
which a request would finish and after a preempting iteration whose victim the admission rule
would seat.  Each jump and each preempting iteration is priced, accounted and reported as
the lean paths do (the same segments, records and bytes); the requests' and the cache's state
is written once at the end.
"""

from __future__ import annotations

import numpy as np

from rlsim.cost.forward import PassShape
from rlsim.engine.segment import Segment

__all__ = ["count_stretch", "PREEMPT", "PLAN", "OPEN"]

#: what the engine does after a counted stretch: a preempting iteration, plan a jump (it ends at
#: a completion), or nothing more (the waiting queue's head can be admitted; nothing runs)
PREEMPT, PLAN, OPEN = "preempt", "plan", "open"


def _applies(engine) -> bool:
    sch, kv = engine.scheduler, engine.kv
    return not kv.prefix_caching and sch.policy.victim_is_last and engine.token_gaps is None and not engine.kv_handover


def count_stretch(engine) -> tuple[list[Segment], str] | None:
    """Run the stretch from an engine whose next iteration preempts (every running request
    decoding); None when it cannot be counted (see the module docstring)."""
    if not _applies(engine):
        return None
    sch, kv, req, p = engine.scheduler, engine.kv, engine.requests, engine.params
    run = sch.running_array()
    B = len(run)
    if B == 0 or B > p.max_num_batched_tokens:
        return None
    bs = kv.block_size
    cached = req.computed[run]
    first = kv.own[run] * bs - cached + 1
    if int(first.min()) < 1 or int(first.max()) > bs or kv.shared[run].any():
        return None
    phase = first % bs
    walk = _Walk(engine, run, cached, phase)
    nxt = walk.walk()
    walk.settle()
    return walk.segments, nxt


class _Walk:
    """The counted stretch's state: the batch is always a prefix of ``run`` (victims leave from
    the tail); ``tau`` is the next iteration (1-based)."""

    def __init__(self, engine, run: np.ndarray, cached: np.ndarray, phase: np.ndarray) -> None:
        self.e, self.run, self.cached, self.phase = engine, run, cached, phase
        req = engine.requests
        self.bs, self.B, self.tau, self.free = engine.kv.block_size, len(run), 1, engine.kv.free
        self.count = np.bincount(phase, minlength=self.bs).tolist()
        self.phases = phase.tolist()
        self.cached_l = cached.tolist()
        self.csum = [0] + np.cumsum(cached).tolist()  # csum[n]: cached tokens of run[:n]
        self.first_done = np.minimum.accumulate(req.remaining(run)).tolist()  # [n]: run[:n+1]'s first finish
        self.now, self.last_start, self.max_used = engine.now, None, engine.max_kv_used
        self.victims: list[tuple[int, int, float]] = []  # (position, iterations it ran, its last token's time)
        self.segments: list[Segment] = []

    def _used_frac(self) -> float:
        n = self.e.kv.num_blocks
        return (n - self.free) / n if n else 0.0

    def walk(self) -> str:
        p = self.e.params
        while True:
            full, left = divmod(self.free, self.B)
            t = self.tau + full * self.bs
            while self.count[t % self.bs] <= left:
                left -= self.count[t % self.bs]
                t += 1
            m = t - self.tau  # iterations before the shortage at t
            if m and self.first_done[self.B - 1] <= t - 1:
                return PLAN  # the jump would end at a completion
            if m:
                self._jump(m, left)
            if self.first_done[self.B - 1] <= t:
                return PREEMPT  # a request may finish in the preempting iteration
            victim = self._preempting_iteration(t)
            if self.B == 0:
                return OPEN
            if not self._closed(victim, p.max_num_batched_tokens - self.B):
                return OPEN

    def _jump(self, m: int, free_after: int) -> None:
        """A plain jump of ``m`` iterations of the batch (as Engine._plain_jump)."""
        e, p, B = self.e, self.e.params, self.B
        ctx = float(self.csum[B] + B * (self.tau - 1)) + B * np.arange(1, m + 1, dtype=np.float64)
        target, launch = e.forward.decode_split_s(B, ctx)
        step = p.step_s(target, p.host_s(B, 0), B)
        total, target_s = float(step.sum()), float(target.sum())
        e.stats.add_decode_jump(e.forward.decode_const_parts(B, 1, None),
                                float(launch.sum()) if isinstance(launch, np.ndarray) else 0.0, m, target_s, 0.0, total)
        start = self.now
        self.now = start + total
        self.last_start = start + (float(np.cumsum(step)[m - 2]) if m > 1 else 0.0)
        self.free, self.tau = free_after, self.tau + m
        self.max_used = max(self.max_used, e.kv.num_blocks - self.free)
        e.stats.segments += 1
        self.segments.append(Segment(e.id, start, self.now, m, B, "decode", B * m, 0, 0, 0, B, target_s,
                                     float(target[0]), float(target[-1]), self._used_frac()))

    def _preempting_iteration(self, t: int) -> int:
        """Iteration ``t``, short of blocks: the walk, its victims, its pass (as
        Engine._preempting_step); returns the position of the last victim (the queue's head)."""
        e, p, bs, end, avail = self.e, self.e.params, self.bs, self.B, self.free
        preempted = 0
        needers = np.flatnonzero(self.phase[:end] == t % bs).tolist()
        for j in needers:
            if j >= end:
                break
            if avail == 0:
                while avail == 0 and end > j:
                    end -= 1
                    ran = t - 1
                    avail += -(-(self.cached_l[end] + ran) // bs)
                    self.count[self.phases[end]] -= 1
                    self.victims.append((end, ran, self.now))
                    preempted += 1
                if end == j:  # it preempted itself: the step ends
                    break
            avail -= 1
        n, self.free = end, avail
        self.max_used = max(self.max_used, e.kv.num_blocks - self.free)
        ctx = float(self.csum[n] + n * (t - 1) + n)
        parts = e.forward.components(PassShape(n, n, n, ctx, decode_pairs=ctx))
        gpu = sum(parts.values()) + 0.0
        step_s = float(p.step_s(gpu, p.host_s(n, 0), n)) + 0.0
        e.stats.add_pass(parts, 0.0, step_s, 0.0, 0.0)
        start = self.now
        self.now, self.last_start = start + step_s, start
        self.B, self.tau = n, t + 1
        e.stats.segments += 1
        self.segments.append(Segment(e.id, start, self.now, 1, n, "step", n, 0, preempted, 0, n, gpu, gpu, gpu,
                                     self._used_frac()))
        return self.victims[-1][0]

    def _closed(self, position: int, budget: int) -> bool:
        """:meth:`Scheduler.next_admission` is None for the queue's head (the victim at
        ``position``; no prefix caching: no hit, no shared blocks)."""
        e, p = self.e, self.e.params
        if not e.scheduler.admitting or budget <= 0 or self.B >= p.max_num_seqs:
            return True
        slot = int(self.run[position])
        need = int(e.requests.prompt[slot] + e.requests.generated[slot]) + self.victims[-1][1]
        if not p.enable_chunked_prefill and need > budget:
            return True
        return -(-min(need, budget) // self.bs) > self.free

    def settle(self) -> None:
        """Write the stretch's outcome into the requests, the cache and the engine."""
        e, req, kv, sch = self.e, self.e.requests, self.e.kv, self.e.scheduler
        if not self.segments:
            return
        T, B, bs = self.tau - 1, self.B, self.bs
        surv = self.run[:B]
        tokens = self.cached[:B] + T
        for position, ran, last_s in self.victims:  # their blocks are already counted free
            slot = int(self.run[position])
            kv.settle(slot, 0)
            if ran:
                req.computed[slot] = self.cached_l[position] + ran
                req.generated[slot] += ran
                req.last_token_s[slot] = last_s
        if T and B:
            req.computed[surv] = tokens
            req.generated[surv] += T
            req.last_token_s[surv] = self.now
            kv.settle(surv, -(-tokens // bs))
        kv.settle(surv[:0], surv[:0], self.free)
        for position, _, _ in self.victims:  # the tail, newest first: the queue's order
            sch.preempt(int(self.run[position]), position)
        assert kv.free == self.free
        e.now, e._last_step_start_s, e._resumed = self.now, self.last_start, False
        e.max_kv_used = self.max_used
        sch.peak_running = max(sch.peak_running, len(sch.running))
