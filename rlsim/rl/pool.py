"""A pool of data-parallel vLLM engines as simpy processes, fed batch after batch.

Each engine is a thin simpy process: it plans a fast-path jump (or runs one slow iteration),
waits for it, and reports finished sequences.  A new batch or an in-flight weight update
interrupts engines in the middle of a jump; the jump is then committed up to the iteration in
progress, so admissions and pauses happen at the next iteration boundary, as in vLLM.

Weight updates (DESIGN 8):

* in flight (``in_flight=True``): every engine pauses ``sync_s`` at its next iteration
  boundary (idle ones at once) and goes on with the new weights; with ``recompute_kv`` its
  running requests are preempted and recompute their KV;
* otherwise: engines stop admitting, drain their running requests, then all pause ``sync_s``
  and resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from rlsim.engine import Engine, Segment
from rlsim.rl.dispatch import Outstanding

__all__ = ["EnginePool"]


@dataclass
class _EngineState:
    engine: Engine
    proc: object = None
    wake: object = None          # event an idle engine waits on
    in_jump: bool = False
    pause_s: float = 0.0         # pending in-flight pause
    recompute: bool = False
    update_done: object = None   # event to succeed after the pause
    segments: list = field(default_factory=list)
    busy_since: float | None = None  # start of the iteration(s) in progress
    jump: object = None              # the fast-path jump in progress


class EnginePool:
    """Engines fed from batches (``submit`` returns the event of the batch's completion) or one
    request at a time (``submit_to``, serving clients); ``on_finished(seq_ids, t)`` hears every
    completion."""

    def __init__(self, env: simpy.Environment, engines: list[Engine], seqs_per_batch: int | None = None,
                 on_finished=None) -> None:
        self.env = env
        self.states = [_EngineState(e) for e in engines]
        self.seqs_per_batch = seqs_per_batch
        self.on_finished = on_finished
        self.remaining: dict[int, int] = {}
        self.done_events: dict[int, simpy.Event] = {}
        self.done_at: dict[int, float] = {}
        self.outstanding = Outstanding(len(engines))
        #: (engine, start, end) of every weight-update pause
        self.pauses: list[tuple[int, float, float]] = []
        self._drained: simpy.Event | None = None
        #: a tail-migration hook (rlsim.rl.policies.tail_migration.Migrator) or None
        self.migration = None
        for st in self.states:
            st.proc = env.process(self._serve(st))

    # ------------------------------------------------------------------ public
    def submit(self, batch: int, owner: np.ndarray, seq_ids, group_ids, prompt, response,
               estimate: np.ndarray | None = None) -> simpy.Event:
        """Deal a batch (owner[i] = engine of sequence i) and wake or interrupt the engines;
        ``estimate`` (per sequence) is charged to the engines' outstanding tokens."""
        if estimate is not None:
            self.outstanding.add(np.asarray(seq_ids), np.asarray(owner), np.asarray(estimate, dtype=float))
        self.remaining[batch] = len(seq_ids)
        ev = self.done_events[batch] = self.env.event()
        for i, st in enumerate(self.states):
            idx = np.flatnonzero(owner == i)
            if len(idx):
                st.engine.add_sequences(seq_ids[idx], group_ids[idx], prompt[idx], response[idx])
                self._nudge(st)
        return ev

    def submit_to(self, engine: int, seq_ids, group_ids, prompt, response, prefix_len=None) -> None:
        """Give requests to one engine now (wakes or interrupts it)."""
        st = self.states[engine]
        st.engine.add_sequences(seq_ids, group_ids, prompt, response, prefix_len, arrival_s=self.env.now)
        self._nudge(st)

    def update_weights(self, sync_s: float, in_flight: bool, recompute_kv: bool):
        """A process: the pool switches to new weights; completes when every engine has them."""
        if in_flight:
            events = []
            for st in self.states:
                st.pause_s, st.recompute = sync_s, recompute_kv
                st.update_done = self.env.event()
                events.append(st.update_done)
                self._nudge(st)
            yield self.env.all_of(events)
            return
        self._drained = self.env.event()
        for st in self.states:
            st.engine.admitting = False
            self._nudge(st)
        self._check_drained()
        yield self._drained
        self._drained = None
        self.pauses += [(i, self.env.now, self.env.now + sync_s) for i in range(len(self.states))]
        yield self.env.timeout(sync_s)
        for st in self.states:
            st.engine.admitting = True
            self._nudge(st)

    def segments(self) -> list[Segment]:
        return [s for st in self.states for s in st.segments]

    def flush(self) -> None:
        """When a run stops mid-jump: commit the jump's iterations completed by now (their
        tokens and finishes count); the iteration still running stays busy time (in_progress)."""
        now = self.env.now
        for st in self.states:
            j = st.jump
            if j is None:
                continue
            done = int(np.searchsorted(j.cumulative_s, now - j.start_s, side="right"))
            if done >= 1:
                seg = st.engine.commit(j, done)
                st.segments.append(seg)
                st.busy_since = seg.t1_s
            st.jump = None

    def in_progress(self) -> list[tuple[int, float]]:
        """``(engine, start)`` of the iterations running when the simulation stopped (not yet
        segments)."""
        return [(st.engine.id, st.busy_since) for st in self.states if st.busy_since is not None]

    # ------------------------------------------------------------------ engine process
    def _nudge(self, st: _EngineState) -> None:
        if st.wake is not None and not st.wake.triggered:
            st.wake.succeed()
        elif st.in_jump:
            st.proc.interrupt()

    def _check_drained(self) -> None:
        if self._drained is not None and not self._drained.triggered and not any(st.engine.running for st in self.states):
            self._drained.succeed()

    def _serve(self, st: _EngineState):
        env, eng = self.env, st.engine
        while True:
            if st.pause_s > 0:
                yield from self._pause(st)
                continue
            if eng.idle():
                if self.migration is not None:
                    self.migration.on_idle(self, st)
                st.wake = env.event()
                yield st.wake
                st.wake = None
                eng.resume(env.now)
                continue
            eng.now = env.now
            st.busy_since = env.now
            jump = eng.plan()
            if jump is None:
                seg = eng.step_slow()
                yield from self._sleep_until(seg.t1_s)
            else:
                st.in_jump, st.jump = True, jump
                try:
                    yield env.timeout(jump.duration_s)
                    seg = eng.commit(jump)
                except simpy.Interrupt:
                    seg = eng.commit(jump, jump.iterations_started_by(env.now - jump.start_s))
                st.in_jump, st.jump = False, None
                yield from self._sleep_until(seg.t1_s)
            st.segments.append(seg)
            st.busy_since = None
            self._finished(eng.just_finished, seg.t1_s)
            if self.migration is not None:
                self.migration.on_boundary(self, st)
            self._check_drained()

    def _pause(self, st: _EngineState):
        st.engine.now = self.env.now
        if st.recompute:
            st.engine.preempt_all()
        self.pauses.append((st.engine.id, self.env.now, self.env.now + st.pause_s))
        yield from self._sleep_until(self.env.now + st.pause_s)
        st.pause_s, st.recompute = 0.0, False
        if st.update_done is not None:
            st.update_done.succeed()
            st.update_done = None

    def _sleep_until(self, t: float):
        while self.env.now < t:
            try:
                yield self.env.timeout(t - self.env.now)
            except simpy.Interrupt:
                pass

    def _finished(self, seq_ids: list[int], t: float) -> None:
        if self.on_finished is not None and seq_ids:
            self.on_finished(seq_ids, t)
        if self.seqs_per_batch is None:
            return
        for sid in seq_ids:
            self.outstanding.finish(sid)
            b = sid // self.seqs_per_batch
            self.remaining[b] -= 1
            if self.remaining[b] == 0:
                self.done_at[b] = t
                self.done_events[b].succeed()
