"""Data-parallel attention ranks in lock-step: one vLLM ``--data-parallel-size`` engine with
expert parallelism.

vLLM runs each DP rank as its own engine core (own scheduler, own KV cache, its own requests,
attention tensor-parallel over its ``tp`` GPUs) while the MoE layers are shared: experts are
spread over all ``dp x tp`` GPUs and every forward pass dispatches and combines tokens across
the ranks.  So the ranks step together (vllm/v1/engine/core.py ``DPEngineCoreProc``): a rank
with no work runs a dummy batch to take part in the collectives, every rank pads its batch to
the largest token count of the step (``num_tokens_across_dp``, also what CUDA graphs need), and
a step lasts as long as the slowest rank's attention plus the shared MoE part.  Requests go to
the rank with the lowest ``4 x waiting + running`` (vLLM's DP load balancer), a GRPO group to a
single rank (its samples share the prompt's KV).

:class:`DataParallelGroup` drives its ranks (:class:`~rlsim.engine.Engine` objects) through the
same interface as one engine; a :class:`LockstepTimer` prices the lock-step pass.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from rlsim.engine.engine import Engine
from rlsim.engine.jump import Jump
from rlsim.engine.segment import Segment

__all__ = ["DataParallelGroup", "LockstepTimer", "GroupJump"]


class LockstepTimer(Protocol):
    """Prices one lock-step pass of all ranks (rlsim.cost.dp.DataParallelForward)."""

    def decode_split_s(self, ranks: list[tuple[int, np.ndarray, int, int]],
                       idle_ranks: int) -> tuple[np.ndarray, int, list]:
        """GPU time per iteration of decode-only ranks ``(batch, context per iteration, q,
        tokens)``, the token count every rank runs and each rank's exposed dispatch."""

    def pass_time_s(self, shapes: list) -> tuple[float, dict[str, float]]:
        """GPU time (and its split) of one pass with each rank's shape (None: a dummy batch)."""


@dataclasses.dataclass(frozen=True)
class GroupJump:
    """A planned lock-step jump: every busy rank's jump over the same iterations and times."""

    rank_jumps: tuple[tuple[int, Jump], ...]
    start_s: float
    cumulative_s: np.ndarray
    iterations: int

    @property
    def duration_s(self) -> float:
        return float(self.cumulative_s[-1])

    def iterations_started_by(self, elapsed_s: float) -> int:
        return int(np.searchsorted(self.cumulative_s, elapsed_s, side="right")) + 1


class DataParallelGroup:
    """``len(ranks)`` engines stepping in lock-step (see the module docstring)."""

    def __init__(self, group_id: int, ranks: list[Engine], timer: LockstepTimer) -> None:
        self.id, self.ranks, self.timer = group_id, ranks, timer
        self.params = ranks[0].params
        self.just_finished: list[int] = []
        self._rank_of_group: dict[int, int] = {}
        self._segments = 0

    # ------------------------------------------------------------------ engine interface
    members = property(lambda self: tuple(self.ranks), doc="the ranks (what summaries iterate)")
    running = property(lambda self: [s for r in self.ranks for s in r.running])
    waiting = property(lambda self: [s for r in self.ranks for s in r.waiting])
    now = property(lambda self: self.ranks[0].now)

    @now.setter
    def now(self, value: float) -> None:
        for r in self.ranks:
            r.now = value

    @property
    def admitting(self) -> bool:
        return self.ranks[0].admitting

    @admitting.setter
    def admitting(self, value: bool) -> None:
        for r in self.ranks:
            r.admitting = value

    def done(self) -> bool:
        return all(r.done() for r in self.ranks)

    def idle(self) -> bool:
        return all(r.idle() for r in self.ranks)

    def resume(self, now: float) -> None:
        for r in self.ranks:
            r.resume(now)

    def preempt_all(self) -> int:
        return sum(r.preempt_all() for r in self.ranks)

    def add_sequences(self, seq_ids, group_ids, prompt_len, response_len, prefix_len=None, arrival_s=None) -> None:
        """Deal requests to ranks by vLLM's load score, each group to one rank."""
        ids, groups = np.asarray(seq_ids), np.asarray(group_ids)
        added = [0] * len(self.ranks)  # requests dealt by this call count as waiting (vLLM counts them locally)
        rank = np.empty(len(groups), dtype=np.int64)
        for i, g in enumerate(groups.tolist()):
            rank[i] = self._rank_for(g, added)
            added[rank[i]] += 1
        for r, engine in enumerate(self.ranks):
            idx = np.flatnonzero(rank == r)
            if len(idx):
                pre = None if prefix_len is None else np.asarray(prefix_len)[idx]
                engine.add_sequences(ids[idx], groups[idx], np.asarray(prompt_len)[idx], np.asarray(response_len)[idx],
                                     pre, arrival_s)

    def _rank_for(self, group: int, added: list[int]) -> int:
        if group not in self._rank_of_group:
            loads = [4 * (len(r.waiting) + a) + len(r.running) for r, a in zip(self.ranks, added)]
            self._rank_of_group[group] = int(np.argmin(loads))
        return self._rank_of_group[group]

    # ------------------------------------------------------------------ stepping
    def advance(self) -> list[Segment]:
        """One :meth:`step` (the engine's stretches are single-engine)."""
        return [self.step()]

    def step(self) -> Segment:
        jump = self.plan()
        return self.commit(jump) if jump is not None else self.step_slow()

    def plan(self) -> GroupJump | None:
        """A lock-step jump while every rank decodes (or idles) and none can admit."""
        self._clear_finished()
        if not self.params.fast:
            return None
        busy = []
        for i, r in enumerate(self.ranks):
            if not r.scheduler.running:
                if r.scheduler.waiting and r.scheduler.next_admission(self.params.max_num_batched_tokens) is not None:
                    return None
                continue
            jump = r.plan()
            if jump is None:
                return None
            busy.append((i, jump))
        if not busy:
            return None
        return self._lockstep(busy)

    def _lockstep(self, busy: list[tuple[int, Jump]]) -> GroupJump:
        m = min(j.iterations for _, j in busy)
        ranks = [(len(j.slots), j.context_tokens[:m], 1 + j.k,
                  len(j.slots) * (1 + j.k) if j.timed_tokens is None else j.timed_tokens) for _, j in busy]
        target, T, launch = self.timer.decode_split_s(ranks, len(self.ranks) - len(busy))
        draft = np.max([np.asarray(j.draft_s[:m]) for _, j in busy], axis=0)
        host = np.max([self._host_s(self.ranks[i], j, m) for i, j in busy], axis=0)
        step = np.broadcast_to(self.params.step_s(target + draft, host, max(len(j.slots) for _, j in busy)), (m,))
        cum = np.cumsum(step)
        start = self.now
        jumps = tuple((i, dataclasses.replace(j, iterations=m, context_tokens=j.context_tokens[:m], target_s=target,
                                              draft_s=draft, step_s=step, cumulative_s=cum, start_s=start,
                                              advance=None if j.advance is None else j.advance[:m],
                                              accepted=None if j.accepted is None else j.accepted[:m],
                                              timed_tokens=T, launch_s=np.broadcast_to(rank_launch, (m,))))
                      for (i, j), rank_launch in zip(busy, launch))
        return GroupJump(jumps, start, cum, m)

    @staticmethod
    def _host_s(rank: Engine, j: Jump, m: int) -> np.ndarray:
        """A rank's host time in each of the first ``m`` iterations of its jump (speculative host
        time included; the n-gram proposer's grows with the history it scans)."""
        host = np.full(m, rank.params.host_s(len(j.slots), 0))
        if j.k > 0:
            overlap, serial = rank.spec.host_parts_s(len(j.slots), j.k, j.context_tokens[:m], j.slack)
            host += overlap + np.asarray(serial, dtype=np.float64)
        return host

    def commit(self, jump: GroupJump, iterations: int | None = None) -> Segment:
        """Apply the first ``iterations`` lock-step iterations to every busy rank."""
        m = jump.iterations if iterations is None else max(1, min(iterations, jump.iterations))
        segs = [self.ranks[i].commit(j, m) for i, j in jump.rank_jumps]
        end = jump.start_s + float(jump.cumulative_s[m - 1])
        self.now = end
        return self._segment(segs, jump.start_s, end, m)

    def step_slow(self) -> Segment:
        """One lock-step iteration on the slow path: every rank schedules, the pass is priced
        for all of them together, every rank advances by it (idle ranks ran a dummy batch)."""
        self._clear_finished()
        plans = [r.prepare_step() for r in self.ranks]
        live = [p for p in plans if p is not None]
        assert live, "data-parallel group stalled: nothing schedulable on any rank"
        gpu, parts = self.timer.pass_time_s([None if p is None else p.shape for p in plans])
        draft = max(p.draft_s for p in live)
        host = max(p.host_s + p.serial_s for p in live)
        dt = float(self.params.step_s(gpu + draft, host, max(len(p.batch.slots) for p in live)))
        start = self.now
        segs = [r.apply_step(p, dt, parts) for r, p in zip(self.ranks, plans) if p is not None]
        self.now = start + dt
        return self._segment(segs, start, start + dt, 1)

    def _clear_finished(self) -> None:
        self.just_finished = []
        for r in self.ranks:
            r.just_finished = []

    def _segment(self, segs: list[Segment], start: float, end: float, m: int) -> Segment:
        self._segments += 1
        for r in self.ranks:  # segment indices the ranks record (first token, finish) count the group's steps
            r.stats.segments = self._segments
        self.just_finished = [s for r in self.ranks for s in r.just_finished]
        first = segs[0]
        kind = "mixed" if any(s.kind == "mixed" for s in segs) else first.kind
        return Segment(self.id, start, end, m, sum(s.running for s in segs), kind, sum(s.new_tokens for s in segs),
                       sum(s.prefill_tokens for s in segs), sum(s.preemptions for s in segs), sum(s.finished for s in segs),
                       max(s.scheduled for s in segs), max(s.gpu_s for s in segs), max(s.gpu_first_s for s in segs),
                       max(s.gpu_last_s for s in segs), max(s.kv_used_frac for s in segs))

    # ------------------------------------------------------------------ reporting
    @property
    def stats(self):
        """The first rank's counters (summaries iterate :attr:`members` for totals)."""
        return self.ranks[0].stats

    @property
    def peak_running(self) -> int:
        return max(r.peak_running for r in self.ranks)

    @property
    def max_kv_used(self) -> int:
        return max(r.max_kv_used for r in self.ranks)

    @property
    def token_gaps(self):
        return self.ranks[0].token_gaps
