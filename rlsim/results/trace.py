"""Chrome / Perfetto trace (``trace.json``, the JSON trace-event format both UIs open).

Layout
------
* a rollout: one process, "rollout engines", one thread per engine with a slice per segment
  (``decode x12``: 12 iterations with the same batch) and a ``running`` counter per engine;
* an RL run: for each run (``spec``, ``baseline``, ``sync_baseline``) one process per pool --
  ``<run>: rollout engines`` (as above), ``<run>: logprob``, ``<run>: trainer`` (policy and
  drafter training), ``<run>: weight sync`` and ``<run>: reward (exposed)`` -- with one slice per
  RL step (``step 3``), placed from the step table (logprob from ``train_start_s``, training
  after it until ``train_end_s``, sync from ``sync_start_s`` to ``sync_end_s``, the exposed
  reward just before ``train_start_s``).

Times are integer nanoseconds before they become microseconds, and each slice starts no earlier
than the previous slice of its track ends, so no two slices of a track overlap (the trace-event
format has microsecond floats; rounding start and duration separately made neighbours overlap by
0.001 us).

Size cap: at most ``max_events`` engine slices in all; above it, each engine's consecutive
segments are merged ``f`` at a time (``f`` = the smallest factor that fits, at least one slice
per engine; the merged slice
names its iterations and carries the time-weighted mean running batch), and ``otherData``
records ``decimation = f``.  A ``kv engine N`` counter per engine gives the share of KV blocks in
use (percent) at each slice's end (a merged slice: the largest of its segments, so a saturated
cache stays visible after decimation).  Written as JSON by hand: the ``perfetto`` Python package writes the protobuf format and
would add a dependency for no gain here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["engine_events", "rl_trace", "rollout_trace", "write_trace", "DEFAULT_MAX_EVENTS"]

DEFAULT_MAX_EVENTS = 400_000


def _ns(t_s) -> np.ndarray:
    return np.round(np.asarray(t_s, dtype=np.float64) * 1e9).astype(np.int64)


class _Track:
    """Slices of one (pid, tid): starts clamped to the previous end (no overlap)."""

    def __init__(self, pid: int, tid: int):
        self.pid, self.tid, self.end_ns = pid, tid, None

    def slice(self, name: str, t0_ns: int, t1_ns: int, args: dict | None = None) -> dict | None:
        if self.end_ns is not None and t0_ns < self.end_ns:
            t0_ns = self.end_ns
        if t1_ns <= t0_ns:
            return None
        self.end_ns = t1_ns
        ev = {"ph": "X", "name": name, "pid": self.pid, "tid": self.tid, "ts": t0_ns / 1000, "dur": (t1_ns - t0_ns) / 1000}
        if args:
            ev["args"] = args
        return ev


def _meta(pid: int, name: str, tid: int | None = None, sort: int | None = None) -> list[dict]:
    if tid is None:
        out = [{"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}]
        if sort is not None:
            out.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": sort}})
        return out
    return [{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}]


def _decimate(seg: pd.DataFrame, f: int) -> pd.DataFrame:
    """Merge each engine's consecutive segments ``f`` at a time (module docstring)."""
    out = []
    for e, g in seg.groupby("engine", sort=True):
        g = g.reset_index(drop=True)
        grp = np.arange(len(g)) // f
        dur = (g["t1_s"] - g["t0_s"]).to_numpy()
        w = pd.DataFrame({"engine": g["engine"], "t0_s": g["t0_s"], "t1_s": g["t1_s"], "iterations": g["iterations"],
                          "run_dur": g["running"] * dur, "dur": dur, "new_tokens": g["new_tokens"],
                          "prefill_tokens": g["prefill_tokens"], "preemptions": g["preemptions"], "grp": grp})
        a = w.groupby("grp").agg(engine=("engine", "first"), t0_s=("t0_s", "first"), t1_s=("t1_s", "last"),
                                 iterations=("iterations", "sum"), run_dur=("run_dur", "sum"), dur=("dur", "sum"),
                                 new_tokens=("new_tokens", "sum"), prefill_tokens=("prefill_tokens", "sum"),
                                 preemptions=("preemptions", "sum"))
        if "kv_used_frac" in g:
            a["kv_used_frac"] = g.groupby(grp)["kv_used_frac"].max().to_numpy()
        a["running"] = np.where(a["dur"] > 0, a["run_dur"] / a["dur"].where(a["dur"] > 0, 1.0), 0.0)
        a["kind"] = "merged"
        a["engine"] = e
        out.append(a.drop(columns=["run_dur", "dur"]))
    return pd.concat(out, ignore_index=True) if out else seg


def engine_events(segments: pd.DataFrame, pid: int, max_events: int) -> tuple[list[dict], int]:
    """(events, decimation factor) of the engines' segments in process ``pid``."""
    if not len(segments):
        return [], 1
    counts = segments.groupby("engine").size().to_numpy()
    f = max(1, math.ceil(len(segments) / max_events))
    while f < counts.max() and int(np.ceil(counts / f).sum()) > max_events:
        f += 1  # each engine rounds its merged count up
    seg = segments if f == 1 else _decimate(segments, f)
    has_kv = "kv_used_frac" in seg
    events: list[dict] = []
    for e, g in seg.groupby("engine", sort=True):
        tid = int(e)
        events += _meta(pid, f"engine {tid}", tid)
        track = _Track(pid, tid)
        t0, t1 = _ns(g["t0_s"]), _ns(g["t1_s"])
        for i, row in enumerate(g.itertuples(index=False)):
            it = int(row.iterations)
            name = f"{row.kind} x{it}" if it > 1 else str(row.kind)
            running = float(row.running)
            ev = track.slice(name, int(t0[i]), int(t1[i]), {
                "running": round(running, 3), "iterations": it, "new_tokens": int(row.new_tokens),
                "prefill_tokens": int(row.prefill_tokens), "preemptions": int(row.preemptions)})
            if ev is not None:
                events.append(ev)
                events.append({"ph": "C", "name": f"running engine {tid}", "pid": pid, "ts": ev["ts"],
                               "args": {"running": round(running, 3)}})
                if has_kv:
                    events.append({"ph": "C", "name": f"kv engine {tid}", "pid": pid, "ts": int(t1[i]) / 1000,
                                   "args": {"kv_used_pct": round(100.0 * float(row.kv_used_frac), 2)}})
    return events, f


def rollout_trace(segments: pd.DataFrame, max_events: int = DEFAULT_MAX_EVENTS) -> dict:
    """The trace document of a rollout (module docstring)."""
    events, f = engine_events(segments, 0, max_events)
    return _doc(_meta(0, "rollout engines", sort=0) + events, f, len(segments))


def _step_events(steps: pd.DataFrame, pid0: int, run: str) -> list[dict]:
    pools = [("logprob", 1), ("trainer", 2), ("weight sync", 3), ("reward (exposed)", 4)]
    events: list[dict] = []
    tracks = {}
    for name, off in pools:
        events += _meta(pid0 + off, f"{run}: {name}", sort=pid0 + off)
        events += _meta(pid0 + off, name, 0)
        tracks[name] = _Track(pid0 + off, 0)
    start, end = _ns(steps["train_start_s"]), _ns(steps["train_end_s"])
    lp = _ns(steps["train_start_s"] + steps["logprob_time_s"])
    s0, s1 = _ns(steps["sync_start_s"]), _ns(steps["sync_end_s"])
    rw = _ns(steps["train_start_s"] - steps["reward_time_s"])
    for i, step in enumerate(steps["step"].to_numpy()):
        label = f"step {int(step)}"
        for name, a, b in (("reward (exposed)", rw[i], start[i]), ("logprob", start[i], min(lp[i], end[i])),
                           ("trainer", min(lp[i], end[i]), end[i]), ("weight sync", s0[i], s1[i])):
            ev = tracks[name].slice(label, int(a), int(b), {"step": int(step)})
            if ev is not None:
                events.append(ev)
    return events


def rl_trace(result, max_events: int = DEFAULT_MAX_EVENTS) -> dict:
    """The trace document of an RL result: every run, every pool (module docstring)."""
    events: list[dict] = []
    n_seg = sum(len(r.segments) for r in result.runs.values())
    budget = max(1, max_events // max(1, len(result.runs)))
    worst = 1
    for i, (name, run) in enumerate(result.runs.items()):
        pid0 = 10 * i
        events += _meta(pid0, f"{name}: rollout engines", sort=pid0)
        ev, f = engine_events(run.segments, pid0, budget)
        worst = max(worst, f)
        events += ev + _step_events(run.steps, pid0, name)
    return _doc(events, worst, n_seg)


def _doc(events: list[dict], f: int, n_segments: int) -> dict:
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"producer": "rlsim", "decimation": f, "segments": n_segments, "truncated": f > 1}}


def write_trace(doc: dict, path: Path) -> None:
    """Write a trace document (compact JSON, atomically: rlsim.results.atomic)."""
    from rlsim.results.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(doc, separators=(",", ":")))
