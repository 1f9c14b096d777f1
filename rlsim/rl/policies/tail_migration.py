"""Tail handling by request migration between engines (Seer-style load balancing of the tail).

Mechanism (Seer, Moonshot AI 2025, arXiv:2511.14617 -- divided rollout with a global KV cache
lets a request continue on another instance, which Seer uses to balance load; the arXiv id,
sections and figures were not checked against the PDF here): when an engine becomes idle
(nothing running or waiting) while another engine still runs at least ``min_source_running``
requests, at the busy engine's next iteration boundary the policy moves
half of its running requests (``floor(n / 2)``, so both run about ``n / 2``) to the idle one, so
the tail runs at smaller per-engine batches.  The moved requests are those with the **most
tokens generated so far** (ties: lowest id): the simulator never reads the true remaining
length, which neither system knows (Seer estimates it from a group's finished siblings; that
estimator is not modelled).  A request moves at most ``max_moves_per_request`` times (assumed 1:
no ping-pong).  The trigger fires when an engine *becomes* idle, not periodically.

A moved request keeps its generated tokens and resumes on the destination with context
``prompt + generated``:

* ``cost: transfer`` -- its KV (``prompt + generated - 1`` cached tokens x the engine plan's KV
  bytes per token per GPU, drafter KV included) crosses the link between the engines; the TP
  ranks send their shards in parallel, so the time is ``latency + tokens x bytes_per_token_per_gpu /
  (bandwidth x efficiency)`` (rlsim.hardware.ops.p2p_time_s: NVLink's when both engines sit in one
  NVLink domain, the NIC's otherwise, each at the profile's measured efficiency; engine i on GPUs
  ``[i x tp, (i + 1) x tp)``: assumed placement).
  The requests moved together arrive together after the sum of their transfer times (one link
  carries them one after another); meanwhile they run nowhere.  On arrival a request joins the
  destination's running batch decoding if that engine is still idle and admitting; otherwise (it
  took other work meanwhile, or stopped admitting for a weight update) or without a free seat /
  blocks it waits and recomputes;
* ``cost: recompute`` -- the request waits on the destination at once and prefills its whole
  context through the engine's normal (chunked) prefill path, as after a preemption.

RLHFuse (arXiv:2409.13221, not checked here) migrates in the other direction: it consolidates
the long tail onto *fewer* instances so the freed GPUs start training (inter-stage fusion); that
needs trainer / rollout overlap and is not this policy.

Only decoding requests move (one in its prefill, or re-prefilling after a preemption, stays).
The trigger needs an *admitting* idle engine, so in an async pipeline, whose step tails are
mostly drains before a weight update, it rarely fires.  Not modelled: migrating waiting
requests; recomputing a transferred KV that an in-flight weight update made stale; moving the dispatcher's outstanding-token charge of a
moved request (it stays on the source, which only affects later async dispatch); Seer's chunked
"divided rollout" and its length estimator; contention of the link with other traffic.

Per-step columns: ``migrations``, ``migrated_tokens`` (context tokens of the moved requests),
``migrated_bytes`` (their KV bytes, all TP ranks; also with ``recompute``: what a transfer
would have moved); ``tail_time_s`` (:func:`tail_times`, every policy) is reported by
``rlsim compare``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlsim.errors import ConfigError
from rlsim.hardware import ops
from rlsim.rl.policies.seam import PolicySeam

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TailMigration", "TailMigrationSeam", "Migrator", "LinkCost", "link_cost", "tail_times",
           "MIGRATION_COLUMNS"]

MIGRATION_COLUMNS = ("migrations", "migrated_tokens", "migrated_bytes")


class TailMigration(BaseModel):
    """``rl.policy`` of tail request migration between rollout engines."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["tail_migration"] = "tail_migration"
    cost: Literal["transfer", "recompute"] = Field(default="transfer", description="KV transfer over the link (Seer's "
                                                                                   "global KV cache) or prefill again")
    min_source_running: int = Field(default=2, ge=2, description="running requests the busy engine must have to give "
                                                                 "some away (assumed)")
    max_moves_per_request: int = Field(default=1, ge=1, description="migrations per request at most (assumed)")


@dataclass(frozen=True)
class LinkCost:
    """Transfer time of cached tokens' KV between two engines: the point-to-point rule of
    :func:`rlsim.hardware.ops.p2p_time_s` (link latency + bytes / (bandwidth x the link's
    measured efficiency), NVLink inside an NVLink domain, the NIC otherwise) on
    ``tokens x bytes_per_token_per_gpu`` -- the TP ranks send their shards in parallel."""

    hw: object  # rlsim.hardware.HardwareProfile
    bytes_per_token_per_gpu: float
    tp: int

    def same_domain(self, src: int, dst: int) -> bool:
        """Whether engines ``src`` and ``dst`` (engine i on GPUs ``[i x tp, (i + 1) x tp)``) share
        an NVLink domain."""
        return bool(ops.same_nvlink_domain(self.hw, ops.engine_gpu(src, self.tp), ops.engine_gpu(dst, self.tp)))

    def seconds(self, tokens: int, src: int, dst: int) -> float:
        """Time to move ``tokens`` cached tokens' KV from engine ``src`` to engine ``dst``."""
        return float(ops.p2p_time_s(self.hw, tokens * self.bytes_per_token_per_gpu, same_domain=self.same_domain(src, dst)))


def link_cost(res) -> LinkCost:
    """The scenario's link: the speculative engines' KV plan when speculation is on."""
    mem = res.spec_memory if res.speculative is not None and res.spec_memory is not None else res.memory
    return LinkCost(res.hw, float(mem.kv_bytes_per_token), res.tp)


class Migrator:
    """The pool hook (``EnginePool.migration``): ``on_idle`` asks the busiest engine to give
    requests away, ``on_boundary`` moves them at that engine's iteration boundary.
    ``records``: one ``(t_s, seq_id, src, dst, tokens, bytes, arrive_s)`` per move."""

    def __init__(self, cfg: TailMigration, link: LinkCost) -> None:
        self.cfg, self.link = cfg, link
        self.records: list[tuple] = []
        self._gives: dict[int, list[int]] = {}  # source engine index -> idle destinations asked
        self._busy: set[int] = set()            # destinations promised or receiving requests
        self._moves: dict[int, int] = {}        # seq_id -> migrations so far

    def on_idle(self, pool, st) -> None:
        dst = pool.states.index(st)
        if dst in self._busy or not st.engine.admitting:
            return
        loads = [len(s.engine.running) if i != dst else -1 for i, s in enumerate(pool.states)]
        src = int(np.argmax(loads))  # lowest index on ties
        if loads[src] < self.cfg.min_source_running:
            return
        self._busy.add(dst)
        self._gives.setdefault(src, []).append(dst)
        pool._nudge(pool.states[src])  # an engine mid-jump commits it at the iteration in progress

    def on_boundary(self, pool, st) -> None:
        src = pool.states.index(st)
        for dst in self._gives.pop(src, []):
            moved = self._move(pool, src, dst)
            if not moved:
                self._busy.discard(dst)

    def _move(self, pool, src: int, dst: int) -> int:
        eng, target = pool.states[src].engine, pool.states[dst].engine
        if not target.done() or len(eng.running) < self.cfg.min_source_running:
            return 0
        req = eng.requests  # decoding requests only: one mid-prefill (or re-prefilling after a preemption) stays
        run = [s for s in eng.running if self._moves.get(int(req.seq_ids[s]), 0) < self.cfg.max_moves_per_request
               and int(req.prompt[s] + req.generated[s] - req.computed[s]) == 1]
        if not run:
            return 0
        run = np.array(run, dtype=np.int64)
        order = np.lexsort((req.seq_ids[run], -req.generated[run]))  # most generated first, then lowest id
        pick = run[order[: len(eng.running) // 2]]
        states = [eng.migrate_out(int(s)) for s in pick]
        now = pool.env.now
        tokens = [int(m["computed"]) for m in states]  # = prompt + generated - 1 (decoding)
        transfer = self.cfg.cost == "transfer"
        arrive = now + (sum(self.link.seconds(t, src, dst) for t in tokens) if transfer else 0.0)
        for m, t in zip(states, tokens):
            self._moves[m["seq_ids"]] = self._moves.get(m["seq_ids"], 0) + 1
            self.records.append((now, m["seq_ids"], src, dst, t, t * self.link.bytes_per_token_per_gpu * self.link.tp, arrive))
        pool.env.process(self._arrive(pool, dst, states, arrive - now, transfer))
        return len(states)

    def _arrive(self, pool, dst: int, states: list[dict], delay_s: float, transfer: bool):
        if delay_s > 0:
            yield pool.env.timeout(delay_s)
        st = pool.states[dst]
        idle = st.wake is not None
        st.engine.now = max(st.engine.now, pool.env.now) if idle else st.engine.now
        # the KV joins the running batch only on an idle, admitting engine: one that took other
        # work meanwhile (its jump planned on the free blocks) or stopped admitting for a weight
        # update gets the requests as waiting ones, which recompute their context
        for m in states:
            st.engine.migrate_in(m, transfer and idle and st.engine.admitting)
        self._busy.discard(dst)
        pool._nudge(st)

    def per_step(self, stride: int, steps: int) -> pd.DataFrame:
        """``MIGRATION_COLUMNS`` per step (a request's step: ``seq_id // stride``)."""
        import pandas as pd

        out = pd.DataFrame(0, index=range(steps), columns=list(MIGRATION_COLUMNS), dtype=np.int64)
        out["migrated_bytes"] = out["migrated_bytes"].astype(float)
        for _, sid, _, _, tok, nbytes, _ in self.records:
            t = sid // stride
            if t < steps:
                out.loc[t, "migrations"] += 1
                out.loc[t, "migrated_tokens"] += tok
                out.loc[t, "migrated_bytes"] += nbytes
        return out


def tail_times(sequences: pd.DataFrame, steps: pd.DataFrame, num_engines: int) -> np.ndarray:
    """Per step: the step's end (``batch_done_s``) minus when its first engine went idle -- the
    earliest, over engines, of the last finish of the step's requests the engine was dealt (rows
    that arrived by migration excluded; an engine dealt none: the dispatch time)."""
    seqs = sequences if "moved_in" not in sequences else sequences[sequences["moved_in"] == 0]
    out = np.full(len(steps), np.nan)
    for i, r in enumerate(steps.itertuples(index=False)):
        s = seqs[seqs["step"] == r.step]
        last = s.groupby("engine")["finish_s"].max()
        first_idle = float(last.min()) if len(last) == num_engines else float(r.dispatch_s)
        out[i] = float(r.batch_done_s) - first_idle
    return out


class TailMigrationSeam(PolicySeam):
    name = "tail_migration"

    def __init__(self, cfg: TailMigration) -> None:
        self.cfg = cfg

    def migration(self, res) -> Migrator:
        """The pool hook of this run."""
        if res.lockstep:
            raise ConfigError.at(res.source, "rl.policy.kind", "tail_migration",
                                 "needs engines without lock-step data parallelism (rollout dp > 1 is not supported)")
        return Migrator(self.cfg, link_cost(res))
