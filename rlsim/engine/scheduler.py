"""vLLM V1's ``Scheduler.schedule``: which requests run in the next iteration, and how many tokens.

One iteration (vllm/v1/core/sched/scheduler.py):

1. running requests in admission order each get ``num_tokens - num_computed_tokens`` new tokens
   (1 for a decode, plus ``k`` draft slots with speculation; a chunk for a prefill in progress)
   out of ``max_num_batched_tokens``; a request that needs a KV block when none is free
   preempts the policy's victim (recompute mode: its blocks are freed, it goes back to the
   waiting queue and later prefills prompt + generated tokens again), possibly itself;
2. if nothing was preempted, waiting requests are admitted in the policy's order while seats
   (``max_num_seqs``), budget and KV blocks allow (chunked prefill splits a prompt over steps;
   a prefix-cache hit on the group's shared prompt blocks skips those tokens).

Every rule lives here once and serves both engine paths: :meth:`Scheduler.next_admission` is
the admission rule used by step 2 *and* by the fast path's question "is this decode batch
closed?" (:meth:`Scheduler.closed`); the KV rules are :class:`~rlsim.engine.kv.KvCache`'s; the
victim and the waiting order are the :mod:`policy <rlsim.engine.policy>`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlsim.engine.kv import KvCache
from rlsim.engine.policy import SchedulingPolicy
from rlsim.engine.requests import RequestTable

__all__ = ["Scheduler", "ScheduledBatch"]

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class ScheduledBatch:
    """One iteration's work: request slots, their new tokens and cached tokens before the pass."""

    slots: np.ndarray
    new_tokens: np.ndarray
    computed_before: np.ndarray
    preemptions: int


class Scheduler:
    """The running list, the waiting queue and the scheduling rules of one engine."""

    def __init__(self, params, requests: RequestTable, kv: KvCache, policy: SchedulingPolicy, stats) -> None:
        self.params, self.requests, self.kv, self.policy, self.stats = params, requests, kv, policy, stats
        self.running: list[int] = []
        self._running_arr: np.ndarray | None = _EMPTY  # ``running`` as an array (None: stale)
        self.waiting = policy.waiting_queue(requests)
        self.admitting = True  # False while draining for a weight update
        self.peak_running = 0

    # ------------------------------------------------------------------ the admission rule
    def next_admission(self, budget: int, visible_by: float = math.inf) -> tuple[int, int, int] | None:
        """``(slot, prefix-hit tokens, new tokens)`` of the next waiting request if it can be
        admitted within ``budget`` tokens now, else None (head-of-line: nobody behind it).
        A request that arrived after ``visible_by`` is not seen yet (async scheduling decides a
        step while the previous one runs)."""
        p = self.params
        if not self.admitting or not self.waiting or budget <= 0 or not self._has_seat():
            return None
        slot = self.waiting.peek()
        if self.requests.arrival_s[slot] > visible_by:
            return None
        tokens = self.requests.num_tokens(slot)
        hit = self.kv.prefix_hit_tokens(slot, tokens) if p.enable_prefix_caching else 0
        need = tokens - hit
        if not p.enable_chunked_prefill and need > budget:
            return None
        new = min(need, budget)
        if not self._blocks_fit(slot, hit + new):
            return None
        return slot, hit, new

    def _has_seat(self) -> bool:
        """A running seat is free (``max_num_seqs``)."""
        return len(self.running) < self.params.max_num_seqs

    def _blocks_fit(self, slot: int, tokens: int) -> bool:
        """The blocks request ``slot`` needs to hold ``tokens`` tokens are free."""
        return self.kv.admission_blocks(slot, tokens) <= self.kv.free

    def admit_cached(self, slot: int, cached: int) -> bool:
        """Seat request ``slot`` with ``cached`` tokens' KV already computed elsewhere (a request
        migrated with its KV) if the admission rule's seat and blocks are free; it then decodes
        from the next iteration.  Returns whether it was seated."""
        if not (self._has_seat() and self._blocks_fit(slot, cached)):
            return False
        self.kv.admit(slot, cached, 0)
        self.requests.computed[slot] = cached
        self.running.append(slot)
        self._changed()
        return True

    def running_array(self) -> np.ndarray:
        """``running`` as an int64 array (rebuilt only after the list changed; never written to)."""
        arr = self._running_arr
        if arr is None:
            arr = self._running_arr = np.fromiter(self.running, dtype=np.int64, count=len(self.running))
        return arr

    def _changed(self) -> None:
        """The running list changed: its array is stale."""
        self._running_arr = None

    def decoding_batch(self) -> np.ndarray | None:
        """The running slots when every running request decodes (else None)."""
        if not self.running:
            return None
        run = self.running_array()
        return run if (self.requests.pending(run) == 1).all() else None

    def closed(self, budget_left: int, visible_by: float = math.inf) -> bool:
        """True when no waiting request can be admitted with ``budget_left`` tokens."""
        return self.next_admission(budget_left, visible_by) is None

    # ------------------------------------------------------------------ one iteration
    def schedule(self, k: int, now: float, visible_by: float = math.inf) -> ScheduledBatch:
        """Pick the next iteration's batch; decoding requests get ``1 + k`` tokens (fewer when
        the budget runs out); only requests arrived by ``visible_by`` are admitted."""
        budget = self.params.max_num_batched_tokens
        bulks: list[np.ndarray] = []
        picked: tuple[list[int], list[int], list[int]] = ([], [], [])
        dropped: list[int] = []
        i = preemptions = 0
        view = _RunningView(self.running_array(), self.requests)
        while i < len(self.running) and budget > 0:
            idx = self._bulk_decodes(view, i, budget, k)
            if len(idx):
                bulks.append(idx)
                i += len(idx)
                budget -= len(idx) * (1 + k)
                continue
            slot = self.running[i]
            computed = int(self.requests.computed[slot])
            pending = self.requests.num_tokens(slot) - computed
            new = min(pending + (k if pending == 1 else 0), budget)
            need = self.kv.own_after(slot, computed + new) - int(self.kv.own[slot])
            preempted_self = False
            while need > self.kv.free:
                victim, position = self._preempt_victim()
                preemptions += 1
                if victim == slot:
                    preempted_self = True
                    break
                if position < i:  # already scheduled this step (non-FCFS policies): unschedule it
                    budget += self._scheduled_tokens(victim, bulks, picked, k)
                    dropped.append(victim)
                    i -= 1
            if preempted_self:
                break
            if len(view.run) != len(self.running):
                view = _RunningView(self.running_array(), self.requests)  # preemptions changed the running list
            self.kv.grow(slot, computed + new, int(self.requests.prefix[slot]))
            for column, value in zip(picked, (slot, new, computed)):
                column.append(value)
            budget -= new
            i += 1
        if preemptions == 0:
            self._admit(picked, budget, now, visible_by)
        self.peak_running = max(self.peak_running, len(self.running))
        return self._batch(bulks, picked, k, preemptions, dropped)

    def schedule_preempting_decodes(self) -> ScheduledBatch | None:
        """:meth:`schedule` (without drafts) of a running list in which every request decodes
        and whose next tokens do not all fit in the free blocks, under a policy whose victim is
        the last running request (FCFS): the same KV operations in the same order, the same
        preemptions and the same batch, without the general loop's per-request bookkeeping.
        None when the shortcut does not apply (a batch beyond the token budget, a policy that
        may unschedule a victim, nothing to preempt): :meth:`schedule` then decides.

        The rule is :meth:`schedule`'s: leading requests take their blocks together
        (:meth:`_bulk_decodes`); the first one short of a block preempts the last running
        request, repeatedly, until its block is free or it was the last itself (then the step
        ends); a step that preempts admits nobody."""
        if not self.policy.victim_is_last or len(self.running) > self.params.max_num_batched_tokens:
            return None
        run, req, kv = self.running_array(), self.requests, self.kv
        before = req.computed[run]
        tokens = before + 1
        extra = kv.growth_blocks(run, tokens)
        if int(extra.sum()) <= kv.free:
            return None
        if not kv.prefix_caching:
            return self._preempting_decodes_counted(run, extra)
        bulks: list[np.ndarray] = []
        picked: list[int] = []
        i, end, preemptions = 0, len(run), 0
        while i < end:
            n = kv.reserve_fitting_prefix(run[i:end], tokens[i:end])
            if n:
                bulks.append(run[i:i + n])
                i += n
                if i == end:
                    break
            slot, need = int(run[i]), int(extra[i])
            while need > kv.free and end > i:
                end -= 1
                self.preempt(int(run[end]), end)
                preemptions += 1
            if end == i:  # it preempted itself: the step ends
                break
            kv.grow(slot, int(tokens[i]), int(req.prefix[slot]))
            picked.append(slot)
            i += 1
        self.peak_running = max(self.peak_running, len(self.running))
        slots = np.concatenate(bulks + [np.asarray(picked, dtype=np.int64)]) if picked else np.concatenate(bulks or [_EMPTY])
        return ScheduledBatch(slots, np.ones(len(slots), dtype=np.int64), req.computed[slots], preemptions)

    def schedule_decodes_then_admit(self, now: float, visible_by: float = math.inf) -> ScheduledBatch | None:
        """:meth:`schedule` (without drafts) of a running list in which every request decodes
        and all their next tokens fit in the free blocks: one bulk of decodes, then admissions
        (the same KV operations and batch).  None when the shortcut does not apply (a batch
        beyond the token budget, a KV shortage: :meth:`schedule` then decides)."""
        budget, run, kv = self.params.max_num_batched_tokens, self.running_array(), self.kv
        if len(run) > budget:
            return None
        extra = kv.growth_blocks(run, self.requests.computed[run] + 1)
        if int(extra.sum()) > kv.free:
            return None
        kv.grow_by(run, extra)
        picked: tuple[list[int], list[int], list[int]] = ([], [], [])
        self._admit(picked, budget - len(run), now, visible_by)
        self.peak_running = max(self.peak_running, len(self.running))
        return self._batch([run], picked, 0, 0, [])

    def _preempting_decodes_counted(self, run: np.ndarray, extra: np.ndarray) -> ScheduledBatch:
        """:meth:`schedule_preempting_decodes` without prefix caching, where freed blocks are
        only counted (no cache order to keep): the walk's shortages found on the cumulative
        demand, the victims' blocks freed before the survivors' growth is taken."""
        kv, free = self.kv, self.kv.free
        need = np.cumsum(extra)
        freed = np.cumsum(kv.own[run[::-1]])  # freed[t - 1]: blocks of the last t requests
        picked: list[int] = []  # positions the walk reached short of a block (scheduled after the bulks)
        avail, end = free, len(run)
        while (j := int(np.searchsorted(need, avail, side="right"))) < end:
            while need[j] > avail and end > j:
                end -= 1
                avail = free + int(freed[len(run) - end - 1])
            if end == j:  # it preempted itself: the step ends
                break
            picked.append(j)
        for position in range(len(run) - 1, end - 1, -1):
            self.preempt(int(run[position]), position)
        if end:
            kv.grow_by(run[:end], extra[:end])
        self.peak_running = max(self.peak_running, len(self.running))
        slots = run[:end]
        if picked:  # the bulks in order, then the requests scheduled one by one
            bulk = np.ones(end, dtype=bool)
            bulk[picked] = False
            slots = np.concatenate([slots[bulk], slots[picked]])
        return ScheduledBatch(slots, np.ones(end, dtype=np.int64), self.requests.computed[slots], len(run) - end)

    def _bulk_decodes(self, view: "_RunningView", start: int, budget: int, k: int) -> np.ndarray:
        """Schedule, at once, the longest run of decoding requests from ``running[start]`` whose
        1 + k new slots fit in the free pool and the budget (vLLM would schedule them one by
        one with the same result).  Empty when the request at ``start`` is not decoding or
        needs a block that is not free."""
        q = 1 + k
        n = min(view.decoders_from(start), budget // q)
        idx = view.run[start:start + n]
        n = self.kv.reserve_fitting_prefix(idx, self.requests.computed[idx] + q)
        return idx[:n]

    def _admit(self, picked: tuple[list[int], list[int], list[int]], budget: int, now: float, visible_by: float) -> None:
        req = self.requests
        while (admission := self.next_admission(budget, visible_by)) is not None:
            slot, hit, new = admission
            self.waiting.pop()
            self.kv.admit(slot, hit + new, int(req.prefix[slot]))
            req.computed[slot] = hit
            if np.isnan(req.admit_s[slot]):
                req.admit_s[slot] = now
            self.running.append(slot)
            self._changed()
            for column, value in zip(picked, (slot, new, hit)):
                column.append(value)
            budget -= new

    def _batch(self, bulks, picked, k: int, preemptions: int, dropped: list[int]) -> ScheduledBatch:
        bulk = np.concatenate(bulks) if bulks else _EMPTY
        slots, new, before = (np.asarray(x, dtype=np.int64) for x in picked)
        batch = ScheduledBatch(np.concatenate([bulk, slots]),
                               np.concatenate([np.full(len(bulk), 1 + k, np.int64), new]),
                               np.concatenate([self.requests.computed[bulk], before]), preemptions)
        if not dropped:
            return batch
        keep = ~np.isin(batch.slots, dropped)
        return ScheduledBatch(batch.slots[keep], batch.new_tokens[keep], batch.computed_before[keep], preemptions)

    @staticmethod
    def _scheduled_tokens(slot: int, bulks, picked, k: int) -> int:
        """Tokens given to ``slot`` earlier in this step (to return to the budget)."""
        if slot in picked[0]:
            return picked[1][picked[0].index(slot)]
        assert any(slot in b for b in bulks), slot
        return 1 + k

    # ------------------------------------------------------------------ preemption / removal
    def _preempt_victim(self) -> tuple[int, int]:
        """Preempt the policy's victim; returns it and its former position in ``running``."""
        victim = self.policy.victim(self.running, self.requests)
        position = len(self.running) - 1 if self.running[-1] == victim else self.running.index(victim)
        self.preempt(victim, position)
        return victim, position

    def preempt(self, slot: int, position: int) -> None:
        """Preempt running request ``slot`` (at ``position`` in ``running``): recompute mode."""
        del self.running[position]
        self._changed()
        self.kv.preempt(slot, int(self.requests.computed[slot]))
        self.requests.computed[slot] = 0
        self.requests.preemptions[slot] += 1
        self.stats.preemptions += 1
        self.waiting.push_preempted(slot)

    def preempt_all(self) -> int:
        """Preempt every running request (KV recompute after an in-flight weight update)."""
        n = len(self.running)
        while self.running:
            self.preempt(self.running[-1], len(self.running) - 1)
        return n

    def remove_finished(self, slots: list[int]) -> None:
        """Release finished requests' KV and drop them from the running list."""
        for slot in slots:
            self.kv.release(slot)
        gone = set(slots)
        self.running = [s for s in self.running if s not in gone]
        self._changed()


class _RunningView:
    """The running list as an array, with the positions of its requests that do not decode
    (built once per schedule; again after a preemption changes the list)."""

    def __init__(self, running: np.ndarray, requests: RequestTable) -> None:
        self.run = running
        self.other = np.flatnonzero(requests.pending(self.run) != 1)

    def decoders_from(self, start: int) -> int:
        """Decoding requests in a row from position ``start``."""
        j = int(np.searchsorted(self.other, start))
        return (int(self.other[j]) if j < len(self.other) else len(self.run)) - start
