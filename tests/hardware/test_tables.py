"""Table mode (rlsim.hardware.tables): log-log interpolation of measured curves, fallback to
the fitted model outside them, counts, and how profiles / scenarios switch it on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rlsim.calibration.readers import _tidy
from rlsim.cli import app
from rlsim.errors import ConfigError
from rlsim.hardware import load_profile, ops
from rlsim.hardware.tables import KernelTables

runner = CliRunner()
H100 = load_profile("h100_sxm")


def _gemm_rows(n=4096, k=4096, ms=(1, 16, 256, 4096), t0_s=1e-5, slope=0.5, dtype="bf16") -> pd.DataFrame:
    """A power law t = t0 * m^slope: exact under log-log interpolation."""
    return _tidy(pd.DataFrame([{"op_class": "gemm", "dtype": dtype, "m": m, "n": n, "k": k,
                                "measured_s": t0_s * m ** slope} for m in ms]))


def test_interpolates_in_log_space_and_falls_back_outside():
    tab = KernelTables.from_frame(_gemm_rows(), "synthetic")
    got = tab.lookup("gemm:bf16", (4096, 4096), np.array([1.0, 64.0, 4096.0, 8192.0]), np.full(4, 7.0))
    assert got[:3] == pytest.approx([1e-5, 1e-5 * 8.0, 1e-5 * 64.0], rel=1e-12)
    assert got[3] == 7.0  # beyond the largest measured m: the model's value
    assert tab.lookup("gemm:bf16", (1024, 4096), 64.0, 3.0) == 3.0  # no curve for this (n, k)
    assert tab.report()["ops"] == {"gemm:bf16": {"lookups": 5, "fallbacks": 2, "fallback_frac": 0.4}}
    tab.reset_counts()
    assert tab.report()["lookups"] == 0


def test_repeated_sizes_use_their_median_and_fp16_serves_bf16():
    rows = pd.concat([_gemm_rows(dtype="fp16"), _gemm_rows(ms=(16,), t0_s=3e-5, dtype="fp16"),
                      _gemm_rows(ms=(16,), t0_s=5e-5, dtype="fp16")])
    tab = KernelTables.from_frame(rows, "synthetic")
    assert tab.lookup("gemm:bf16", (4096, 4096), 16.0, 0.0) == pytest.approx(3e-5 * 4.0)


def test_fp8_block_gemm_rows_are_not_tabulated():
    tab = KernelTables.from_frame(_gemm_rows(dtype="fp8_block"), "synthetic")
    assert not tab.has("gemm:fp8_block") and tab.num_curves == 0


def test_holdout_leaves_each_size_out():
    df = _gemm_rows(ms=(1, 4, 16, 64))
    held = KernelTables.from_frame(df, "s").holdout_s(df)
    assert np.isnan(held[0]) and np.isnan(held[3])  # end points cannot be interpolated
    assert held[1:3] == pytest.approx(df["measured_s"].to_numpy()[1:3], rel=1e-12)


def _with_tables(df: pd.DataFrame):
    hw = H100.model_copy()
    hw._tables = KernelTables.from_frame(df, "synthetic")
    return hw


def test_ops_use_tables_for_gemm_moe_and_collectives():
    gemm = _gemm_rows()
    moe = _tidy(pd.DataFrame([{"op_class": "moe", "dtype": "bf16", "num_tokens": t, "hidden_size": 2048,
                               "inter_size": 768, "num_experts": 128, "topk": 8, "moe_tp": 1, "moe_ep": 1,
                               "distribution": "balanced", "measured_s": 1e-4 * t} for t in (1, 100)]))
    car = _tidy(pd.DataFrame([{"op_class": "custom_all_reduce", "dtype": "bf16", "num_gpus": 2, "nbytes": b,
                               "backend": "graph", "measured_s": 1e-6 * b / 1024} for b in (1024, 1 << 20)]))
    hw = _with_tables(pd.concat([gemm, moe, car]))
    assert ops.gemm_time_s(hw, 64, 4096, 4096, "bf16") == pytest.approx(8e-5)
    assert ops.gemm_time_s(hw, 64, 1024, 4096, "bf16") == ops.gemm_time_s(H100, 64, 1024, 4096, "bf16")
    assert ops.moe_layer_time_s(hw, 10, 128, 8, 2048, 768, "bf16") == pytest.approx(1e-3)
    assert ops.moe_layer_time_s(hw, 10, 128, 8, 2048, 768, "bf16", tp=2) == \
        ops.moe_layer_time_s(H100, 10, 128, 8, 2048, 768, "bf16", tp=2)
    assert ops.collective_time_s(hw, "all_reduce", 32768.0, 2) == pytest.approx(32e-6)
    assert ops.collective_time_s(hw, "all_reduce", 32768.0, 2, cuda_graph=False) == \
        ops.collective_time_s(H100, "all_reduce", 32768.0, 2, cuda_graph=False)  # no eager curve
    assert hw.tables.report()["fallbacks"] == 3


def test_moe_layer_time_matches_the_expert_split():
    t = ops.moe_layer_time_s(H100, 256, 128, 8, 2048, 768, "bf16", ep=4, routing="uniform")
    touched = ops.expected_experts_touched(256, 128, 8)
    expect = ops.moe_time_s(H100, 64, 32, touched / 4, 1536, 2048, 2048, "bf16", 8, overhead_rows=256 * 8)
    assert t == pytest.approx(expect, rel=1e-12)


def _aic_gemm_folder(root: Path) -> Path:
    d = _gemm_rows()
    gemm = pd.DataFrame({"framework": "VLLM", "version": "0.24.0", "op_name": "gemm", "kernel_source": "torch",
                         "gemm_dtype": "bfloat16", "m": d.m.astype(int), "n": d.n.astype(int), "k": d.k.astype(int),
                         "latency": d.measured_s * 1e3})
    p = root / "gemm" / "vllm" / "0.24.0"
    p.mkdir(parents=True)
    gemm.to_parquet(p / "gemm_perf.parquet")
    return root


def test_profile_kernel_tables_relative_to_the_profile(tmp_path):
    _aic_gemm_folder(tmp_path / "mine")
    text = Path(H100.source).read_text().replace("kernel_tables: null", "kernel_tables: mine")
    (tmp_path / "h100_tables.yaml").write_text(text)
    hw = load_profile(str(tmp_path / "h100_tables.yaml"))
    assert hw.tables is not None and hw.tables.has("gemm:bf16")
    assert ops.gemm_time_s(hw, 256, 4096, 4096, "bf16") == pytest.approx(1.6e-4)
    assert hw.calibration_summary()["kernel_tables"]["lookups"] == 1


def test_missing_kernel_tables_folder_is_a_config_error(tmp_path):
    text = Path(H100.source).read_text().replace("kernel_tables: null", "kernel_tables: nowhere")
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_profile(str(f))
    assert str(exc.value) == (f"{f}: kernel_tables = 'nowhere' is not a folder or file of kernel measurements "
                              "(not found)")


def test_scenario_table_mode_is_reported(tmp_path):
    _aic_gemm_folder(tmp_path / "tables")
    sc = tmp_path / "s.yaml"
    sc.write_text("""name: t
cluster: {hardware: h100_sxm, num_gpus: 1, kernel_tables: tables}
model: {name: Qwen3-8B}
workload:
  num_prompts_per_step: 1
  num_generations_per_prompt: 2
  prompt_length: {kind: fixed, tokens: 64}
  response_length: {kind: fixed, tokens: 32}
  max_new_tokens: 32
""")
    r = runner.invoke(app, ["run", str(sc), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "kernel tables" in r.output and "fell back to the fitted model" in r.output
    import json

    kt = json.loads((tmp_path / "o" / "summary.json").read_text())["hardware"]["kernel_tables"]
    assert kt["lookups"] > 0 and 0 < kt["fallbacks"] < kt["lookups"]  # (4096, 4096) is Qwen3-8B's o_proj
    bad = sc.read_text().replace("kernel_tables: tables", "kernel_tables: missing")
    sc.write_text(bad)
    r = runner.invoke(app, ["run", str(sc)])
    assert r.exit_code == 2
    assert r.output.strip() == (f"error: {sc}: cluster.kernel_tables = 'missing' is not a folder or file of kernel "
                                "measurements (not found)")


def test_check_table_mode_reports_held_out_interpolation(tmp_path):
    root = _aic_gemm_folder(tmp_path / "aic")
    r = runner.invoke(app, ["calibrate", "check", "--profile", "h100_sxm", "--traces", str(root), "--table-mode",
                            "--json", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    import json

    data = json.loads((tmp_path / "c.json").read_text())
    tm = data["gemm:bf16@table_mode"]
    assert tm["table_rows"] == 2 and tm["table_median_abs_pct_err"] == pytest.approx(0.0, abs=1e-9)
    assert math.isfinite(data["gemm:bf16"]["median_abs_pct_err"])


def test_counts_are_distinct_queries_per_profile():
    tab = KernelTables.from_frame(_gemm_rows(), "synthetic")
    a, b = tab.with_fresh_counts(), tab.with_fresh_counts()
    for _ in range(3):  # repeating a query (no cache) does not inflate the counts
        a.lookup("gemm:bf16", (4096, 4096), np.array([64.0, 64.0, 9000.0]), np.zeros(3))
    assert a.report()["lookups"] == 2 and a.report()["fallbacks"] == 1
    assert b.report()["lookups"] == 0  # another profile's copy counts on its own


def test_only_half_precision_collectives_and_no_group_limited_moe_are_tabulated():
    rows = _tidy(pd.DataFrame(
        [{"op_class": "nccl_all_reduce", "dtype": d, "num_gpus": 8, "nbytes": b, "backend": "nccl", "measured_s": t * 1e-6}
         for d, t in (("bf16", 10.0), ("int8", 99.0)) for b in (1024, 2048)]
        + [{"op_class": "moe", "dtype": "fp8_block", "num_tokens": t, "hidden_size": 7168, "inter_size": 2048,
            "num_experts": 256, "topk": 8, "moe_tp": 1, "moe_ep": 8, "distribution": "balanced", "measured_s": 1e-3}
           for t in (1, 100)]))
    tab = KernelTables.from_frame(rows, "synthetic")
    assert tab.lookup("nccl_all_reduce", (8,), 1500.0, 0.0) == pytest.approx(10e-6)
    assert not tab.has("moe:fp8_block")  # DeepSeek-V3's group-limited router: benchmark routing, not tabulated


def test_tables_of_another_shipped_gpu_are_refused(tmp_path):
    folder = _aic_gemm_folder(tmp_path / "h100_sxm")  # aiconfigurator folders are named after the system
    with pytest.raises(ConfigError) as exc:
        load_profile("b200_sxm").with_kernel_tables(str(folder), source="s.yaml", field="cluster.kernel_tables",
                                                    shown="h100_sxm")
    assert str(exc.value) == "s.yaml: cluster.kernel_tables = 'h100_sxm' holds measurements of h100_sxm, not of b200_sxm"
    assert load_profile("h100_sxm").with_kernel_tables(str(folder)).tables.has("gemm:bf16")
