"""A vLLM-V1-style engine: token-budget scheduler, paged KV, preemption by recompute.

One iteration (DESIGN 5, vLLM ``Scheduler.schedule``):

1. running requests in admission order each get ``num_tokens - num_computed_tokens`` new tokens
   (1 for a decode; a chunk for a prefill in progress) out of ``max_num_batched_tokens``; a
   request that needs a KV block when none is free preempts the *last* running request
   (recompute mode: its blocks are freed, it goes to the front of the waiting queue and later
   prefills prompt + generated tokens again), possibly itself;
2. if nothing was preempted, waiting requests are admitted in FIFO order while seats
   (``max_num_seqs``), budget and KV blocks allow (chunked prefill splits a prompt over steps;
   a prefix-cache hit on the group's shared prompt blocks skips those tokens);
3. the pass runs; a request whose tokens are all computed samples one token; it finishes when
   it has its sampled response length.

Step time = GPU pass time (rlsim.cost.ForwardModel) combined with host time
``step_us + per_seq_us * seqs + per_prefill_token_us * prefill_tokens``: added without async
scheduling, ``max(gpu, host)`` with it.

**Speculative decoding** (DESIGN 6): with a SpecRuntime, every decoding request is scheduled
for 1 + k tokens (the pending token and k drafts; KV slots are reserved for all of them), the
pass verifies them with logits at every position, the drafter proposes the next k, and the
request gains 1 + accepted tokens (accepted drawn per sequence and draft round from the
acceptance model) -- capped at its response length, so every sequence emits exactly the tokens
it would without speculation (lossless).  vLLM's counters (drafts, draft tokens, accepted,
accepted per position) are kept.

**Fast path** (DESIGN 5, performance): while every running request is decoding and no waiting
request can be admitted, the batch is fixed until the next completion or the next KV shortage;
the engine computes the time of all those iterations in one numpy expression and jumps.  The
``reference`` mode steps one iteration at a time; tests check both agree.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rlsim.cost.forward import COMPONENTS, ForwardModel, PassShape, verify_pairs
from rlsim.engine.jump import decode_jump
from rlsim.hardware.ops import ATTN_TILE_M
from rlsim.engine.kv import KvCache, blocks_for, shared_prompt_blocks
from rlsim.speculation.runtime import ctx_bucket

__all__ = ["EngineParams", "Segment", "Engine"]

WAITING, RUNNING, FINISHED = 0, 1, 2
#: Cap on (iterations x sequences) of random draws per fast-path jump with speculation.
MAX_DRAW_CELLS = 200_000
#: Future draft rounds buffered per sequence (acceptance draws; see Engine._accepted).
ACCEPT_BUFFER_ROUNDS = 256


@dataclass(frozen=True)
class EngineParams:
    """Scheduler and host-overhead settings of one engine (from EngineConfig)."""

    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    num_blocks: int
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    async_scheduling: bool = True
    cpu_step_s: float = 1000e-6
    cpu_per_seq_s: float = 4e-6
    cpu_per_prefill_token_s: float = 0.02e-6
    async_exposed_s: float = 0.0
    fast: bool = True


@dataclass
class Segment:
    """One or more consecutive iterations with the same running batch."""

    engine: int
    t0_s: float
    t1_s: float
    iterations: int
    running: int
    kind: str  # "decode" (fast-path jump), "mixed" (prefill in the pass), "step" (one decode step)
    new_tokens: int
    prefill_tokens: int
    preemptions: int = 0
    finished: int = 0


@dataclass(frozen=True)
class Jump:
    """A planned fast-path jump: ``m`` decode iterations of the running batch ``run``."""

    run: np.ndarray
    c: np.ndarray          # cached tokens of each sequence at the start
    k: int                 # drafts per iteration (0: no speculation)
    m: int
    ctx: np.ndarray        # total context per iteration
    gpu: np.ndarray        # target pass time per iteration
    draft: np.ndarray      # drafting time per iteration
    dt: np.ndarray         # step time per iteration
    cum: np.ndarray        # cumulative step time
    adv: np.ndarray | None  # tokens advanced per iteration and sequence (m x B); None without drafts (1 each)
    acc: np.ndarray | None
    t0: float

    @property
    def duration_s(self) -> float:
        return float(self.cum[-1])

    def iterations_started_by(self, elapsed_s: float) -> int:
        """Iterations begun within ``elapsed_s`` of the start (the one in progress included)."""
        return int(np.searchsorted(self.cum, elapsed_s, side="right")) + 1


@dataclass
class EngineStats:
    """Totals accumulated over a run."""

    iterations: int = 0
    preemptions: int = 0
    prefill_tokens: int = 0
    recomputed_tokens: int = 0
    busy_s: float = 0.0
    components_s: dict = field(default_factory=lambda: {c: 0.0 for c in COMPONENTS + ("drafting", "host_exposed")})
    num_drafts: int = 0
    num_draft_tokens: int = 0
    accepted_hist: np.ndarray = field(default_factory=lambda: np.zeros(33, dtype=np.int64))  # rounds by accepted count
    spec_iterations: int = 0

    @property
    def num_accepted_tokens(self) -> int:
        return int((self.accepted_hist * np.arange(len(self.accepted_hist))).sum())

    @property
    def accepted_per_pos(self) -> np.ndarray:
        """Rounds whose position i (0-based) was accepted: rounds with more than i accepted."""
        return np.cumsum(self.accepted_hist[::-1])[::-1][1:]


class Engine:
    """One engine serving the sequences dealt to it.  Not a simpy process itself: ``step()``
    advances its own clock by one segment and returns it; a thin simpy process yields it."""

    def __init__(
        self,
        engine_id: int,
        forward: ForwardModel,
        params: EngineParams,
        seq_ids: np.ndarray,
        group_ids: np.ndarray,
        prompt_len: np.ndarray,
        response_len: np.ndarray,
        start_s: float = 0.0,
        spec=None,
    ) -> None:
        self.id = engine_id
        self.fwd = forward
        self.p = params
        self.spec = spec  # rlsim.speculation.SpecRuntime or None
        empty_i = np.zeros(0, dtype=np.int64)
        self.seq_ids, self.prompt, self.resp, self.gen, self.computed = (empty_i.copy() for _ in range(5))
        self.preempted, self.rounds = empty_i.copy(), empty_i.copy()
        self.status = np.zeros(0, dtype=np.int8)
        self.admit_s, self.first_token_s, self.finish_s = (np.zeros(0) for _ in range(3))
        self.kv = KvCache(params.num_blocks, params.block_size, empty_i.copy(), empty_i.copy(), 0)
        self._group_index: dict[int, int] = {}
        self._acc_buf: np.ndarray | None = None  # buffered future acceptance draws (see _accepted)
        self._acc_base: np.ndarray | None = None
        self.waiting: deque[int] = deque()
        self.running: list[int] = []
        self.admitting = True  # False while draining for a weight update
        self.just_finished: list[int] = []  # global ids finished by the last step
        self.now = start_s
        self.stats = EngineStats()
        self.peak_running = 0
        self.max_kv_used = 0
        self.add_sequences(seq_ids, group_ids, prompt_len, response_len)

    def add_sequences(self, seq_ids, group_ids, prompt_len, response_len) -> None:
        """Queue more requests (FIFO after the waiting ones); samples of a group share a prompt."""
        seq_ids, group_ids = np.asarray(seq_ids, dtype=np.int64), np.asarray(group_ids, dtype=np.int64)
        prompt, resp = np.asarray(prompt_len, dtype=np.int64), np.asarray(response_len, dtype=np.int64)
        n0, n = len(self.seq_ids), len(seq_ids)
        if n == 0:
            return
        local = np.array([self._group_index.setdefault(int(g), len(self._group_index)) for g in group_ids], dtype=np.int64)
        first = {}
        for g, p in zip(local.tolist(), prompt.tolist()):
            if first.setdefault(g, p) != p:
                raise ValueError("the samples of one group must share one prompt length")
        zeros = np.zeros(n, dtype=np.int64)
        self.seq_ids = np.concatenate([self.seq_ids, seq_ids])
        self.prompt = np.concatenate([self.prompt, prompt])
        self.resp = np.concatenate([self.resp, resp])
        self.gen, self.computed = np.concatenate([self.gen, zeros]), np.concatenate([self.computed, zeros])
        self.preempted, self.rounds = np.concatenate([self.preempted, zeros]), np.concatenate([self.rounds, zeros])
        self.status = np.concatenate([self.status, np.full(n, WAITING, dtype=np.int8)])
        nan = np.full(n, np.nan)
        self.admit_s, self.first_token_s = np.concatenate([self.admit_s, nan]), np.concatenate([self.first_token_s, nan])
        self.finish_s = np.concatenate([self.finish_s, nan])
        shared = shared_prompt_blocks(prompt, self.p.block_size, self.p.enable_prefix_caching)
        self.kv.extend(local, shared, len(self._group_index))
        self._acc_buf = self._acc_base = None
        self.waiting.extend(range(n0, n0 + n))

    # ------------------------------------------------------------------ public
    def done(self) -> bool:
        """True when every queued sequence has finished."""
        return not self.waiting and not self.running

    def idle(self) -> bool:
        """True when nothing can run now (all done, or draining finished with requests held)."""
        return not self.running and (not self.waiting or not self.admitting)

    def step(self) -> Segment:
        """Advance by one segment (a fast-path jump or a single iteration)."""
        jump = self.plan()
        return self.commit(jump) if jump is not None else self._one_iteration()

    def plan(self) -> "Jump | None":
        """A fast-path jump from now (nothing changed yet), or None when the next iteration must
        take the slow path.  :meth:`commit` applies it, in full or its first iterations."""
        self.just_finished = []
        if not self.p.fast:
            return None
        closed = self._decode_only_and_closed()
        return self._plan_fast(*closed) if closed is not None else None

    def step_slow(self) -> Segment:
        """One iteration on the slow path (scheduling, prefill, preemption)."""
        self.just_finished = []
        return self._one_iteration()

    def preempt_all(self) -> int:
        """Preempt every running request (KV recompute after an in-flight weight update)."""
        n = len(self.running)
        while self.running:
            self._preempt(self.running[-1])
        return n

    # ------------------------------------------------------------------ helpers
    def num_tokens(self, s: int) -> int:
        return int(self.prompt[s] + self.gen[s])

    def _host_s(self, seqs: int, prefill_tokens: int) -> float:
        p = self.p
        return p.cpu_step_s + p.cpu_per_seq_s * seqs + p.cpu_per_prefill_token_s * prefill_tokens

    def _combine(self, gpu_s, host_s):
        """Step time from GPU and host time: overlapped with async scheduling, else serial."""
        if self.p.async_scheduling:
            return np.maximum(gpu_s, host_s) + self.p.async_exposed_s
        return gpu_s + host_s

    def _decode_only_and_closed(self) -> tuple[np.ndarray, int] | None:
        """(running, k) when all running requests decode and no waiting one can be admitted."""
        if not self.running:
            return None
        run = np.fromiter(self.running, dtype=np.int64, count=len(self.running))
        if np.any(self.prompt[run] + self.gen[run] - self.computed[run] != 1):
            return None
        k = self._k(len(run), float(self.computed[run].sum()) + len(run))
        if self._head_admissible(self.p.max_num_batched_tokens - len(run) * (1 + k)):
            return None
        return run, k

    def _head_admissible(self, budget: int) -> bool:
        if not self.admitting or not self.waiting or budget <= 0 or len(self.running) >= self.p.max_num_seqs:
            return False
        s = self.waiting[0]
        hit = self.kv.prefix_hit_tokens(s) if self.p.enable_prefix_caching else 0
        need = self.num_tokens(s) - hit
        if not self.p.enable_chunked_prefill and need > budget:
            return False
        n = min(need, budget)
        return self.kv.admission_blocks(s, hit + n) <= self.kv.free

    # ------------------------------------------------------------------ speculation
    def _slow_k(self) -> int:
        """k for a slow-path iteration (the context sum is needed only by adaptive k)."""
        if self.spec is None or not self.running:
            return 0
        B = len(self.running)
        if not self.spec.adaptive:
            return self._k(B, 0.0)
        run = np.fromiter(self.running, dtype=np.int64, count=B)
        return self._k(B, float(self.computed[run].sum()) + B)

    def _k(self, batch: int, ctx_tokens: float) -> int:
        """Drafts per decoding request this iteration (0 without speculation)."""
        return 0 if self.spec is None else self.spec.k_for(batch, ctx_tokens)

    def _accepted(self, run: np.ndarray, rounds: int, k: int, gen_before: np.ndarray | None = None) -> np.ndarray:
        """Accepted drafts (rounds x len(run)) for the next ``rounds`` draft rounds of ``run``.

        Draws come from a per-engine buffer of ``ACCEPT_BUFFER_ROUNDS`` future rounds per
        sequence at k_max (a round with k drafts accepts ``min(A_kmax, k)`` of the same draw),
        refilled from the counter-based sampler; the outcome is identical to sampling directly.
        """
        sampler = self.spec.sampler
        if getattr(sampler.model, "context_decay", None) is not None:
            return self._accepted_with_context(run, rounds, k, gen_before)
        if rounds > ACCEPT_BUFFER_ROUNDS:
            return sampler.sample(self.seq_ids[run], self.rounds[run], rounds, k)
        if self._acc_buf is None:
            self._acc_buf = np.zeros((len(self.seq_ids), ACCEPT_BUFFER_ROUNDS), dtype=np.int8)
            self._acc_base = np.full(len(self.seq_ids), -(10**9), dtype=np.int64)
        offset = self.rounds[run] - self._acc_base[run]
        stale = (offset < 0) | (offset + rounds > ACCEPT_BUFFER_ROUNDS)
        if stale.any():
            refill = run[stale]
            self._acc_buf[refill] = sampler.sample(self.seq_ids[refill], self.rounds[refill], ACCEPT_BUFFER_ROUNDS,
                                                   self.spec.k_max).T
            self._acc_base[refill] = self.rounds[refill]
            offset = self.rounds[run] - self._acc_base[run]
        flat = (run * ACCEPT_BUFFER_ROUNDS + offset)[None, :] + np.arange(rounds)[:, None]
        acc = self._acc_buf.ravel().take(flat).astype(np.int64)
        return np.minimum(acc, k) if k < self.spec.k_max else acc

    def _accepted_with_context(self, run: np.ndarray, rounds: int, k: int, gen_before: np.ndarray | None) -> np.ndarray:
        """Row by row: the context (and so the decayed acceptance) depends on earlier rounds."""
        sampler = self.spec.sampler
        ids = self.seq_ids[run]
        out = np.empty((rounds, len(run)), dtype=np.int64)
        ctx = (self.prompt[run] + (self.gen[run] if gen_before is None else gen_before)).astype(np.float64)
        for r in range(rounds):
            out[r] = sampler.sample(ids, self.rounds[run] + r, 1, k, ctx[None, :])[0]
            ctx = ctx + 1 + out[r]
        return out

    def _count_drafts(self, acc: np.ndarray, k: int) -> None:
        """vLLM's counters: drafts, draft tokens, accepted tokens, accepted per position."""
        st = self.stats
        st.num_drafts += acc.size
        st.num_draft_tokens += acc.size * k
        st.accepted_hist[: k + 1] += np.bincount(acc.ravel(), minlength=k + 1)

    # ------------------------------------------------------------------ fast path
    def _plan_fast(self, run: np.ndarray, k: int) -> "Jump | None":
        """Plan a jump over decode-only iterations up to the next completion or KV shortage."""
        c = self.computed[run]
        if k > 0:
            return self._plan_spec(run, c, k)
        B = len(run)
        m = int((self.resp[run] - self.gen[run]).min())
        bs = self.p.block_size
        base = blocks_for(c, bs)
        if int((blocks_for(c + m, bs) - base).sum()) > self.kv.free:
            lo, hi = 0, m  # largest i with demand(i) <= free
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if int((blocks_for(c + mid, bs) - base).sum()) <= self.kv.free:
                    lo = mid
                else:
                    hi = mid - 1
            m = lo
        m = self._adaptive_limit(B, float(c.sum()) + B * np.arange(1, m + 1, dtype=np.float64), m)
        if m == 0:
            return None  # the next iteration preempts (or changes k): take the slow path
        ctx = float(c.sum()) + B * np.arange(1, m + 1, dtype=np.float64)
        gpu = self.fwd.decode_times_s(B, ctx)
        return self._jump(run, c, 0, m, ctx, gpu, np.zeros(m), None, None)

    def _plan_spec(self, run: np.ndarray, c: np.ndarray, k: int) -> "Jump | None":
        """Plan a jump with speculation: acceptance drawn for the coming rounds."""
        B, q = len(run), 1 + k
        if B * q > self.p.max_num_batched_tokens:
            return None
        own, shared = self.kv.own[run], self.kv.shared[run]
        if int(np.maximum(blocks_for(c + q, self.p.block_size) - shared - own, 0).sum()) > self.kv.free:
            return None  # the very next iteration is short of KV: the slow path preempts
        rem = self.resp[run] - self.gen[run]
        first_done = rem.min() / (1.0 + self.spec.expected_accepted[k])  # expected rounds to a completion
        rows = int(min(rem.min(), max(1, MAX_DRAW_CELLS // (B * k)), first_done + 4))  # a jump may end event-free
        acc = self._accepted(run, rows, k)
        adv = 1 + acc
        m, prev = decode_jump(c, rem, own, shared, self.kv.free, self.p.block_size, adv, q)
        ctx = (c + prev[:m]).sum(axis=1).astype(np.float64) + B * q
        m = self._adaptive_limit(B, ctx - B * k, m)
        if m == 0:
            return None
        ctx = ctx[:m]
        gpu = self.fwd.decode_times_s(B, ctx, q=q)
        draft = self.spec.drafter.propose_times_s(B, ctx, k)
        return self._jump(run, c, k, m, ctx, gpu, draft, adv[:m], acc[:m])

    def _jump(self, run, c, k, m, ctx, gpu, draft, adv, acc) -> "Jump":
        B = len(run)
        host = self._host_s(B, 0) + (self.spec.drafter.host_time_s(B) if k > 0 else 0.0)
        dt = np.broadcast_to(self._combine(gpu + draft, host), (m,))
        return Jump(run, c, k, m, ctx, gpu, np.broadcast_to(draft, (m,)), dt, np.cumsum(dt), adv, acc, self.now)

    def commit(self, j: "Jump", m: int | None = None) -> Segment:
        """Apply the first ``m`` iterations of a planned jump (all by default)."""
        m = j.m if m is None else max(1, min(m, j.m))
        run, c, k, B, q = j.run, j.c, j.k, len(j.run), 1 + j.k
        total = self._account_decode(B, j.ctx[:m], j.gpu[:m], j.draft[:m], j.dt[:m], m, q)
        if k == 0:
            advanced = np.full(B, m, dtype=np.int64)
            last = c + m - 1
        else:
            prev_last = j.adv[: m - 1].sum(axis=0) if m > 1 else np.zeros(B, dtype=np.int64)
            advanced = prev_last + j.adv[m - 1]
            last = c + prev_last
            self.rounds[run] += m
            self._count_drafts(j.acc[:m], k)
            self.stats.spec_iterations += m
        rem = self.resp[run] - self.gen[run]
        self._set_own(run, last, q)
        self.computed[run] = c + advanced
        self.gen[run] += np.minimum(advanced, rem)
        self.now = j.t0 + total
        return self._close_jump(run, m, B, j.t0)

    def _adaptive_limit(self, B: int, ctx_after_first_token: np.ndarray, m: int) -> int:
        """With adaptive k, end the jump where the context bucket (and so maybe k) changes."""
        if self.spec is None or not self.spec.adaptive or m == 0:
            return m
        buckets = ctx_bucket((np.asarray(ctx_after_first_token[:m]) - B) / B)
        change = np.flatnonzero(buckets != buckets[0])
        return int(change[0]) if len(change) else m

    def _set_own(self, run: np.ndarray, c_last: np.ndarray, q: int) -> None:
        """Private blocks after a jump whose last iteration reserved slots up to ``c_last + q``."""
        new_own = np.maximum(self.kv.own[run], np.maximum(0, blocks_for(c_last + q, self.p.block_size) - self.kv.shared[run]))
        self.kv.free -= int((new_own - self.kv.own[run]).sum())
        self.kv.own[run] = new_own
        assert self.kv.free >= 0

    def _close_jump(self, run: np.ndarray, m: int, B: int, t0: float) -> Segment:
        finished = self._finish_done(run)
        self.max_kv_used = max(self.max_kv_used, self.kv.used())
        self.stats.iterations += m
        return Segment(self.id, t0, self.now, m, B, "decode", B * m, 0, 0, finished)

    def _account_decode(self, B: int, ctx: np.ndarray, gpu: np.ndarray, draft: np.ndarray, dt: np.ndarray,
                        m: int, q: int) -> float:
        """Add a jump's time to the breakdown; returns its total duration."""
        total = float(dt.sum())
        comp = self.stats.components_s
        const = self.fwd.decode_const_parts(B, q)
        launch = self.fwd.launch_overhead_s(True)
        for key, v in const.items():
            comp[key] += v * m
        gpu_sum, draft_sum = float(gpu.sum()), float(np.sum(draft))
        comp["launch"] += launch * m
        comp["attention"] += max(0.0, gpu_sum - (sum(const.values()) + launch) * m)  # the context-dependent part
        comp["drafting"] += draft_sum
        comp["host_exposed"] += max(0.0, total - gpu_sum - draft_sum)
        self.stats.busy_s += total
        return total

    # ------------------------------------------------------------------ slow path
    def _one_iteration(self) -> Segment:
        k = self._slow_k()
        sched, preemptions = self._schedule(k)
        assert len(sched[0]), "engine stalled: nothing schedulable (KV smaller than one request?)"
        shape, prefill_tokens, n_dec, kq = self._pass_shape(sched)
        parts = self.fwd.components(shape)
        gpu = sum(parts.values())
        draft = 0.0
        host = self._host_s(len(sched[0]), prefill_tokens)
        if self.spec is not None:
            if kq > 0:
                draft = float(self.spec.drafter.propose_times_s(n_dec, np.array([shape.decode_ctx_tokens]), kq)[0])
                host += self.spec.drafter.host_time_s(n_dec)
            draft += self.spec.drafter.prefill_time_s(shape)
        dt = float(self._combine(gpu + draft, host))
        comp = self.stats.components_s
        for key, v in parts.items():
            comp[key] += v
        comp["drafting"] += draft
        comp["host_exposed"] += max(0.0, dt - gpu - draft)
        self.stats.busy_s += dt
        self.stats.iterations += 1
        self.stats.prefill_tokens += prefill_tokens
        t0 = self.now
        self.now = t0 + dt
        B = len(self.running)
        finished = self._advance(sched)
        kind = "mixed" if prefill_tokens else "step"
        return Segment(self.id, t0, self.now, 1, B, kind, shape.num_tokens, prefill_tokens, preemptions, finished)

    def _schedule(self, k: int = 0) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
        """Pick (seqs, new_tokens, computed_before) for one iteration; also returns preemptions.

        A decoding request is scheduled for 1 + k tokens (fewer when the budget runs out)."""
        budget = self.p.max_num_batched_tokens
        seqs: list[int] = []
        news: list[int] = []
        befores: list[int] = []
        bulks: list[np.ndarray] = []
        i = 0
        preemptions = 0
        while i < len(self.running) and budget > 0:
            idx = self._bulk_decodes(i, budget, k)
            if len(idx):
                bulks.append(idx)
                i += len(idx)
                budget -= len(idx) * (1 + k)
                continue
            s = self.running[i]
            c = int(self.computed[s])
            pending = self.num_tokens(s) - c
            n = min(pending + (k if pending == 1 else 0), budget)
            need = self.kv.own_after(s, c + n) - int(self.kv.own[s])
            victim_was_self = False
            while need > self.kv.free:
                victim = self.running[-1]
                self._preempt(victim)
                preemptions += 1
                if victim == s:
                    victim_was_self = True
                    break
            if victim_was_self:
                break
            self.kv.grow(s, c + n, int(self.prompt[s]))
            seqs.append(s)
            news.append(n)
            befores.append(c)
            budget -= n
            i += 1
        if preemptions == 0 and self.admitting:
            self._admit((seqs, news, befores), budget)
        self.peak_running = max(self.peak_running, len(self.running))
        self.max_kv_used = max(self.max_kv_used, self.kv.used())
        arr = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
        bulk = np.concatenate(bulks) if bulks else np.zeros(0, dtype=np.int64)
        sched = (np.concatenate([bulk, arr(seqs)]), np.concatenate([np.full(len(bulk), 1 + k, np.int64), arr(news)]),
                 np.concatenate([self.computed[bulk], arr(befores)]))
        return sched, preemptions

    def _bulk_decodes(self, start: int, budget: int, k: int = 0) -> np.ndarray:
        """Schedule, at once, the longest run of decoding requests from ``running[start]`` whose
        1 + k new slots fit in the free pool and the budget (vLLM would schedule them one by
        one with the same result).  Empty when the request at ``start`` is not decoding or
        needs a block that is not free.
        """
        q = 1 + k
        run = np.fromiter(self.running[start:], dtype=np.int64, count=len(self.running) - start)
        pending = self.prompt[run] + self.gen[run] - self.computed[run]
        other = np.flatnonzero(pending != 1)
        n = min(int(other[0]) if len(other) else len(run), budget // q)
        idx = run[:n]
        c = self.computed[idx]
        new_own = np.maximum(self.kv.own[idx], blocks_for(c + q, self.p.block_size) - self.kv.shared[idx])
        fits = np.cumsum(new_own - self.kv.own[idx]) <= self.kv.free
        n = int(np.argmin(fits)) if not fits.all() else n
        idx, new_own = idx[:n], new_own[:n]
        self.kv.free -= int((new_own - self.kv.own[idx]).sum())
        self.kv.own[idx] = new_own
        return idx

    def _admit(self, sched: tuple[list, list, list], budget: int) -> int:
        while self.waiting and budget > 0 and len(self.running) < self.p.max_num_seqs:
            s = self.waiting[0]
            hit = self.kv.prefix_hit_tokens(s) if self.p.enable_prefix_caching else 0
            need = self.num_tokens(s) - hit
            if not self.p.enable_chunked_prefill and need > budget:
                break
            n = min(need, budget)
            if self.kv.admission_blocks(s, hit + n) > self.kv.free:
                break
            self.waiting.popleft()
            self.kv.admit(s, hit + n, int(self.prompt[s]))
            self.computed[s] = hit
            self.status[s] = RUNNING
            if np.isnan(self.admit_s[s]):
                self.admit_s[s] = self.now
            self.running.append(s)
            sched[0].append(s)
            sched[1].append(n)
            sched[2].append(hit)
            budget -= n
        return budget

    def _preempt(self, s: int) -> None:
        self.running.pop()
        self.kv.release(s)
        self.computed[s] = 0
        self.status[s] = WAITING
        self.preempted[s] += 1
        self.stats.preemptions += 1
        self.waiting.appendleft(s)

    def _pass_shape(self, sched: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[PassShape, int, int, int]:
        """The pass's shape; also prefill tokens, decoding requests and their drafts k."""
        seqs, n, c = sched
        total = self.prompt[seqs] + self.gen[seqs]
        dec = c + 1 == total
        pn, pc = n[~dec], c[~dec]
        qd, cd = n[dec], c[dec]
        ctx = cd + qd
        shape = PassShape(
            num_tokens=int(n.sum()),
            num_logits=int(qd.sum()) + int(np.count_nonzero(pc + pn == total[~dec])),
            decode_seqs=int(len(qd)),
            decode_ctx_tokens=float(ctx.sum()),
            prefill_seqs=int(len(pn)),
            prefill_pairs=float((pn * (pc + (pn + 1) / 2.0)).sum()),
            prefill_kv_tokens=float((pc + pn).sum()),
            decode_pairs=float((qd * ctx - qd * (qd - 1) / 2.0).sum()),
            prefill_tokens=float(pn.sum()),
            prefill_tiles=float(np.ceil(pn / ATTN_TILE_M).sum()) if len(pn) else 0.0,
            prefill_max_keys=float((pc + pn).max()) if len(pn) else 0.0,
        )
        kq = int(qd.max()) - 1 if len(qd) else 0
        return shape, int(pn.sum()), int(len(qd)), kq

    def _advance(self, sched: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
        seqs, n, c = sched
        total = self.prompt[seqs] + self.gen[seqs]
        dec = c + 1 == total
        pre, pre_n, pre_c = seqs[~dec], n[~dec], c[~dec]
        self.stats.recomputed_tokens += int(pre_n[self.gen[pre] > 0].sum())  # re-prefill after preemption
        self.computed[pre] = pre_c + pre_n
        sampled = pre[pre_c + pre_n == total[~dec]]
        self.gen[sampled] += 1
        d, dn, dc = seqs[dec], n[dec], c[dec]
        adv = np.ones(len(d), dtype=np.int64)
        if len(d) and dn.max() > 1:
            self.stats.spec_iterations += 1
            ks = [int(dn[0]) - 1] if dn.min() == dn.max() else np.unique(dn - 1).tolist()
            for k in ks:
                rows = np.flatnonzero(dn - 1 == k) if len(ks) > 1 else np.arange(len(d))
                if k > 0:
                    acc = self._accepted(d[rows], 1, k)[0]
                    adv[rows] += acc
                    self.rounds[d[rows]] += 1
                    self._count_drafts(acc[None, :], k)
        self.computed[d] = dc + adv
        self.gen[d] += np.minimum(adv, self.resp[d] - self.gen[d])
        touched = np.concatenate([sampled, d])
        first = touched[np.isnan(self.first_token_s[touched])]
        self.first_token_s[first] = self.now
        done = touched[self.gen[touched] == self.resp[touched]]
        return self._finish(done.tolist()) if len(done) else 0

    def _finish_done(self, run: np.ndarray) -> int:
        done = run[self.gen[run] == self.resp[run]]
        return self._finish(done.tolist()) if len(done) else 0

    def _finish(self, done: list[int]) -> int:
        gone = set(done)
        for s in done:
            self.kv.release(s)
            self.status[s] = FINISHED
            self.finish_s[s] = self.now
        self.just_finished = self.seq_ids[done].tolist()
        self.running = [s for s in self.running if s not in gone]
        return len(done)
