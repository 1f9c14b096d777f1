"""trace.json: one process per pool and run, counters, no overlapping slices on a track
(property test over random segment tables), the size cap with decimation."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsim.results.trace import rl_trace, rollout_trace

REPO = Path(__file__).resolve().parents[2]


def _overlaps(doc: dict) -> int:
    tracks = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append((round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000)))
    bad = 0
    for sl in tracks.values():
        sl.sort()
        bad += sum(1 for a, b in zip(sl, sl[1:]) if b[0] < a[1])
    return bad


def _segments(starts: list[float], durs: list[float], engines: int) -> pd.DataFrame:
    rows = []
    for e in range(engines):
        t = 0.0
        for s, d in zip(starts, durs):
            t0 = t + s
            rows.append({"engine": e, "t0_s": t0, "t1_s": t0 + d, "iterations": 3, "running": 5, "kind": "decode",
                         "new_tokens": 15, "prefill_tokens": 0, "preemptions": 0})
            t = t0 + d
    return pd.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1e-6), min_size=1, max_size=30), st.integers(1, 3),
       st.lists(st.floats(1e-7, 10.0), min_size=30, max_size=30), st.integers(5, 100))
def test_no_slice_overlaps_its_predecessor(gaps, engines, durs, cap):
    seg = _segments(gaps, durs[: len(gaps)], engines)
    doc = rollout_trace(seg, max_events=cap)
    assert _overlaps(doc) == 0
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(slices) <= max(cap, engines) and all(e["dur"] > 0 for e in slices)
    # decimation keeps the span of every engine
    for e in range(engines):
        s = [x for x in slices if x["tid"] == e]
        g = seg[seg["engine"] == e]
        assert round(s[-1]["ts"] + s[-1]["dur"], 3) == round(g["t1_s"].max() * 1e6, 3)


def test_rounding_neighbours_do_not_overlap():
    # start and duration rounded separately used to overlap by 0.001 us
    seg = pd.DataFrame({"engine": 0, "t0_s": [0.0, 1.0000000004], "t1_s": [1.0000000004, 2.0], "iterations": 1,
                        "running": 1, "kind": "step", "new_tokens": 1, "prefill_tokens": 0, "preemptions": 0})
    assert _overlaps(rollout_trace(seg)) == 0


def test_decimation_is_recorded():
    seg = _segments([0.0] * 50, [0.5] * 50, 2)
    doc = rollout_trace(seg, max_events=20)
    assert doc["otherData"]["decimation"] == 5 and doc["otherData"]["truncated"] is True
    x = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(x) == 20 and x[0]["name"] == "merged x15" and x[0]["args"]["running"] == 5


def test_kv_counter_keeps_the_peak_of_merged_segments():
    seg = _segments([0.0] * 4, [0.5] * 4, 1).assign(kv_used_frac=[0.1, 0.9, 0.2, 0.3])
    kv = [e for e in rollout_trace(seg, max_events=2)["traceEvents"] if e["name"] == "kv engine 0"]
    assert [e["args"]["kv_used_pct"] for e in kv] == [90.0, 30.0]
    assert [e["ts"] for e in kv] == [1e6, 2e6]  # at each merged slice's end


def test_kv_counter_reaches_full_when_the_cache_preempts():
    from rlsim.api import simulate

    res = simulate(REPO / "scenarios" / "qwen8b_rollout.yaml",  # one engine, KV for ~48k tokens, ~330k wanted
                   overrides=["cluster.num_gpus=1", "workload.num_prompts_per_step=64",
                              "workload.num_generations_per_prompt=2", "workload.response_length.mean_tokens=2000",
                              "rollout.engine.gpu_memory_utilization=0.3"])
    seg = res.segments
    assert seg["preemptions"].sum() > 0
    assert seg["kv_used_frac"].between(0.0, 1.0).all() and seg["kv_used_frac"].max() > 0.9


def test_rl_trace_has_every_pool_of_every_run():
    from rlsim.api import simulate

    res = simulate(REPO / "scenarios" / "qwen8b_async.yaml",
                   overrides=["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2", "rl.num_steps=3",
                              "workload.response_length.mean_tokens=300"])
    doc = rl_trace(res)
    procs = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    runs = list(res.runs)
    assert runs == ["spec", "baseline", "sync_baseline"]
    assert procs == {f"{r}: {p}" for r in runs for p in ("rollout engines", "logprob", "trainer", "weight sync",
                                                         "reward (exposed)")}
    assert _overlaps(doc) == 0
    by_pid = defaultdict(set)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            by_pid[e["pid"]].add(e["name"])
    assert by_pid[2] == {"step 0", "step 1", "step 2"}  # spec trainer: one slice per step
    counters = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    assert {e["pid"] for e in counters} == {0, 10, 20}
    assert {e["name"].split(" engine")[0] for e in counters} == {"running", "kv"}
    kv = [e["args"]["kv_used_pct"] for e in counters if e["name"].startswith("kv ")]
    assert kv and all(0.0 <= v <= 100.0 for v in kv) and max(kv) > 0.0
    assert np.isfinite([e["ts"] for e in doc["traceEvents"] if "ts" in e]).all()
