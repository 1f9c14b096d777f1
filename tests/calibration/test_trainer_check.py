"""The trainer's per-operation model reproduces the kernel tables it is built from (skips without
../shared): its GEMM and NCCL calls on the measured rows of its own shapes are within the
calibrated error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlsim.calibration import read_traces
from rlsim.calibration.trainer_check import trainer_gemm_shapes, trainer_kernel_check
from rlsim.hardware import load_profile
from rlsim.models import load_model
from rlsim.training import TrainingConfig, validate_layout

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces" / "aiconfigurator"


def test_wgrad_and_dgrad_shapes():
    q8 = load_model("Qwen3-8B")
    lay = validate_layout(q8, TrainingConfig(tensor_parallel_size=2), 8, load_profile("gb200"), None)
    s = trainer_gemm_shapes(q8, lay, 8192.0)
    assert (3072, 4096) in s and (4096, 3072) in s and (3072, 8192) in s  # qkv fwd, dgrad, wgrad (TP 2)


@pytest.mark.skipif(not TRACES.is_dir(), reason="../shared/traces (measured kernel tables) not present")
@pytest.mark.parametrize("gpu", ["gb200", "h100_sxm"])
def test_trainer_kernels_match_the_measured_tables(gpu):
    hw = load_profile(gpu)
    df = read_traces(TRACES / gpu)
    q8 = load_model("Qwen3-8B")
    lay = validate_layout(q8, TrainingConfig(tensor_parallel_size=2), 8, hw, None)
    r = trainer_kernel_check(hw, df, q8, lay, 16384.0)
    assert r["gemm:bf16"]["n"] > 200 and r["gemm:bf16"]["median_abs_pct_err"] < 8.0
    for op in ("nccl_all_gather", "nccl_reduce_scatter"):
        assert r[op]["n"] >= 20 and r[op]["median_abs_pct_err"] < 8.0
    if gpu == "gb200":
        m = load_model("Qwen3-235B-A22B")
        lay = validate_layout(m, TrainingConfig(tensor_parallel_size=4, expert_parallel_size=16,
                                                expert_tensor_parallel_size=1), 64, hw, None)
        moe = trainer_kernel_check(hw, df, m, lay, 16384.0)["moe:bf16 (grouped GEMM vs fused MoE)"]
        assert moe["n"] >= 50  # a cross-check of two kernels, reported, not a fit
