"""Roofline op timing against hand-computed values (parameters read from the shipped profiles,
formulas written out by hand), vectorisation, and collective tiers.

The shipped profiles are calibrated (``rlsim calibrate fit``), so the fixtures pin the GEMM bf16
and collective parameters to the reference-table values (A3.1-A3.4) these hand computations
quote; the calibrated extensions (two NCCL protocols, two-shot custom all-reduce) are tested at
the end of the file."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.hardware import (
    collective_time_s,
    decode_attention_time_s,
    elementwise_time_s,
    expected_experts_touched,
    gemm_time_s,
    load_profile,
    moe_time_s,
    p2p_time_s,
    prefill_attention_time_s,
)
from rlsim.hardware.ops import custom_all_reduce_time_s, moe_padded_rows
from rlsim.hardware.profile import by_group_size

US = 1e-6


_AB = lambda a, e: {"alpha_us": a, "busbw_eff": e}  # noqa: E731


def _car(alpha, per_peer, one_eff, two_eff, eager_floor, max_gpus):
    """Custom all-reduce parameters from reference-table figures (A3.4); no pass limit."""
    return {"alpha_us": alpha, "barrier_per_peer_us": per_peer, "oneshot_link_eff": one_eff, "oneshot_iter_us": 0.0,
            "twoshot_extra_us": 0.0, "twoshot_link_eff": two_eff, "eager_floor_us": eager_floor, "eager_extra_us": 0.0,
            "max_bytes": 8388608, "max_gpus": max_gpus}

#: Reference-table (pre-calibration) values, hardware_and_models.md A3.1-A3.4.
_REFERENCE = {
    "h100_sxm": {
        "gemm_bf16": {"compute_eff": 0.80, "mem_eff": 0.92, "latency_us": 4},
        "nccl": {"all_reduce": _AB({2: 6.2, 4: 9.4, 8: 15.5}, {2: 0.71, 4: 0.78, 8: 0.99}),
                 "all_gather": _AB(8.5, 0.74), "reduce_scatter": _AB(8.5, 0.74), "alltoall": _AB(8.5, 0.70)},
        "custom_all_reduce": _car(4.3, 0.06, 0.59, 0.62, 20.6, max_gpus=8),
        "scale_out": _AB(20, 0.94),
    },
    "gb200": {
        "nccl": {"all_reduce": _AB({2: 9.5, 4: 15.75}, 0.70), "all_gather": _AB(13.5, 0.68),
                 "reduce_scatter": _AB(13.5, 0.68), "alltoall": _AB(13.5, 0.63)},
        "custom_all_reduce": _car(7.4, 0.0, 0.44, 0.44, 21.5, max_gpus=4),
        "scale_out": _AB(20, 0.94),
    },
}


def _reference(name: str):
    from rlsim.hardware.profile import HardwareProfile

    d = load_profile(name).model_dump()
    ref = _REFERENCE[name]
    if "gemm_bf16" in ref:
        d["efficiency"]["gemm"]["bf16"] = ref["gemm_bf16"]
    d["collectives"]["nccl"] = ref["nccl"]
    d["collectives"]["custom_all_reduce"] = ref["custom_all_reduce"]
    d["collectives"]["scale_out"] = ref["scale_out"]
    return HardwareProfile.model_validate(d)


@pytest.fixture(scope="module")
def h100():
    return _reference("h100_sxm")


@pytest.fixture(scope="module")
def gb200():
    return _reference("gb200")


# --------------------------------------------------------------------------- GEMM


def test_gemm_bs1_is_weight_stream_bound(h100):
    e = h100.efficiency.gemm.bf16
    m, n, k = 1, 4096, 4096
    nbytes = (m * k + m * n) * 2 + n * k * 2
    expected = nbytes / (3.35e12 * e.mem_eff) + e.latency_us * US
    t = gemm_time_s(h100, m, n, k, "bf16")
    assert isinstance(t, float)
    assert t == pytest.approx(expected, rel=1e-12)


def test_gemm_8192_cubed_is_compute_bound(h100):
    e = h100.efficiency.gemm.bf16
    m = n = k = 8192
    compute = 2 * m * n * k / (989e12 * e.compute_eff)
    memory = ((m * k + m * n) * 2 + n * k * 2) / (3.35e12 * e.mem_eff)
    assert compute > 10 * memory
    assert gemm_time_s(h100, m, n, k, "bf16") == pytest.approx(compute + e.latency_us * US, rel=1e-12)


def _gemm_by_hand(e, peak, m, n, k, weight_bytes):
    """The documented GEMM formula, term by term, for one shape."""
    m_pad = m if m <= 128 else -(-m // 128) * 128
    c = 2 * n * k * m_pad / (peak * e.compute_eff)
    mem = ((m * k + m * n) * 2 + n * k * weight_bytes) / (3.35e12 * e.mem_eff)
    quant = m * (e.act_quant_row_ns + e.act_quant_pass_ns * -(-k // 2048)) * 1e-9
    return e.latency_us * US + k * e.k_loop_ns * 1e-9 + max(c, mem) + e.overlap_loss * min(c, mem) + quant


def test_gemm_fp8_weights_halve_the_weight_bytes(h100):
    e = h100.efficiency.gemm.fp8_block
    n = k = 8192
    block = 1 + 4 / (128 * 128)  # e4m3 weights + one fp32 scale per 128 x 128 block
    assert gemm_time_s(h100, 1, n, k, "fp8_block") == pytest.approx(_gemm_by_hand(e, 1979e12, 1, n, k, block), rel=1e-12)
    # same parameters with 2-byte weights: the weight stream (the bulk of a batch-1 GEMM) doubles
    bf16_like = _gemm_by_hand(e, 1979e12, 1, n, k, 2)
    assert bf16_like > 1.6 * gemm_time_s(h100, 1, n, k, "fp8_block")


def test_gemm_calibrated_terms_by_hand():
    """The calibrated profile's per-tensor fp8 GEMM: 128-row tiles above m = 128, the k loop,
    partial overlap, and the activation-quantisation pass per row and per 2,048 elements."""
    hw = load_profile("h100_sxm")
    e = hw.efficiency.gemm.fp8
    assert e.act_quant_row_ns > 0 and e.overlap_loss > 0 and e.k_loop_ns > 0
    for m, n, k in ((1, 4096, 4096), (129, 12288, 4096), (3000, 128, 2048), (16384, 51200, 5120)):
        assert gemm_time_s(hw, m, n, k, "fp8") == pytest.approx(_gemm_by_hand(e, 1979e12, m, n, k, 1), rel=1e-12)
    # m = 129 computes a 256-row tile: much closer to m = 256 than to m = 128 when compute-bound
    t128, t129, t256 = (gemm_time_s(hw, m, 16384, 16384, "bf16") for m in (128, 129, 256))
    assert t129 - t128 > 0.8 * (t256 - t128)


def test_gemm_zero_tokens_is_free(h100):
    assert gemm_time_s(h100, 0, 4096, 4096, "bf16") == 0.0
    assert gemm_time_s(h100, 16, 0, 4096, "bf16") == 0.0
    assert np.isnan(gemm_time_s(h100, float("nan"), 4096, 4096, "bf16"))  # a bad shape is not silently free
    assert np.isnan(moe_time_s(h100, float("nan"), 128, 8.0, 1536, 2048, 2048, "bf16", 8))


def test_gemm_vectorised_equals_scalar(h100):
    ms = np.array([0, 1, 7, 64, 300, 4096, 16384])
    ns = np.array([[1024], [8192]])
    vec = gemm_time_s(h100, ms, ns, 4096, "bf16")
    assert vec.shape == (2, len(ms))
    for i, n in enumerate(ns[:, 0]):
        for j, m in enumerate(ms):
            assert vec[i, j] == gemm_time_s(h100, int(m), int(n), 4096, "bf16")
    assert np.all(np.diff(vec[:, 1:], axis=1) >= 0)  # monotone in m


def test_gemm_unknown_dtype_is_config_error(h100):
    from rlsim.errors import ConfigError

    with pytest.raises(ConfigError, match="int8"):
        gemm_time_s(h100, 1, 1, 1, "int8")


# --------------------------------------------------------------------------- MoE


def test_expected_experts_touched_limits():
    assert expected_experts_touched(1, 128, 8) == pytest.approx(8.0)
    assert expected_experts_touched(0, 128, 8) == 0.0
    assert expected_experts_touched(1e6, 128, 8) == pytest.approx(128.0)
    assert expected_experts_touched(5, 8, 8) == pytest.approx(8.0)  # k == E
    assert expected_experts_touched(3, 128, 8) == pytest.approx(128 * (1 - (1 - 8 / 128) ** 3))
    t = np.array([0, 1, 2, 8, 64, 512, 4096])
    vec = expected_experts_touched(t, 128, 8)
    assert np.all(np.diff(vec) > 0)
    assert vec == pytest.approx([expected_experts_touched(int(x), 128, 8) for x in t])


def test_expected_experts_touched_skew():
    assert expected_experts_touched(1, 128, 8, skew=0.5) == pytest.approx(8.0)
    assert expected_experts_touched(32, 128, 8, skew=0.5) < expected_experts_touched(32, 128, 8)
    assert expected_experts_touched(1e6, 128, 8, skew=0.5) == pytest.approx(64.0)
    with pytest.raises(ValueError):
        expected_experts_touched(1, 128, 8, skew=1.0)


def test_moe_padded_rows():
    assert moe_padded_rows(32, 30, 64) == 30 * 64  # 2 experts get 2 rows, 28 get 1: one tile each
    assert moe_padded_rows(1000, 8, 64) == 8 * 128  # 125 rows each -> 2 tiles each
    assert moe_padded_rows(1030, 8, 64) == 6 * 192 + 2 * 128  # 6 experts get 129 rows, 2 get 128
    assert moe_padded_rows(0, 0, 64) == 0.0


def test_moe_hand_computed(h100):
    e = h100.efficiency.moe.bf16
    tokens, topk, touched, hidden, inter = 4, 8, 30.0, 2048, 768
    n_gate_up, k_inter = 2 * inter, inter
    rows = tokens * topk
    w = hidden * n_gate_up + k_inter * hidden
    compute = 2 * w * 30 * e.block_m_tokens / (989e12 * e.compute_eff)  # 30 experts, one padded tile each
    memory = (touched * w * 2 + rows * (hidden + n_gate_up + k_inter + hidden) * 2) / (3.35e12 * e.mem_eff)
    expected = max(compute, memory) + e.latency_us * US + e.per_routed_token_us * US * rows + e.per_expert_us * US * touched
    t = moe_time_s(h100, tokens, 128, touched, n_gate_up, hidden, hidden, "bf16", topk)
    assert t == pytest.approx(expected, rel=1e-12)
    # weight-only 4-bit experts: their own entry, bf16 peak, 4 bits + a bf16 scale per 32 weights
    e4 = h100.efficiency.moe.int4
    compute4 = 2 * w * 30 * e4.block_m_tokens / (989e12 * e4.compute_eff)
    memory4 = (touched * w * 0.5625 + rows * (hidden + n_gate_up + k_inter + hidden) * 2) / (3.35e12 * e4.mem_eff)
    expected4 = (max(compute4, memory4) + e4.latency_us * US + e4.per_routed_token_us * US * rows
                 + e4.per_expert_us * US * touched)
    assert moe_time_s(h100, tokens, 128, touched, n_gate_up, hidden, hidden, "int4_g32", topk) == pytest.approx(expected4, rel=1e-12)
    # all-gather EP dispatch: the routing overhead walks every routed row of the batch
    t_ep = moe_time_s(h100, tokens, 128, touched, n_gate_up, hidden, hidden, "bf16", topk, overhead_rows=8 * rows)
    assert t_ep - t == pytest.approx(e.per_routed_token_us * US * 7 * rows)


def test_moe_zero_tokens_and_vectorised(h100):
    assert moe_time_s(h100, 0, 128, 0, 1536, 2048, 2048, "bf16", 8) == 0.0
    toks = np.array([0, 1, 16, 256, 8192])
    touched = expected_experts_touched(toks, 128, 8)
    vec = moe_time_s(h100, toks, 128, touched, 1536, 2048, 2048, "fp8_block", 8)
    for i, t in enumerate(toks):
        assert vec[i] == moe_time_s(h100, int(t), 128, float(touched[i]), 1536, 2048, 2048, "fp8_block", 8)
    assert np.all(np.diff(vec) > 0)


# --------------------------------------------------------------------------- attention / elementwise


def test_decode_attention_hand_computed(h100):
    da = h100.efficiency.decode_attention
    kv, seqs = 2e9, 64
    expected = kv / (3.35e12 * da.mem_eff) + da.latency_us * US
    assert decode_attention_time_s(h100, kv, seqs) == pytest.approx(expected, rel=1e-12)
    assert decode_attention_time_s(h100, 0, 0) == 0.0
    # a huge multi-token query becomes compute-bound (prefill compute efficiency)
    fl = 1e15
    expected_c = fl / (989e12 * h100.efficiency.prefill_attention.compute_eff)
    assert decode_attention_time_s(h100, kv, seqs, fl) == pytest.approx(expected_c + da.latency_us * US, rel=1e-12)
    # many short sequences: one CTA per (sequence, KV head) bounds the time from below
    cta = da.cta_us * US * 2048 * 8 / 132
    assert decode_attention_time_s(h100, 1e6, 2048, 0.0, 8) == pytest.approx(cta + da.latency_us * US, rel=1e-12)
    kvs = np.array([0.0, 1e6, 1e9])
    vec = decode_attention_time_s(h100, kvs, np.array([0, 1, 32]))
    assert vec == pytest.approx([decode_attention_time_s(h100, float(k), s) for k, s in zip(kvs, [0, 1, 32])])


def _prefill(hw, b, s, h, kh, d=128):
    return prefill_attention_time_s(hw, b * s, b * s * (s + 1) / 2 * 4 * h * d, b * -(-s // 128), s, h, kh, 4 * d)


def test_prefill_attention_hand_computed(h100):
    pa = h100.efficiency.prefill_attention
    b, s, h, kh = 4, 8192, 32, 8
    fl = b * s * (s + 1) / 2 * 4 * h * 128
    tiles = b * h * 64
    work = (pa.tile_us * tiles + (pa.tok_head_ns * h + pa.tok_kvhead_ns * kh) * 1e-3 * b * s) * US / 132 + fl / (
        989e12 * pa.compute_eff)
    crit = pa.tile_us * US + 128 * s * 4 * 128 / (989e12 / 132 * pa.crit_eff)
    assert work > crit
    assert _prefill(h100, b, s, h, kh) == pytest.approx(work + pa.latency_us * US, rel=1e-12)
    # one long sequence with one head: the last query tile on one SM is the critical path
    assert _prefill(h100, 1, 16384, 1, 1) == pytest.approx(
        pa.latency_us * US + pa.tile_us * US + 128 * 16384 * 512 / (989e12 / 132 * pa.crit_eff), rel=1e-12)
    assert prefill_attention_time_s(h100, 0, 0.0, 0, 0, 32, 8, 512) == 0.0
    vec = prefill_attention_time_s(h100, np.array([0, b * s]), np.array([0.0, fl]), np.array([0, b * 64]), s, h, kh, 512)
    assert vec == pytest.approx([0.0, _prefill(h100, b, s, h, kh)])


def test_elementwise_hand_computed(h100):
    ew = h100.efficiency.elementwise
    assert elementwise_time_s(h100, 1e8) == pytest.approx(1e8 / (3.35e12 * ew.mem_eff) + ew.latency_us * US, rel=1e-12)
    assert elementwise_time_s(h100, 0) == 0.0
    vec = elementwise_time_s(h100, np.array([0, 1e3, 1e8]))
    assert vec == pytest.approx([elementwise_time_s(h100, x) for x in (0, 1e3, 1e8)])


# --------------------------------------------------------------------------- collectives


def _nccl_ab(hw, op, nbytes, n):
    """(alpha, bandwidth term) of an in-domain NCCL collective, by hand."""
    ab = getattr(hw.collectives.nccl, op)
    factor = 2 * (n - 1) / n if op == "all_reduce" else (n - 1) / n
    eff = by_group_size(ab.busbw_eff, n, clamp=True)
    return by_group_size(ab.alpha_us, n) * US, nbytes * factor / (hw.nvlink_bw_bytes_per_s * eff)


def _nccl(hw, op, nbytes, n):
    return sum(_nccl_ab(hw, op, nbytes, n))


def test_single_gpu_collectives_are_free(h100):
    for op in ("all_reduce", "all_gather", "reduce_scatter", "alltoall"):
        assert collective_time_s(h100, op, 1e9, 1) == 0.0
    assert collective_time_s(h100, "all_reduce", 0, 8) == 0.0


def test_nccl_factors_2_vs_8_gpus(h100):
    big = 512 * 2**20
    ar = h100.collectives.nccl.all_reduce
    expected = by_group_size(ar.alpha_us, 2) * US + big * 2 * 1 / 2 / (450e9 * by_group_size(ar.busbw_eff, 2))
    assert collective_time_s(h100, "all_reduce", big, 2) == pytest.approx(expected, rel=1e-12)
    # the reference map's 8-GPU efficiency 0.99 (A3.3's 445 GB/s at 8 GPUs is NVLS, not ring) would make
    # 8 GPUs faster than 4: the ring model keeps the 4-GPU time (monotone in the group size) ...
    t4, t8 = (collective_time_s(h100, "all_reduce", big, n) for n in (4, 8))
    assert t8 == pytest.approx(t4, rel=1e-12)
    # ... and the 8-GPU gain is NVLS: bytes / (link * algbw_eff), the same at every group size
    d = h100.model_dump()
    d["collectives"]["nccl"]["all_reduce"].update(nvls_alpha_us=15.5, nvls_algbw_eff=445 / 1.75 / 450)
    from rlsim.hardware.profile import HardwareProfile

    nvls = HardwareProfile.model_validate(d)
    t8 = collective_time_s(nvls, "all_reduce", big, 8)
    assert (t8 - 15.5e-6) == pytest.approx(big * 1.75 / 445e9, rel=1e-9)
    assert collective_time_s(nvls, "all_reduce", big, 4) == pytest.approx(t8, rel=1e-12)  # NVLS beats the 4-GPU ring
    # all-gather uses (n-1)/n: same bytes on 2 GPUs move half of all-reduce's
    ag = h100.collectives.nccl.all_gather
    assert collective_time_s(h100, "all_gather", big, 2) == pytest.approx(
        ag.alpha_us * US + big * 0.5 / (450e9 * ag.busbw_eff), rel=1e-12
    )


def _one_shot(car, b, n, bw=450e9):
    return (car.alpha_us + car.barrier_per_peer_us * (n - 1)) * US + (n - 1) * b / (bw * car.oneshot_link_eff)


def test_custom_all_reduce_switches_to_nccl_above_max_bytes(h100):
    car = h100.collectives.custom_all_reduce
    mb = car.max_bytes
    assert collective_time_s(h100, "all_reduce", mb, 2) == pytest.approx(_one_shot(car, mb, 2), rel=1e-12)
    for n in (2, 4, 8):
        assert collective_time_s(h100, "all_reduce", mb + 1, n) == pytest.approx(_nccl(h100, "all_reduce", mb + 1, n), rel=1e-12)
    vec = collective_time_s(h100, "all_reduce", np.array([mb, mb + 1]), 8)
    assert vec == pytest.approx([collective_time_s(h100, "all_reduce", mb, 8), collective_time_s(h100, "all_reduce", mb + 1, 8)])


def test_custom_all_reduce_one_and_two_shot_by_vllms_rule():
    hw = load_profile("h100_sxm")
    car = hw.collectives.custom_all_reduce
    # one-shot reads all n-1 peers' buffers, in passes of 36 x 512 x 16 B
    b = 128 * 1024
    one = (car.alpha_us + car.barrier_per_peer_us * 7) * US + max(7 * b / (450e9 * car.oneshot_link_eff),
                                                                  b / 294912 * car.oneshot_iter_us * US)
    assert custom_all_reduce_time_s(hw, b, 8) == pytest.approx(one, rel=1e-12)
    # 8 GPUs switch to two-shot at 256 KiB, 4 GPUs at 512 KiB, 2 GPUs never
    b = 256 * 1024
    two = (car.alpha_us + car.barrier_per_peer_us * 7 + car.twoshot_extra_us) * US + 1.75 * b / (450e9 * car.twoshot_link_eff)
    assert custom_all_reduce_time_s(hw, b, 8) == pytest.approx(two, rel=1e-12)
    assert custom_all_reduce_time_s(hw, b, 4) == pytest.approx(
        (car.alpha_us + car.barrier_per_peer_us * 3) * US + max(3 * b / (450e9 * car.oneshot_link_eff),
                                                               b / 294912 * car.oneshot_iter_us * US), rel=1e-12)
    assert custom_all_reduce_time_s(hw, 0.0, 8) == 0.0 and custom_all_reduce_time_s(hw, 1e6, 1) == 0.0


def test_eager_vs_cuda_graph_custom_all_reduce(h100):
    small = 64 * 1024
    graph = collective_time_s(h100, "all_reduce", small, 8)
    diff = collective_time_s(h100, "all_reduce", small, 8, cuda_graph=False) - graph
    assert diff == pytest.approx(h100.collectives.custom_all_reduce.eager_floor_us * US - graph, rel=1e-9)
    assert 14e-6 < diff < 20e-6  # A3.4: CUDA graphs remove ~15-20 us per collective
    # NCCL-sized messages do not depend on the mode
    assert collective_time_s(h100, "all_reduce", 1e9, 8, cuda_graph=False) == collective_time_s(h100, "all_reduce", 1e9, 8)
    # calibrated: eager copies the input (+2 b / hbm_bw) and two-shot has a higher floor at 8 GPUs
    hw = load_profile("h100_sxm")
    car = hw.collectives.custom_all_reduce
    b = 4 * 2**20
    expected = max(max(car.eager_floor_us, 7 * car.eager_twoshot_floor_per_peer_us) * US,
                   custom_all_reduce_time_s(hw, b, 8) + car.eager_extra_us * US + 2 * b / 3.35e12)
    assert custom_all_reduce_time_s(hw, b, 8, cuda_graph=False) == pytest.approx(expected, rel=1e-12)


def test_gb200_custom_all_reduce_only_inside_a_tray(gb200):
    assert collective_time_s(gb200, "all_reduce", 1024, 4) == pytest.approx(7.4e-6 + 3 * 1024 / (900e9 * 0.44), rel=1e-12)
    # 8 GPUs span two trays: NCCL over NVLink, extrapolated physically beyond the measured 4:
    # one more step latency per extra ring step, the 4-GPU link efficiency held; no scale-out
    step = gb200.collectives.nccl_step_us
    alpha8 = 15.75 + step * (2 * 7 - 2 * 3)
    assert collective_time_s(gb200, "all_reduce", 1024, 8) == pytest.approx(alpha8 * US + 1024 * 1.75 / (900e9 * 0.70), rel=1e-12)
    assert gb200.collectives_extrapolated(8)
    assert collective_time_s(gb200, "all_reduce", 1e9, 72) > collective_time_s(gb200, "all_reduce", 1e9, 8)


def test_beyond_nvlink_domain_is_hierarchical_and_pipelined(h100):
    b, n, g = 256 * 2**20, 32, 8
    r = n / g
    so = h100.collectives.scale_out
    rs_a, rs_b = _nccl_ab(h100, "reduce_scatter", b, g)
    ag_a, ag_b = _nccl_ab(h100, "all_gather", b, g)
    so_b = (b / g) * 2 * (r - 1) / r / (50e9 * so.busbw_eff)
    # the in-node reduce-scatter and all-gather share NVLink: their bandwidth times add; the NIC stage overlaps
    expected = rs_a + so.alpha_us * US + ag_a + max(rs_b + ag_b, so_b)
    assert collective_time_s(h100, "all_reduce", b, n) == pytest.approx(expected, rel=1e-12)
    # multi-node ring busbw ~ node NIC bandwidth (A3.5: 8 x 46-48 GB/s = 370-385 GB/s)
    t = collective_time_s(h100, "all_reduce", 512 * 2**20, 256)
    busbw = 512 * 2**20 * 2 * 255 / 256 / t
    assert 350e9 < busbw < 385e9
    a2a_a, a2a_b = _nccl_ab(h100, "alltoall", b * g / n, g)
    expected_a2a = so.alpha_us * US + a2a_a + max(b * (n - g) / n / (50e9 * so.busbw_eff), a2a_b)
    assert collective_time_s(h100, "alltoall", b, n) == pytest.approx(expected_a2a, rel=1e-12)
    for op in ("all_gather", "reduce_scatter"):
        assert collective_time_s(h100, op, b, n) > collective_time_s(h100, op, b, g)


def test_collective_vectorised_and_unknown_op(h100):
    sizes = np.array([0, 1e3, 1e6, 1e7, 1e9])
    for op in ("all_reduce", "all_gather", "reduce_scatter", "alltoall"):
        for n in (2, 8, 16):
            vec = collective_time_s(h100, op, sizes, n)
            assert vec == pytest.approx([collective_time_s(h100, op, float(s), n) for s in sizes])
    with pytest.raises(ValueError, match="broadcast"):
        collective_time_s(h100, "broadcast", 1e6, 8)


def test_p2p(h100):
    ag = h100.collectives.nccl.all_gather
    assert p2p_time_s(h100, 1e9) == pytest.approx(10e-6 + 1e9 / (450e9 * ag.busbw_eff), rel=1e-12)
    assert p2p_time_s(h100, 1e9, same_domain=False) > p2p_time_s(h100, 1e9)
    assert p2p_time_s(h100, 0) == 0.0


def test_p2p_takes_the_faster_nccl_protocol_of_the_calibrated_profile():
    hw = load_profile("h100_sxm")  # fitted: LL {2: 0.2145}, Simple {2: 0.5436} (+ its larger latency)
    ag, lat, bw = hw.collectives.nccl.all_gather, 10e-6, hw.nvlink_bw_bytes_per_s
    assert hw.topology.nvlink_latency_us == 10.0
    small, large = 1e3, 27_295_744.0  # a control message; one request's KV (the tail-migration hand case)
    ll = lambda b: b / (bw * ag.busbw_eff[2])  # noqa: E731
    simple = lambda b: (ag.large_alpha_us[2] - ag.alpha_us[2]) * 1e-6 + b / (bw * ag.large_busbw_eff[2])  # noqa: E731
    assert ll(small) < simple(small) and simple(large) < ll(large)
    assert p2p_time_s(hw, small) == pytest.approx(lat + ll(small), rel=1e-12)
    assert p2p_time_s(hw, large) == pytest.approx(lat + simple(large), rel=1e-12)


# --------------------------------------------------------------------------- calibrated extensions


def test_two_nccl_protocols_take_the_faster(h100):
    d = h100.model_dump()
    d["collectives"]["nccl"]["all_reduce"].update(large_alpha_us={2: 30.0}, large_busbw_eff={2: 0.95})
    from rlsim.hardware.profile import HardwareProfile

    hw = HardwareProfile.model_validate(d)
    small, big = 4096.0, 512 * 2**20
    ll = 6.2e-6 + small * 1.0 / (450e9 * 0.71)
    assert collective_time_s(hw, "all_reduce", small, 2, backend="nccl") == pytest.approx(ll, rel=1e-12)
    simple = 30e-6 + big * 1.0 / (450e9 * 0.95)
    assert collective_time_s(hw, "all_reduce", big, 2, backend="nccl") == pytest.approx(simple, rel=1e-12)


def test_custom_all_reduce_backends(h100):
    # backend="custom" ignores max_bytes, backend="nccl" never uses the custom kernel
    big = 64 * 2**20
    assert collective_time_s(h100, "all_reduce", big, 8, backend="custom") == pytest.approx(
        custom_all_reduce_time_s(h100, big, 8), rel=1e-12)
    assert collective_time_s(h100, "all_reduce", 1024, 8, backend="nccl") == pytest.approx(_nccl(h100, "all_reduce", 1024, 8))
    with pytest.raises(ValueError, match="backend"):
        collective_time_s(h100, "all_reduce", 1024, 8, backend="nvls")


def test_prefill_short_chunks_pay_whole_tiles():
    """A 16-token chunk occupies a 128-row query tile: per tile, it costs what a 128-token
    chunk's tile costs (the per-token terms aside)."""
    from rlsim.hardware.profile import HardwareProfile

    d = load_profile("h100_sxm").model_dump()
    d["efficiency"]["prefill_attention"].update(tile_us=2.0, tok_head_ns=0.0, tok_kvhead_ns=0.0, latency_us=0.0,
                                                compute_eff=1.0, crit_eff=1.0)
    hw = HardwareProfile.model_validate(d)
    tiny = 1e-9  # FLOPs negligible next to the tile cost
    t16 = prefill_attention_time_s(hw, 1024 * 16, tiny, 1024, 16, 32, 8, 512)
    t128 = prefill_attention_time_s(hw, 1024 * 128, tiny, 1024, 128, 32, 8, 512)
    assert t16 == pytest.approx(t128, rel=1e-3) and t16 == pytest.approx(2e-6 * 1024 * 32 / 132, rel=1e-3)
