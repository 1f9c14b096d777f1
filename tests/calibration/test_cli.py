"""``rlsim calibrate fit / check / transfer`` end to end on a small synthetic aiconfigurator
folder, and the shipped profiles' calibration labels."""

from __future__ import annotations

import re

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rlsim.calibration.predict import predict
from rlsim.calibration.readers import _tidy
from rlsim.cli import app
from rlsim.hardware import load_profile

runner = CliRunner()


def _folder(tmp_path: Path) -> Path:
    """A one-system aiconfigurator-style folder whose latencies come from the h100 profile."""
    hw = load_profile("h100_sxm")
    root = tmp_path / "mygpu"
    rows = [{"op_class": "gemm", "dtype": "bf16", "m": m, "n": n, "k": k, "measured_s": 1.0}
            for m, (n, k) in itertools.product([1, 16, 256, 4096], [(4096, 4096), (6144, 4096), (1024, 2048)])]
    df = _tidy(pd.DataFrame(rows))
    t = predict(hw, df) * 1.07  # 7 % slower than the profile says
    gemm = pd.DataFrame({"framework": "VLLM", "version": "0.24.0", "op_name": "gemm", "kernel_source": "torch",
                         "gemm_dtype": "bfloat16", "m": df.m.astype(int), "n": df.n.astype(int), "k": df.k.astype(int),
                         "latency": t * 1e3})
    p = root / "gemm" / "vllm" / "0.24.0"
    p.mkdir(parents=True)
    gemm.to_parquet(p / "gemm_perf.parquet")
    sizes = [2 ** i for i in range(10, 22, 2)]
    ar = _tidy(pd.DataFrame([{"op_class": "custom_all_reduce", "dtype": "bf16", "num_gpus": n, "nbytes": 2.0 * s,
                              "backend": "graph", "measured_s": 1.0} for n in (2, 4) for s in sizes]))
    car = pd.DataFrame({"framework": "vLLM", "version": "0.24.0", "op_name": "all_reduce", "kernel_source": "c",
                        "allreduce_dtype": "bfloat16", "num_gpus": ar.num_gpus.astype(int),
                        "message_size": (ar.nbytes / 2).astype(int), "latency": predict(hw, ar) * 1e3, "backend": "vllm_graph"})
    p = root / "comm" / "vllm" / "0.24.0"
    p.mkdir(parents=True)
    car.to_parquet(p / "custom_allreduce_perf.parquet")
    return root


def test_fit_then_check(tmp_path):
    traces = _folder(tmp_path)
    out = tmp_path / "fitted.yaml"
    r = runner.invoke(app, ["calibrate", "fit", "--traces", str(traces), "--profile", "h100_sxm", "--out", str(out),
                            "--all-shapes", "--keys", "gemm:bf16", "--folds", "2"])
    assert r.exit_code == 0, r.output
    assert "gemm:bf16" in r.output
    hw = load_profile(str(out))
    assert hw.calibration.status == "calibrated"
    assert "gemm:bf16" in hw.calibration.errors
    assert hw.calibration.errors["gemm:bf16"]["median_ape"] < 0.02
    text = out.read_text()
    assert "# fit: gemm:bf16" in text
    for line in text.splitlines():  # every number keeps a source comment
        value = line.split("#")[0].partition(":")[2].strip()
        if re.match(r"-|\{|\.?[0-9]", value):
            assert "#" in line, line
    js = tmp_path / "check.json"
    plots = tmp_path / "plots"
    r = runner.invoke(app, ["calibrate", "check", "--profile", str(out), "--traces", str(traces), "--json", str(js),
                            "--plots", str(plots)])
    assert r.exit_code == 0, r.output
    data = json.loads(js.read_text())
    assert set(data) == {"gemm:bf16", "custom_all_reduce"}
    assert set(data["gemm:bf16"]) == {"n", "median_abs_pct_err", "p90_abs_pct_err"}
    assert data["gemm:bf16"]["n"] == 12 and data["gemm:bf16"]["median_abs_pct_err"] < 2.0
    assert data["custom_all_reduce"]["median_abs_pct_err"] < 0.5  # untouched parameters, exact data
    assert (plots / "parity_gemm_bf16.png").stat().st_size > 1000


def test_user_errors_are_one_line(tmp_path):
    r = runner.invoke(app, ["calibrate", "check", "--profile", "h100_sxm", "--traces", str(tmp_path / "none")])
    assert r.exit_code == 2
    assert r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["calibrate", "fit", "--profile", "nope", "--traces", str(tmp_path)])
    assert r.exit_code == 2 and "not a known profile" in r.output


def test_transfer(tmp_path):
    out = tmp_path / "h200.yaml"
    r = runner.invoke(app, ["calibrate", "transfer", "--from", "h100_sxm", "--to", "h200_sxm", "--out", str(out)])
    assert r.exit_code == 0, r.output
    h200, h100 = load_profile(str(out)), load_profile("h100_sxm")
    assert h200.calibration.status == "transferred"
    assert h200.efficiency == h100.efficiency and h200.gpu == load_profile("h200_sxm").gpu


@pytest.mark.parametrize("name", ["h100_sxm", "b200_sxm", "gb200"])
def test_shipped_profiles_are_calibrated_with_errors(name):
    hw = load_profile(name)
    assert hw.calibration.status == "calibrated"
    for key in ("gemm:bf16", "nccl_all_reduce", "custom_all_reduce", "generation_attention:bf16"):
        e = hw.calibration.errors[key]
        assert 0 <= e["median_ape"] <= e["p90_ape"] and 0 <= e["cv_median_ape"] <= e["cv_p90_ape"]


#: The calibration issue's held-out bounds (median, p90 in %) per key.
BOUNDS = {**{k: (8.0, 25.0) for k in ("gemm:bf16", "moe:bf16", "generation_attention:bf16", "context_attention:bf16",
                                     "gemm:fp8_block", "nccl_all_reduce", "custom_all_reduce")},
          **{k: (12.0, 35.0) for k in ("gemm:fp8", "moe:fp8", "moe:fp8_block", "generation_attention:fp8",
                                      "context_attention:fp8")}}


@pytest.mark.parametrize("name", ["h100_sxm", "b200_sxm", "gb200"])
def test_shipped_profiles_meet_the_held_out_bounds(name):
    """The stored grouped 5-fold held-out errors meet the bounds for every key the data has
    (fp8-KV attention is held to the fp8 bound); the one allowed exception used to be fp8 fused
    MoE on H100 (irregular kernel: table mode covers it, see test_table_mode_covers_h100_fp8_moe),
    which the per-expert term now brings inside the bound."""
    errors = load_profile(name).calibration.errors
    missed = {}
    for key, (med, p90) in BOUNDS.items():
        e = errors.get(key)
        if e is None:
            continue
        if e["cv_median_ape"] * 100 > med or e["cv_p90_ape"] * 100 > p90:
            missed[key] = (round(100 * e["cv_median_ape"], 1), round(100 * e["cv_p90_ape"], 1))
    assert missed == {}
    assert all(k in errors for k in ("gemm:bf16", "gemm:fp8", "gemm:fp8_block", "moe:bf16", "moe:fp8", "moe:fp8_block",
                                     "generation_attention:bf16", "context_attention:bf16", "nccl_all_reduce",
                                     "custom_all_reduce", "generation_attention:fp8", "context_attention:fp8",
                                     "moe:mxfp4", "moe:int4"))


def test_h200_is_transferred():
    h200 = load_profile("h200_sxm")
    assert h200.calibration.status == "transferred"
    assert "UNCALIBRATED" in h200.calibration.source
    assert h200.efficiency == load_profile("h100_sxm").efficiency


TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"


def test_check_reproduces_the_fit_errors_on_real_data():
    """``calibrate check --relevant`` on the data the H100 profile was fitted on gives the
    in-sample errors stored in the profile (same code path)."""
    if not TRACES.is_dir():
        pytest.skip("../shared/traces not present")
    from rlsim.calibration import check, read_traces

    hw = load_profile("h100_sxm")
    res = check(hw, read_traces(TRACES / "aiconfigurator" / "h100_sxm"), relevant=True)
    for key in ("gemm:bf16", "gemm:fp8", "gemm:fp8_block", "moe:bf16", "moe:fp8_block", "generation_attention:bf16",
                "context_attention:bf16", "nccl_all_reduce", "custom_all_reduce", "generation_attention:fp8",
                "context_attention:fp8", "moe:mxfp4", "moe:int4"):
        stored = hw.calibration.errors[key]
        got = res["keys"][key]
        assert got["n"] == stored["rows"]
        assert got["median_abs_pct_err"] == pytest.approx(100 * stored["median_ape"], abs=0.1)
        assert got["p90_abs_pct_err"] == pytest.approx(100 * stored["p90_ape"], abs=0.1)


@pytest.mark.parametrize("name", ["h100_sxm", "b200_sxm"])
def test_stored_held_out_error_is_reproduced(name):
    """Re-running the grouped 5-fold fit of one cheap key on the real data gives the held-out
    error stored in the profile (the fit is deterministic)."""
    if not TRACES.is_dir():
        pytest.skip("../shared/traces not present")
    from rlsim.calibration import read_traces, relevant_mask
    from rlsim.calibration.fit import fit_key, key_specs

    hw = load_profile(name)
    df = read_traces(TRACES / "aiconfigurator" / name)
    df = df[relevant_mask(df, hw.collectives.custom_all_reduce.max_bytes)].reset_index(drop=True)
    spec = next(s for s in key_specs(df) if s.key == "custom_all_reduce")
    r = fit_key(hw.model_dump(mode="python"), spec, df)
    stored = hw.calibration.errors["custom_all_reduce"]
    assert r.held_out["median_abs_pct_err"] == pytest.approx(100 * stored["cv_median_ape"], abs=0.05)
    assert r.held_out["p90_abs_pct_err"] == pytest.approx(100 * stored["cv_p90_ape"], abs=0.05)


def test_table_mode_covers_h100_fp8_moe():
    """Table mode over the H100 tables: each fp8 MoE row predicted from its curve without its
    own token count (the fitted model at curve ends) meets the fp8 bound the parametric model
    misses at p90."""
    if not TRACES.is_dir():
        pytest.skip("../shared/traces not present")
    from rlsim.calibration import check, read_traces

    res = check(load_profile("h100_sxm"), read_traces(TRACES / "aiconfigurator" / "h100_sxm"), relevant=True,
                table_mode=True)
    tm = res["table_mode"]["moe:fp8"]
    assert tm["n"] == res["keys"]["moe:fp8"]["n"] and tm["table_rows"] > 0.9 * tm["n"]
    assert tm["median_abs_pct_err"] <= 12.0 and tm["p90_abs_pct_err"] <= 35.0


def test_fit_on_vidur_csv_and_nothing_fittable(tmp_path):
    """A Vidur mlp.csv (fp16 kernels) fits the bf16 GEMM key; a file with nothing fittable is a
    one-line error, not an empty 'calibrated' profile."""
    vidur = TRACES / "vidur"
    if not vidur.is_dir():
        pytest.skip("../shared/traces/vidur not present")
    mlp = vidur / "compute" / "h100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv"
    fitted = tmp_path / "vidur_fit.yaml"
    r = runner.invoke(app, ["calibrate", "fit", "--traces", str(mlp), "--profile", "h100_sxm", "--all-shapes",
                            "--keys", "gemm:bf16", "--folds", "2", "--out", str(fitted)])
    assert r.exit_code == 0, r.output
    errors = load_profile(str(fitted)).calibration.errors["gemm:bf16"]
    assert errors["rows"] == 4176 and errors["cv_median_ape"] < 0.10
    p2p = next((vidur / "network").glob("*/send_recv.csv"))
    out = tmp_path / "never.yaml"
    r = runner.invoke(app, ["calibrate", "fit", "--traces", str(p2p), "--profile", "h100_sxm", "--all-shapes",
                            "--out", str(out)])
    assert r.exit_code == 2
    assert r.output.strip() == "error: no measured rows any key can fit (have: p2p:fp16)"
    assert not out.exists()
