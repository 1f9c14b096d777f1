"""A vLLM-V1-style engine: iteration loop, speculative rounds, fast-path jumps.

The engine composes its rooms and keeps the clock:

* :class:`~rlsim.engine.requests.RequestTable` -- per-request token counts and times;
* :class:`~rlsim.engine.scheduler.Scheduler` -- which requests run each iteration (vLLM V1's
  token-budget schedule, chunked prefill, preemption by recompute) under a
  :mod:`scheduling policy <rlsim.engine.policy>`;
* :class:`~rlsim.engine.kv.KvCache` -- the only owner of KV blocks;
* :class:`~rlsim.engine.params.EngineParams` -- step time from GPU and host time;
* with speculation, a :class:`~rlsim.speculation.runtime.SpecRuntime` (drafter, k policy and
  the acceptance draws, keyed by sequence id).

One iteration: schedule, time the pass (rlsim.cost.ForwardModel, plus drafting), advance every
scheduled request (a finished prefill samples one token; a decode gains 1 token, or 1 +
accepted drafts with speculation -- capped at its response length, so every sequence emits
exactly the tokens it would without speculation: lossless), retire finished requests.

**Speculative decoding** (DESIGN 6): every decoding request is scheduled for 1 + k tokens (the
pending token and k drafts; KV slots are reserved for all of them), the pass verifies them with
logits at every position, the drafter proposes the next k.  vLLM's counters (drafts, draft
tokens, accepted, accepted per position) are kept.

**Fast path** (DESIGN 5, :mod:`rlsim.engine.jump`): while every running request decodes and no
waiting request can be admitted -- the scheduler's own admission rule says so -- the batch is
fixed until the next completion or KV shortage; the engine times all those iterations at once
and jumps.  ``EngineParams.fast = False`` (``simulation.mode: reference``) steps one iteration
at a time; tests check both agree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from rlsim.cost.forward import ForwardModel, PassShape
from rlsim.engine.jump import Jump, JumpPlanner, plain_decode_iterations
from rlsim.engine.kv import KvCache, shared_prompt_blocks
from rlsim.engine.params import EngineParams
from rlsim.engine.passes import PassWork, pass_work
from rlsim.engine.policy import SchedulingPolicy, policy_named
from rlsim.engine.requests import RequestTable
from rlsim.engine.scheduler import ScheduledBatch, Scheduler
from rlsim.engine.segment import Segment
from rlsim.engine.stats import EngineStats, TokenGaps
from rlsim.engine.stretch import OPEN, PLAN, count_stretch

__all__ = ["Engine", "StepPlan"]


@dataclass(frozen=True)
class StepPlan:
    """A scheduled, priced slow-path iteration (:meth:`Engine.prepare_step`)."""

    batch: ScheduledBatch
    work: PassWork
    parts: dict[str, float]
    draft_s: float  # speculative GPU work beyond the target pass: drafting + reject_s
    host_s: float
    reject_s: float = 0.0  # verification beyond the target's kernels (rejection sampler), part of draft_s
    serial_s: float = 0.0  # host time async scheduling cannot hide (the n-gram proposer)
    remote_s: float = 0.0  # the decoupled drafter's own time (rlsim.speculation.decoupled; 0: coupled)
    #: the pass as priced: ``work.shape`` less the draft slots it does not compute (budget slack,
    #: n-gram requests without a match); None = ``work.shape``
    shape: PassShape | None = None

    @property
    def gpu_s(self) -> float:
        """GPU time: the target pass plus drafting and verification extras."""
        return sum(self.parts.values()) + self.draft_s

class Engine:
    """One engine serving the sequences dealt to it.  Not a simpy process itself: ``step()``
    advances its own clock by one segment and returns it; a thin simpy process yields it."""

    def __init__(self, engine_id: int, forward: ForwardModel, params: EngineParams, seq_ids, group_ids, prompt_len,
                 response_len, start_s: float = 0.0, spec=None, policy: SchedulingPolicy | None = None) -> None:
        self.id = engine_id
        self.forward = forward
        self.params = params
        self.spec = spec  # rlsim.speculation.SpecRuntime or None
        self.requests = RequestTable()
        empty = np.zeros(0, dtype=np.int64)
        self.kv = KvCache(params.num_blocks, params.block_size, empty, empty.copy(), 0, params.enable_prefix_caching)
        self.stats = EngineStats()
        self.token_gaps = TokenGaps() if params.record_token_gaps else None
        self.scheduler = Scheduler(params, self.requests, self.kv, policy or policy_named(params.scheduling_policy),
                                   self.stats)
        self.just_finished: list[int] = []  # global ids finished by the last step
        self.now = start_s
        self._last_step_start_s = start_s  # when the previous step started (async admission lag)
        self._resumed = True               # no step ran since the engine was (re)started idle
        self._short_next = False           # the last step() was a jump that ended short of KV
        self.max_kv_used = 0
        #: finished request id -> id of the later request that adopts its KV (multi-turn agents)
        self.kv_handover: dict[int, int] = {}
        self._kv_kept = False  # some finished request's KV was kept for a later one
        self._planner = JumpPlanner(self.requests, self.kv, forward, params, spec, engine_id)
        self.add_sequences(seq_ids, group_ids, prompt_len, response_len)

    def add_sequences(self, seq_ids, group_ids, prompt_len, response_len, prefix_len=None,
                      arrival_s: float | None = None) -> None:
        """Queue more requests (after the waiting ones), arriving at ``arrival_s`` (default: the
        engine's clock); the requests of a group share their first ``prefix_len`` prompt tokens
        (default: a GRPO group's whole prompt)."""
        if len(seq_ids) == 0:
            return
        self._short_next = False
        arrival_s = self.now if arrival_s is None else arrival_s
        slots = self.requests.add(seq_ids, group_ids, prompt_len, response_len, prefix_len, arrival_s=arrival_s)
        req, new = self.requests, slice(slots.start, None)
        shared = shared_prompt_blocks(req.prompt[new], self.params.block_size, self.params.enable_prefix_caching,
                                      None if prefix_len is None else req.prefix[new])
        self.kv.extend(req.group[new], shared, req.num_groups)
        self._set_budgets(new)
        if self._kv_kept:  # a later turn adopts its predecessor's kept KV (KvCache.keep)
            for slot in slots:
                self.kv.adopt(slot, int(req.seq_ids[slot]))
        for slot in slots:
            self.scheduler.waiting.push(slot)

    # ------------------------------------------------------------------ views
    members = property(lambda self: (self,), doc="the engines whose records a summary reads (a DP group: its ranks)")
    running = property(lambda self: self.scheduler.running, doc="running request slots, in admission order")
    waiting = property(lambda self: self.scheduler.waiting, doc="the waiting queue (policy order)")
    peak_running = property(lambda self: self.scheduler.peak_running)
    seq_ids = property(lambda self: self.requests.seq_ids)
    prompt = property(lambda self: self.requests.prompt)
    resp = property(lambda self: self.requests.response)
    gen = property(lambda self: self.requests.generated)
    computed = property(lambda self: self.requests.computed)
    preempted = property(lambda self: self.requests.preemptions)
    admit_s = property(lambda self: self.requests.admit_s)
    first_token_s = property(lambda self: self.requests.first_token_s)
    finish_s = property(lambda self: self.requests.finish_s)

    @property
    def admitting(self) -> bool:
        """False while draining for a weight update (no admissions)."""
        return self.scheduler.admitting

    @admitting.setter
    def admitting(self, value: bool) -> None:
        self.scheduler.admitting, self._short_next = value, False

    # ------------------------------------------------------------------ public
    def done(self) -> bool:
        """True when every queued sequence has finished."""
        return not self.scheduler.waiting and not self.scheduler.running

    def idle(self) -> bool:
        """True when nothing can run now (all done, or draining finished with requests held)."""
        return not self.scheduler.running and (not self.scheduler.waiting or not self.scheduler.admitting)

    def step(self) -> Segment:
        """Advance by one segment (a fast-path jump or a single iteration).  After a jump that
        ended short of KV (applied in full, nothing finished, nothing changed since) the next
        iteration is known to take the slow path: :meth:`plan` is not asked again."""
        if self._short_next:
            self._short_next, self.just_finished = False, []
            return self._one_iteration(preempting=True)
        jump = self.plan()
        if jump is None:
            return self._one_iteration()
        seg = self.commit(jump)
        self._short_next = jump.ends_short and not seg.finished
        return seg

    def advance(self) -> list[Segment]:
        """Advance by one :meth:`step` or, on the plain fast path, by the stretch of steps that
        follows a jump short of KV while nothing but decoding and preemption happens: each
        preempting iteration and the jump after it, up to a completion, an iteration the waiting
        queue's head can join, or a case the shortcuts leave to the general path.  The same
        segments, in the same order, as calling :meth:`step` that many times (KV thrash: vLLM
        preempts the newest request whenever a running one needs a block, so plain decoding
        under a deep queue alternates short jumps and preempting iterations).  Without prefix
        caching the stretch is counted (:mod:`rlsim.engine.stretch`), else stepped on lean paths."""
        if not self._stretches:
            return [self.step()]
        segs: list[Segment] = []
        budget = self.params.max_num_batched_tokens
        if not self._short_next:  # as step(): a jump of a closed decoding batch, else one iteration
            self.just_finished = []
            run = self.scheduler.decoding_batch()
            if run is None:
                return [self._one_iteration()]
            if not self.scheduler.closed(budget - len(run)):  # the queue's head joins
                return [self._one_iteration(admitting=True)]
            seg = self._plain_jump(run)
            if seg is not None:
                if not self._short_next:  # it ended at a completion
                    return [seg]
                segs.append(seg)
        while True:  # the next iteration preempts
            self._short_next, self.just_finished = False, []
            counted = count_stretch(self)
            if counted is not None:
                part, nxt = counted
                segs.extend(part)
                if nxt == OPEN:
                    return segs
                if nxt == PLAN:  # the next jump ends at a completion
                    segs.append(self._plain_jump(self.scheduler.running_array()))
                    return segs
            seg = self._preempting_step()
            segs.append(seg if seg is not None else self._one_iteration(preempting=True))
            run = self.scheduler.running_array()
            if seg is None or seg.finished or not len(run) or not self.scheduler.closed(budget - len(run)):
                return segs
            seg = self._plain_jump(run)
            if seg is not None:  # None: the very next iteration preempts
                segs.append(seg)
                if not self._short_next:
                    return segs

    @property
    def _stretches(self) -> bool:
        """:meth:`advance` may run stretches: the plain fast path, every arrival seen at once."""
        p = self.params
        return p.fast and self.spec is None and not (p.async_admission_lag and p.async_scheduling)

    def _plain_jump(self, run: np.ndarray) -> Segment | None:
        """:meth:`plan` + :meth:`commit` of a plain decode jump of the closed decoding batch
        ``run`` (the same numbers, without the general jump's per-iteration parts); None when
        the very next iteration is short of KV.  Sets ``_short_next`` as :meth:`step` does."""
        req, kv, B = self.requests, self.kv, len(run)
        cached, remaining = req.computed[run], req.remaining(run)
        m = plain_decode_iterations(cached, remaining, kv, run)
        if m == 0:
            return None
        short = m < int(remaining.min())
        start, p = self.now, self.params
        ctx = float(cached.sum()) + B * np.arange(1, m + 1, dtype=np.float64)
        target, launch = self.forward.decode_split_s(B, ctx)
        step = p.step_s(target, p.host_s(B, 0), B)
        total, target_s = float(step.sum()), float(target.sum())
        self.stats.add_decode_jump(self.forward.decode_const_parts(B, 1, None),
                                   float(launch.sum()) if isinstance(launch, np.ndarray) else 0.0, m, target_s, 0.0,
                                   total)
        kv.reserve(run, cached + m)
        req.computed[run] = cached + m
        req.generated[run] += m  # m <= every remaining count
        self.now = start + total
        self._last_step_start_s, self._resumed = start + (float(np.cumsum(step)[m - 2]) if m > 1 else 0.0), False
        if self.token_gaps is not None:
            self.token_gaps.add(start + step[0] - req.last_token_s[run])
            self.token_gaps.add(step[1:m], weight=B)
        req.last_token_s[run] = self.now
        finished = 0 if short else self._retire(run[req.generated[run] == req.response[run]])
        self.max_kv_used = max(self.max_kv_used, kv.used())
        self.stats.segments += 1
        self._short_next = short
        return Segment(self.id, start, self.now, m, B, "decode", B * m, 0, 0, finished, B, target_s,
                       float(target[0]), float(target[-1]), self._kv_used_frac())

    def _preempting_step(self) -> Segment | None:
        """:meth:`_one_iteration` after a plain jump short of KV (the same numbers): the
        scheduler's shortcut (:meth:`Scheduler.schedule_preempting_decodes`), the decode pass
        priced and applied directly; None when the shortcut does not apply."""
        batch = self.scheduler.schedule_preempting_decodes()
        if batch is None or not len(batch.slots):
            return None
        self.max_kv_used = max(self.max_kv_used, self.kv.used())
        req, slots, p = self.requests, batch.slots, self.params
        n = len(slots)
        ctx = float(int(batch.computed_before.sum()) + n)
        parts = self.forward.components(PassShape(n, n, n, ctx, decode_pairs=ctx))
        gpu = sum(parts.values())
        step_s = float(p.step_s(gpu, p.host_s(n, 0), n))
        self.stats.add_pass(parts, 0.0, step_s, 0.0, 0.0)
        start, self.now = self.now, self.now + step_s
        self._last_step_start_s, self._resumed = start, False
        running = len(self.scheduler.running)
        req.computed[slots] = batch.computed_before + 1
        req.generated[slots] += 1
        first = np.isnan(req.first_token_s[slots])
        if first.any():
            req.first_token_s[slots[first]] = self.now
            req.first_token_seg[slots[first]] = self.stats.segments
        if self.token_gaps is not None:
            self.token_gaps.add(self.now - req.last_token_s[slots[~first]])
        req.last_token_s[slots] = self.now
        finished = self._retire(slots[req.generated[slots] == req.response[slots]])
        self.stats.segments += 1
        return Segment(self.id, start, self.now, 1, running, "step", n, 0, batch.preemptions, finished, n, gpu, gpu,
                       gpu, self._kv_used_frac())

    def plan(self) -> Jump | None:
        """A fast-path jump from now (nothing changed yet), or None when the next iteration must
        take the slow path.  :meth:`commit` applies it, in full or its first iterations."""
        self.just_finished, self._short_next = [], False
        if not self.params.fast:
            return None
        run = self.scheduler.decoding_batch()
        if run is None:
            return None
        k = self._k(len(run), float(self.requests.computed[run].sum()) + len(run), run)
        budget_left, visible_by = self.params.max_num_batched_tokens - len(run) * (1 + k), self._visible_by()
        if not self.scheduler.closed(budget_left, visible_by):
            return None
        limit = 1 if visible_by < math.inf and not self.scheduler.closed(budget_left) else None  # seen next step
        planner = self._planner
        return planner.plan_spec(run, k, self.now, limit) if k > 0 else planner.plan_plain(run, self.now, limit)

    def resume(self, now: float) -> None:
        """The engine was idle until ``now`` (its scheduler sees the next arrival at once)."""
        self.now, self._resumed, self._short_next = now, True, False

    def _visible_by(self) -> float:
        """Latest arrival the next step can admit: with the async admission lag, the start of the
        previous step (when the next one was scheduled), unless nothing runs (the scheduler then
        sees an arrival at once)."""
        p = self.params
        if not (p.async_admission_lag and p.async_scheduling) or self._resumed or not self.scheduler.running:
            return math.inf
        return self._last_step_start_s

    def step_slow(self) -> Segment:
        """One iteration on the slow path (scheduling, prefill, preemption)."""
        self.just_finished, self._short_next = [], False
        return self._one_iteration()

    def preempt_all(self) -> int:
        """Preempt every running request (KV recompute after an in-flight weight update)."""
        self._short_next = False
        return self.scheduler.preempt_all()

    def migrate_out(self, slot: int) -> dict:
        """Take running request ``slot`` off this engine at an iteration boundary (its KV blocks
        freed; its row kept, marked ``moved_s``); returns what :meth:`migrate_in` needs."""
        sch, req = self.scheduler, self.requests
        sch.running.remove(slot)
        sch._changed()
        self.kv.release(slot)
        req.moved_s[slot], self._short_next = self.now, False
        return {k: getattr(req, k)[slot].item() for k in ("seq_ids", "prompt", "response", "generated", "computed",
                                                         "preemptions", "draft_rounds", "admit_s", "first_token_s",
                                                         "last_token_s")}

    def migrate_in(self, moved: dict, kv_ready: bool) -> bool:
        """Add a request taken off another engine with its progress (its own prefix group).
        ``kv_ready`` (its KV was transferred): it joins the running batch decoding, with its
        ``computed`` tokens cached, if a seat and the blocks are free; otherwise
        (or without ``kv_ready``) it waits and prefills its whole context (recompute).  Returns
        whether the KV was taken in."""
        req, sch = self.requests, self.scheduler
        slots = req.add([moved["seq_ids"]], [-1 - moved["seq_ids"]], [moved["prompt"]], [moved["response"]], [0],
                        arrival_s=self.now)
        slot = slots.start
        self.kv.extend(req.group[slot:], np.zeros(1, dtype=np.int64), req.num_groups)
        for k in ("generated", "preemptions", "draft_rounds", "admit_s", "first_token_s", "last_token_s"):
            getattr(req, k)[slot] = moved[k]
        self._set_budgets(slice(slot, slot + 1))
        req.moved_in[slot], self._short_next = 1, False
        if kv_ready and sch.admit_cached(slot, int(moved["computed"])):
            return True
        sch.waiting.push(slot)
        return False

    def commit(self, jump: Jump, iterations: int | None = None) -> Segment:
        """Apply the first ``iterations`` iterations of a planned jump (all by default)."""
        m = jump.iterations if iterations is None else max(1, min(iterations, jump.iterations))
        self._short_next = False  # step() sets it again after a full jump
        run, cached, req = jump.slots, jump.cached_tokens, self.requests
        total = float(jump.step_s[:m].sum())
        B, q = len(run), 1 + jump.k
        target = jump.target_s[:m]
        draft = float(np.sum(jump.draft_s[:m]))
        launch = 0.0 if jump.launch_s is None else float(jump.launch_s[:m].sum())
        self.stats.add_decode_jump(self.forward.decode_const_parts(B, q, jump.timed_tokens), launch, m,
                                   float(target.sum()), draft, total,
                                   jump.reject_s * m, float(np.sum(jump.serial_s[:m])) if jump.k else 0.0)
        if jump.k == 0:
            advanced, last = np.full(B, m, dtype=np.int64), cached + m - 1
        else:
            before_last = jump.advance[: m - 1].sum(axis=0) if m > 1 else np.zeros(B, dtype=np.int64)
            advanced, last = before_last + jump.advance[m - 1], cached + before_last
            req.draft_rounds[run] += m
            self.stats.count_drafts(jump.accepted[:m], jump.k, self._slack(jump.k, run))
            self.stats.spec_iterations += m
            if self.spec.decoupled is not None:
                self.stats.log_remote(jump.start_s, m, m * self.spec.decoupled.hidden(B, jump.k),
                                      float(np.sum(jump.remote_s[:m])))
        remaining = req.remaining(run)
        self.kv.reserve(run, last + q)  # the last iteration reserved slots up to last + q
        req.computed[run] = cached + advanced
        req.generated[run] += np.minimum(advanced, remaining)
        self.now = jump.start_s + total
        self._last_step_start_s, self._resumed = jump.start_s + (float(jump.cumulative_s[m - 2]) if m > 1 else 0.0), False
        if self.token_gaps is not None:
            self.token_gaps.add(jump.start_s + jump.step_s[0] - req.last_token_s[run])
            self.token_gaps.add(jump.step_s[1:m], weight=B)
        req.last_token_s[run] = self.now
        finished = self._retire(run[req.generated[run] == req.response[run]])
        self.max_kv_used = max(self.max_kv_used, self.kv.used())
        self.stats.segments += 1
        gpu = target + jump.draft_s[:m]
        return Segment(self.id, jump.start_s, self.now, m, B, "decode", B * m, 0, 0, finished, B, float(gpu.sum()),
                       float(gpu[0]), float(gpu[-1]), self._kv_used_frac())

    # ------------------------------------------------------------------ speculation
    def _k(self, batch: int, ctx_tokens: float, run: np.ndarray) -> int:
        """Drafts per decoding request this iteration (0 without speculation): the runtime's k,
        capped with per-request budgets at the largest budget among the running ``run``."""
        if self.spec is None:
            return 0
        k = self.spec.k_for(batch, ctx_tokens)
        if k > 0 and self.spec.budgets is not None:
            k = min(k, int(self.requests.draft_budget[run].max()))
        return k

    def _set_budgets(self, slots) -> None:
        """The draft budgets of newly added rows (with per-request budgets only)."""
        if self.spec is not None and self.spec.budgets is not None:
            self.requests.draft_budget[slots] = self.spec.budget_of(self.requests.seq_ids[slots])

    def _slow_k(self) -> int:
        """k for a slow-path iteration (the context sum is needed only by adaptive k)."""
        running = self.scheduler.running
        if self.spec is None or not running:
            return 0
        run = self.scheduler.running_array()
        if not self.spec.adaptive:
            return self._k(len(running), 0.0, run)
        return self._k(len(run), float(self.requests.computed[run].sum()) + len(run), run)

    # ------------------------------------------------------------------ slow path
    def _one_iteration(self, preempting: bool = False, admitting: bool = False) -> Segment:
        """One slow-path iteration; ``preempting``: every running request decodes and their next
        tokens are known not to fit in the free blocks (after a jump that ended short of KV);
        ``admitting``: every running request decodes and the waiting queue's head can join."""
        step = self.prepare_step(preempting, admitting)
        assert step is not None, "engine stalled: nothing schedulable (KV smaller than one request?)"
        step_s = float(self.params.step_s(step.gpu_s, step.host_s, len(step.batch.slots))) + step.serial_s
        return self.apply_step(step, step_s)

    def prepare_step(self, preempting: bool = False, admitting: bool = False) -> StepPlan | None:
        """Schedule the next iteration and price it (None: nothing to schedule); the clock and
        the requests move in :meth:`apply_step` (lock-step groups time several ranks' plans).
        ``preempting`` / ``admitting`` (see :meth:`_one_iteration`): a plain step takes the
        scheduler's shortcut for it (:meth:`Scheduler.schedule_preempting_decodes`,
        :meth:`Scheduler.schedule_decodes_then_admit`; the same result)."""
        k, batch, sch = self._slow_k(), None, self.scheduler
        if k == 0 and preempting:
            batch = sch.schedule_preempting_decodes()
        elif k == 0 and admitting:
            batch = sch.schedule_decodes_then_admit(self.now, self._visible_by())
        if batch is None:
            batch = sch.schedule(k, self.now, self._visible_by())
        if not len(batch.slots):
            return None
        self.max_kv_used = max(self.max_kv_used, self.kv.used())
        req = self.requests
        work = pass_work(req.prompt[batch.slots] + req.generated[batch.slots], batch.new_tokens, batch.computed_before)
        shape = work.shape
        slack = 0
        if self.spec is not None and work.drafts_per_seq > 0:  # slots beyond budgets, n-gram requests without a match
            slack = self._budget_slack(batch)
            skip = self.spec.unmatched_tokens(work.decode_seqs, work.drafts_per_seq, slack)
            shape = dataclasses.replace(shape, num_tokens=shape.num_tokens - skip) if skip else shape
        parts = self.forward.components(shape)
        draft, host = 0.0, self.params.host_s(len(batch.slots), work.prefill_tokens)
        reject = serial = propose = remote = 0.0
        if self.spec is not None:
            k, B = work.drafts_per_seq, work.decode_seqs
            if k > 0:
                ctx = np.array([work.shape.decode_ctx_tokens])
                reject = self.spec.verify_extra_s(B, k, slack)
                propose = float(self.spec.drafter.propose_times_s(B, ctx, k)[0])
                draft = propose + reject
                overlap, serial = self.spec.host_parts_s(B, k, work.shape.decode_ctx_tokens, slack)
                host, serial = host + overlap, float(serial)
            prefill = self.spec.drafter.prefill_time_s(work.shape)
            draft += prefill
            dec = self.spec.decoupled
            if dec is not None:  # the drafter on its own GPUs, pipelined with the verify pass
                remote = propose + prefill
                draft = float(dec.extra_s(self.id, sum(parts.values()), remote, reject, B, k, work.prefill_tokens))
        return StepPlan(batch, work, parts, draft, host, reject, serial, remote, shape)

    def _budget_slack(self, batch: ScheduledBatch) -> int:
        """Draft slots of a scheduled pass beyond its decoding requests' budgets (0 without)."""
        req, slots = self.requests, batch.slots
        if self.spec.budgets is None:
            return 0
        decode = batch.computed_before + 1 == req.prompt[slots] + req.generated[slots]
        return self._slack(batch.new_tokens[decode] - 1, slots[decode])

    def _slack(self, drafts, slots: np.ndarray) -> int:
        """Draft slots beyond the budgets of ``slots`` scheduled for ``drafts`` each (0 without)."""
        if self.spec.budgets is None:
            return 0
        return self.spec.budget_slack(drafts, self.requests.draft_budget[slots])

    def apply_step(self, step: StepPlan, step_s: float, parts: dict[str, float] | None = None) -> Segment:
        """Run a prepared iteration taking ``step_s`` (``parts``: the time split to account,
        default the plan's own)."""
        self.stats.add_pass(step.parts if parts is None else parts, step.draft_s, step_s, step.reject_s, step.serial_s)
        self.stats.prefill_tokens += step.work.prefill_tokens
        if self.spec is not None and self.spec.decoupled is not None and (step.remote_s or step.work.drafts_per_seq):
            k = step.work.drafts_per_seq
            self.stats.log_remote(self.now, int(k > 0), self.spec.decoupled.hidden(step.work.decode_seqs, k) if k else 0.0,
                                  step.remote_s)
        start, self.now = self.now, self.now + step_s
        self._last_step_start_s, self._resumed = start, False
        running = len(self.scheduler.running)
        finished = self._advance(step.batch)
        work = step.work
        kind = "mixed" if work.prefill_tokens else "step"
        self.stats.segments += 1
        return Segment(self.id, start, self.now, 1, running, kind, work.shape.num_tokens, work.prefill_tokens,
                       step.batch.preemptions, finished, len(step.batch.slots), step.gpu_s, step.gpu_s, step.gpu_s,
                       self._kv_used_frac())

    def _kv_used_frac(self) -> float:
        """KV blocks in use over all blocks (what the trace's KV counter shows)."""
        return self.kv.used() / self.kv.num_blocks if self.kv.num_blocks else 0.0

    def _advance(self, batch: ScheduledBatch) -> int:
        """Apply one pass's results: prefills cache their chunk, decodes gain their tokens."""
        req, slots, new, before = self.requests, batch.slots, batch.new_tokens, batch.computed_before
        decode = before + 1 == req.prompt[slots] + req.generated[slots]
        if decode.all():  # no prefill chunk: nothing sampled by a prefill
            dec, touched = slots, slots
            gained = self._decode_gains(dec, new)
            req.computed[dec] = before + gained
        else:
            sampled = self._advance_prefills(slots[~decode], new[~decode], before[~decode])
            dec = slots[decode]
            gained = self._decode_gains(dec, new[decode])
            req.computed[dec] = before[decode] + gained
            touched = np.concatenate([sampled, dec])
        req.generated[dec] += np.minimum(gained, req.remaining(dec))
        first = np.isnan(req.first_token_s[touched])
        req.first_token_s[touched[first]] = self.now
        req.first_token_seg[touched[first]] = self.stats.segments
        if self.token_gaps is not None:
            self.token_gaps.add(self.now - req.last_token_s[touched[~first]])
        req.last_token_s[touched] = self.now
        return self._retire(touched[req.generated[touched] == req.response[touched]])

    def _advance_prefills(self, slots: np.ndarray, new: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Prefill chunks are now cached; those that reach the end sample a token (returned)."""
        req = self.requests
        total = req.prompt[slots] + req.generated[slots]
        self.stats.recomputed_tokens += int(new[req.generated[slots] > 0].sum())  # re-prefill after preemption
        req.computed[slots] = before + new
        sampled = slots[before + new == total]
        req.generated[sampled] += 1
        return sampled

    def _accepted(self, run: np.ndarray, rounds: int, k: int) -> np.ndarray:
        return self._planner.accepted(run, rounds, k)

    def _decode_gains(self, slots: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Tokens each decoding request gains: 1, plus its accepted drafts in a verify pass."""
        gained = np.ones(len(slots), dtype=np.int64)
        if not len(slots) or new.max() <= 1:
            return gained
        self.stats.spec_iterations += 1
        ks = [int(new[0]) - 1] if new.min() == new.max() else np.unique(new - 1).tolist()
        for k in ks:
            rows = np.flatnonzero(new - 1 == k) if len(ks) > 1 else np.arange(len(slots))
            if k > 0:
                accepted = self._accepted(slots[rows], 1, k)[0]
                gained[rows] += accepted
                self.requests.draft_rounds[slots[rows]] += 1
                self.stats.count_drafts(accepted[None, :], k, self._slack(k, slots[rows]))
        return gained

    def _retire(self, done: np.ndarray) -> int:
        """Finish the requests in ``done``: free their KV, record the time, report their ids."""
        if not len(done):
            return 0
        slots = done.tolist()
        if self.kv_handover:  # multi-turn: the context's KV stays cached for the next turn
            r = self.requests
            for slot in slots:
                nxt = self.kv_handover.pop(int(r.seq_ids[slot]), None)
                if nxt is not None:  # speculation may leave computed past the context: keep only the context
                    self.kv.keep(slot, int(min(r.computed[slot], r.prompt[slot] + r.generated[slot] - 1)), nxt)
                    self._kv_kept = True
        self.scheduler.remove_finished(slots)
        self.requests.finish_s[slots] = self.now
        self.requests.finish_seg[slots] = self.stats.segments
        self.just_finished = self.requests.seq_ids[slots].tolist()
        return len(slots)
