"""Readers: the real aiconfigurator / Vidur schemas (skipped without ../shared/traces) and a
Chrome trace written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlsim.calibration.readers import COLUMNS, detect_format, read_aiconfigurator, read_chrome_trace, read_traces, read_vidur_mlp
from rlsim.errors import CalibrationError

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"


def need_traces() -> Path:
    if not TRACES.is_dir():
        pytest.skip("../shared/traces not present")
    return TRACES


@pytest.fixture(scope="module")
def h100():
    return read_aiconfigurator(need_traces() / "aiconfigurator" / "h100_sxm")


def test_aiconfigurator_tables_tidy(h100):
    assert list(h100.columns) == COLUMNS
    classes = set(h100["op_class"])
    assert {"gemm", "moe", "generation_attention", "context_attention", "nccl_all_reduce", "custom_all_reduce"} <= classes
    assert set(h100.loc[h100.op_class == "gemm", "dtype"]) == {"bf16", "fp8", "fp8_block"}
    assert (h100["measured_s"] > 0).all() and h100["measured_s"].max() < 10.0  # ms -> s
    # fused-MoE kernel names -> rlsim dtypes (W4A16 MXFP4 of gpt-oss, INT4 weight-only Marlin)
    assert set(h100.loc[h100.op_class == "moe", "dtype"]) == {"bf16", "fp8", "fp8_block", "mxfp4", "int4_g32"}
    assert set(h100.loc[h100.op_class == "generation_attention", "window_size"]) == {0, 128, 1024, 8192}


def test_aiconfigurator_units(h100):
    # README: 2-GPU NCCL all-reduce of 268,435,456 half elements takes 1.69 ms (elements, not bytes)
    ar = h100[(h100.op_class == "nccl_all_reduce") & (h100.dtype == "fp16") & (h100.num_gpus == 2)]
    row = ar[ar.nbytes == 2 * 268435456]
    assert len(row) == 1 and row.measured_s.iloc[0] == pytest.approx(1.69e-3, rel=0.05)
    # int8 rows count 1 byte per element
    i8 = h100[(h100.op_class == "nccl_all_reduce") & (h100.dtype == "int8")]
    assert i8.nbytes.min() == 512  # the int8 sweep starts at 512 elements = 512 B
    # generation attention: context = step + 1
    ga = h100[h100.op_class == "generation_attention"]
    assert set(np.log2(ga.seq_len.unique())) <= set(float(x) for x in range(0, 20))
    cu = h100[h100.op_class == "custom_all_reduce"]
    assert set(cu.backend) == {"graph", "eager"}


def test_vidur_mlp():
    f = need_traces() / "vidur" / "compute" / "h100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv"
    df = read_vidur_mlp(f)
    g = df[(df.op_class == "gemm") & (df.moe_tp == 1)]
    qkv = g[g.kernel_source == "attn_pre_proj"]
    assert set(zip(qkv.n, qkv.k)) == {(3 * 4096, 4096)}
    up = g[g.kernel_source == "mlp_up_proj"]
    assert set(zip(up.n, up.k)) == {(2 * 11008, 4096)}
    assert (df.measured_s > 0).all()
    assert detect_format(f) == "vidur"


def test_vidur_network():
    df = read_traces(need_traces() / "vidur" / "network" / "h100_dgx")
    ar = df[df.op_class == "nccl_all_reduce"]
    assert len(ar) > 100 and set(ar.num_gpus) <= {1, 2, 4, 8}
    assert (ar.nbytes % 2 == 0).all()  # fp16 elements -> bytes


def _trace(tmp_path: Path) -> Path:
    ev = [
        {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "ts": 0, "dur": 50, "args": {"External id": 7}},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 1, "dur": 40,
         "args": {"External id": 7, "Input Dims": [[64, 4096], [4096, 6144]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}},
        {"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "ts": 10, "dur": 21.5,
         "args": {"External id": 7, "grid": [48, 1, 1]}},
        {"ph": "X", "cat": "kernel", "name": "void vllm::rms_norm_kernel<c10::BFloat16>", "ts": 40, "dur": 3.0, "args": {}},
        {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "ts": 50, "dur": 12.0,
         "args": {"In msg nelems": 262144, "dtype": "BFloat16", "Group size": 4}},
        {"ph": "X", "cat": "kernel", "name": "void vllm::cross_device_reduce_1stage<__nv_bfloat16, 4>", "ts": 70, "dur": 6.0, "args": {}},
        {"ph": "X", "cat": "kernel", "name": "flash_fwd_splitkv_kernel", "ts": 80, "dur": 30.0, "args": {}},
        {"ph": "X", "cat": "kernel", "name": "fused_moe_kernel", "ts": 120, "dur": 80.0, "args": {}},
        {"ph": "X", "cat": "kernel", "name": "some_unknown_kernel", "ts": 210, "dur": 1.0, "args": {}},
        {"ph": "i", "cat": "kernel", "name": "instant", "ts": 0},
    ]
    p = tmp_path / "trace.json"
    p.write_text(json.dumps({"traceEvents": ev}))
    return p


def test_chrome_trace(tmp_path):
    df = read_chrome_trace(_trace(tmp_path))
    assert list(df.op_class) == ["gemm", "elementwise", "nccl_all_reduce", "custom_all_reduce",
                                 "generation_attention", "moe", "other"]
    g = df.iloc[0]
    assert (g.m, g.n, g.k, g["dtype"]) == (64, 6144, 4096, "bf16")
    assert g.measured_s == pytest.approx(21.5e-6)
    nc = df.iloc[2]
    assert nc["nbytes"] == 262144 * 2 and nc["num_gpus"] == 4
    assert detect_format(tmp_path) == "chrome"
    assert len(read_traces(tmp_path)) == 7


def test_chrome_trace_custom_patterns(tmp_path):
    pats = tmp_path / "pats.json"
    pats.write_text(json.dumps([["some_unknown", "elementwise"], ["xmma", "gemm"]]))
    df = read_chrome_trace(_trace(tmp_path), pats)
    assert df.op_class.iloc[-1] == "elementwise"
    assert (df.op_class == "other").sum() == 5  # only the two patterns given


def test_chrome_trace_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="not a Chrome-trace JSON"):
        read_chrome_trace(bad)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"traceEvents": []}))
    with pytest.raises(CalibrationError, match="no GPU kernel events"):
        read_chrome_trace(empty)
    with pytest.raises(CalibrationError, match="invalid regular expression"):
        read_chrome_trace(_trace(tmp_path), [["(", "gemm"]])
    with pytest.raises(CalibrationError, match="no aiconfigurator tables"):
        detect_format(tmp_path / "nope") if False else detect_format(_mkdir(tmp_path / "emptydir"))


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p
