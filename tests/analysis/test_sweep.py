"""rlsim.sweep: points, rows, shared baselines, failures as rows, resume, determinism."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sweep_settings import ACC, BATCH, GRID, K, SYNC, TINY  # noqa: F401 - tests/analysis/conftest.py

from rlsim.analysis import sweep
from rlsim.analysis.points import check_path, expand, overrides_of, parse_axis
from rlsim.errors import ConfigError


def test_parse_axis_values_ranges_and_brackets():
    assert parse_axis("a.b=1..4") == ("a.b", [1, 2, 3, 4])
    assert parse_axis("a=0.5,fp8,null,true") == ("a", [0.5, "fp8", None, True])
    assert parse_axis("a=[1, 2],{x: 1, y: 2}") == ("a", [[1, 2], {"x": 1, "y": 2}])
    for bad in ("a", "=1,2", "a..b=1", "a=1,,2", "a=3..1"):
        with pytest.raises(ConfigError):
            parse_axis(bad)


def test_expand_grid_times_zip_and_overrides_roundtrip():
    pts = expand([("a", [1, 2])], [("b", [1, 2]), ("c", ["x", "1"])])
    assert pts == [{"a": 1, "b": 1, "c": "x"}, {"a": 1, "b": 2, "c": "1"},
                   {"a": 2, "b": 1, "c": "x"}, {"a": 2, "b": 2, "c": "1"}]
    assert overrides_of({"c": "1", "d": None, "e": "fp8"}) == ['c="1"', "d=null", "e=fp8"]
    with pytest.raises(ConfigError, match="same number of values"):
        expand([], [("b", [1, 2]), ("c", [1])])
    with pytest.raises(ConfigError, match="more than once"):
        expand([("a", [1])], [("a", [2])])


def test_unknown_field_fails_fast():
    check_path("rollout.engine.speculative_config.acceptance.rate")
    with pytest.raises(ConfigError, match="tensor_paralel_size"):
        check_path("rollout.engine.tensor_paralel_size")
    with pytest.raises(ConfigError, match="not a field"):
        sweep(SYNC, grid={"rollout.engine.max_num_seq": [1]}, overrides=TINY)


def test_rows_baselines_and_speedups(tiny_sweep):
    df, out = tiny_sweep
    assert len(df) == 8 and (df["status"] == "ok").all()
    assert list(df["point"]) == list(range(8))
    assert df[K].tolist() == [1, 1, 1, 1, 3, 3, 3, 3] and df["k"].tolist() == df[K].tolist()
    # one baseline per batch setting, shared across k and acceptance
    assert df.attrs["stats"]["baselines_computed"] == 2
    assert df.groupby(BATCH)["baseline_key"].nunique().eq(1).all()
    assert df["baseline_key"].nunique() == 2
    # the shared baseline is what simulate_rl computes for the point itself
    from rlsim.config import load_scenario
    from rlsim.rl.run import simulate_rl
    from rlsim.sim import resolve

    row = df.iloc[5]
    r = simulate_rl(resolve(load_scenario(SYNC, TINY + json.loads(row["overrides"])[len(TINY):])))
    assert row["step_time_s"] == r.summary["spec"]["step_time_s"]
    assert row["baseline_step_time_s"] == r.summary["baseline"]["step_time_s"]
    assert row["speedup_end_to_end"] == pytest.approx(r.summary["speedup"]["end_to_end"], rel=1e-12)
    assert row["speedup_generation"] == pytest.approx(r.summary["speedup"]["generation"], rel=1e-12)
    assert "speedup_end_to_end_vs_sync" not in df.columns  # a sync pipeline has no sync twin
    pd.testing.assert_frame_equal(pd.read_parquet(out), df.reset_index(drop=True), check_like=False)
    journal = out.with_name(out.name + ".journal.jsonl")  # kept: the source of truth
    assert len(journal.read_text().splitlines()) == 8 + df["baseline_key"].nunique()


def test_rerun_resumes_everything(tiny_sweep):
    df, out = tiny_sweep
    again = sweep(SYNC, grid=GRID, overrides=TINY, out=out, workers=1)
    assert again.attrs["stats"]["computed"] == 0 and again.attrs["stats"]["baselines_computed"] == 0
    assert again.attrs["stats"]["resumed"] == 8
    pd.testing.assert_frame_equal(again, df)


def test_killed_sweep_resumes_from_journal(tiny_sweep, tmp_path):
    """Half the points in the journal (as left by a kill, with a torn last line), no parquet."""
    df, out = tiny_sweep
    from rlsim.analysis.sweep import _Store

    st = _Store(out)
    st.load()
    new = tmp_path / "k.parquet"
    lines = [json.dumps({"type": "baseline", "key": k, "result": v}) for k, v in st.baselines.items()]
    lines += [json.dumps({"type": "point", "key": k, "result": st.points[k]}) for k in df["point_id"][:4]]
    new.with_name(new.name + ".journal.jsonl").write_text("\n".join(lines) + '\n{"type": "point", "ke')
    calls = []
    res = sweep(SYNC, grid=GRID, overrides=TINY, out=new, workers=1, progress=lambda d, t, r: calls.append(d))
    assert res.attrs["stats"]["computed"] == 4 and res.attrs["stats"]["baselines_computed"] == 0
    assert calls[0] == 4 and calls[-1] == 8
    pd.testing.assert_frame_equal(res, df)


def test_process_pool_rows_identical(tiny_sweep, tmp_path):
    df, _ = tiny_sweep
    par = sweep(SYNC, grid=GRID, overrides=TINY, out=tmp_path / "p.parquet", workers=2)
    pd.testing.assert_frame_equal(par, df)


def test_failures_are_rows_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "f.parquet"
    df = sweep(SYNC, grid={"rollout.engine.tensor_parallel_size": [1, 3],
                           "rollout.engine.gpu_memory_utilization": [0.6, 0.05]},
               overrides=TINY, out=out, workers=1)
    assert df["status"].tolist() == ["ok", "infeasible", "infeasible", "infeasible"]
    assert "gpu_memory_utilization" in df["error"][1] or "too small" in df["error"][1]
    assert "does not divide" in df["error"][2]
    assert pd.isna(df["error"][0]) and df["step_time_s"].notna().tolist() == [True, False, False, False]
    # a crash (not a user error) is an "error" row and is retried on the next run
    import rlsim.analysis.worker as w

    orig = w._point
    try:
        w._point = lambda res, seed: (_ for _ in ()).throw(RuntimeError("boom"))
        bad = sweep(SYNC, grid={"rollout.engine.max_num_seqs": [64]}, overrides=TINY, out=tmp_path / "e.parquet", workers=1)
    finally:
        w._point = orig
    assert bad["status"].tolist() == ["error"] and bad["error"][0] == "RuntimeError: boom"
    good = sweep(SYNC, grid={"rollout.engine.max_num_seqs": [64]}, overrides=TINY, out=tmp_path / "e.parquet", workers=1)
    assert good["status"].tolist() == ["ok"] and good.attrs["stats"]["computed"] == 1


def test_seeds_and_rollout_scenarios(tmp_path):
    sc = SYNC.parent / "qwen8b_rollout_eagle3.yaml"
    df = sweep(sc, grid={K: [2]}, seeds=2, overrides=["workload.num_prompts_per_step=2", "workload.num_generations_per_prompt=2",
                                                      "rollout.num_gpus=2", "cluster.num_gpus=2"], workers=1)
    assert df["seed"].tolist() == [0, 1] and df["point_id"].nunique() == 2
    assert (df["status"] == "ok").all() and df["speedup_rollout"].notna().all()
    assert df["baseline_key"].nunique() == 2  # a baseline per seed


def test_scenario_edit_invalidates_keys(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SYNC.read_text())
    out = tmp_path / "r.parquet"
    a = sweep(p, grid={K: [2]}, overrides=TINY, out=out, workers=1)
    p.write_text(SYNC.read_text() + "\n# edited\n")
    b = sweep(p, grid={K: [2]}, overrides=TINY, out=out, workers=1)
    assert b.attrs["stats"]["computed"] == 1 and a["point_id"][0] != b["point_id"][0]
    assert len(pd.read_parquet(out)) == 2  # the old row is kept after the current ones
