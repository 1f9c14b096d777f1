"""Forward-pass cost: hand-computed rooflines and structural properties."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.cost import ForwardModel, PassShape
from rlsim.cost.forward import ELEMENTWISE_PASSES, SAMPLER_PASSES, cudagraph_capture_sizes
from rlsim.hardware import load_profile
from rlsim.models import load_model


@pytest.fixture(scope="module")
def h100():
    return load_profile("h100_sxm")


@pytest.fixture(scope="module")
def qwen8b():
    return load_model("Qwen3-8B")


def _decode(batch: int, ctx_per_seq: float) -> PassShape:
    return PassShape(batch, batch, batch, batch * ctx_per_seq)


def test_batch1_decode_is_weight_bytes_over_effective_bandwidth_plus_fixed_overheads(h100, qwen8b):
    """Qwen3-8B, one sequence, 1k context, bf16, H100: hand roofline within 10 %."""
    fwd = ForwardModel(qwen8b, h100)
    t = fwd.time_s(_decode(1, 1024))
    eff = h100.gemm_eff("bf16")
    bw = h100.hbm_bandwidth_bytes_per_s
    # every linear weight (incl. LM head, not the embedding table) is read once per step
    weight_bytes = sum(w.in_features * w.out_features * w.layers for w in qwen8b.linear_weights()) * 2.0
    n_gemms = sum(w.layers for w in qwen8b.linear_weights())
    k_steps = sum(w.in_features * w.layers for w in qwen8b.linear_weights())  # each GEMM walks its k
    gemm_s = weight_bytes / (bw * eff.mem_eff) + n_gemms * eff.latency_us * 1e-6 + k_steps * eff.k_loop_ns * 1e-9
    kv_bytes = 1024 * 2 * 8 * 128 * 2 * 36  # context x (K,V) x kv heads x head_dim x bf16 x layers
    da = h100.efficiency.decode_attention
    attn_s = kv_bytes / (bw * da.mem_eff) + 36 * da.latency_us * 1e-6
    el = h100.efficiency.elementwise
    hidden = 4096 * 2.0
    elem_s = (36 * ELEMENTWISE_PASSES * hidden + hidden + SAMPLER_PASSES * 151936 * 4.0) / (bw * el.mem_eff) + 38 * el.latency_us * 1e-6
    hand = gemm_s + attn_s + elem_s
    assert t == pytest.approx(hand, rel=0.10)
    # and the step is dominated by reading 15 GB of weights: ~5 ms on an H100
    assert 4.5e-3 < t < 7.5e-3


def test_vectorised_decode_equals_pointwise(h100, qwen8b):
    fwd = ForwardModel(qwen8b, h100)
    ctx = np.array([100.0, 5_000.0, 250_000.0])
    vec = fwd.decode_times_s(37, ctx)
    pointwise = [fwd.time_s(PassShape(37, 37, 37, c)) for c in ctx]
    np.testing.assert_allclose(vec, pointwise, rtol=1e-12)


def test_decode_time_grows_with_context_and_batch(h100, qwen8b):
    fwd = ForwardModel(qwen8b, h100)
    assert fwd.time_s(_decode(64, 8000)) > fwd.time_s(_decode(64, 1000)) > fwd.time_s(_decode(1, 1000))


def test_cuda_graph_padding_and_eager_dispatch_floor(h100, qwen8b):
    assert cudagraph_capture_sizes(32).tolist() == [1, 2, 4, 8, 16, 24, 32]
    graphed = ForwardModel(qwen8b, h100, cuda_graphs=True)
    eager = ForwardModel(qwen8b, h100, cuda_graphs=False)
    assert graphed.padded_tokens(9, decode_only=True) == 16
    assert graphed.padded_tokens(9, decode_only=False) == 9
    assert eager.padded_tokens(9, decode_only=True) == 9
    # eager: the pass waits for its dispatch, 36 dense layers x 260 us (the profile's default)
    dispatch = 36 * h100.engine.eager_layer_us * 1e-6
    t_graph = graphed.time_s(_decode(1, 100))
    assert t_graph < dispatch  # batch 1 of an 8B model is host-bound without graphs
    assert eager.time_s(_decode(1, 100)) == pytest.approx(dispatch, rel=1e-12)
    assert eager.components(_decode(1, 100))["launch"] == pytest.approx(dispatch - t_graph, rel=1e-9)
    # a GPU-bound eager pass hides its dispatch
    big = eager.components(_decode(512, 8000))
    assert big["launch"] == 0.0 and sum(big.values()) > dispatch


def test_a_pass_above_the_largest_captured_size_runs_without_a_graph(h100, qwen8b):
    fwd = ForwardModel(qwen8b, h100, max_capture_size=32, eager_dispatch_s=(1e-3, 0.0))
    assert fwd.graphed(32) and not fwd.graphed(33)
    assert fwd.padded_tokens(33, decode_only=True) == 33  # no graph to pad to
    small, large = fwd.components(_decode(32, 100)), fwd.components(_decode(33, 100))
    assert small["launch"] == 0.0  # full decode graph
    gpu = sum(v for k, v in large.items() if k != "launch")
    assert sum(large.values()) == pytest.approx(max(gpu, 36e-3), rel=1e-12)
    # the vectorised decode path applies the same floor
    times = fwd.decode_times_s(33, np.array([33 * 100.0, 33 * 50000.0]))  # total contexts
    np.testing.assert_allclose(times, [fwd.time_s(_decode(33, 100)), fwd.time_s(_decode(33, 50000))], rtol=1e-12)
    assert times[0] == pytest.approx(36e-3) and times[1] > 36e-3  # host-bound, then GPU-bound
    # a mixed pass: piecewise launches within the captured sizes, the dispatch floor above them
    mixed = lambda T: PassShape(T, 1, 0, 0.0, prefill_seqs=1, prefill_pairs=T * (T + 1) / 2.0,  # noqa: E731
                                prefill_kv_tokens=T, prefill_tokens=T)
    assert fwd.components(mixed(32))["launch"] == pytest.approx(fwd.launch_overhead_s(False))
    m = fwd.components(mixed(40))
    assert sum(m.values()) == pytest.approx(max(36e-3, sum(v for k, v in m.items() if k != "launch")), rel=1e-12)


def test_moe_layers_add_their_dispatch(h100):
    arch = load_model("Qwen3-30B-A3B")
    fwd = ForwardModel(arch, h100, cuda_graphs=False, eager_dispatch_s=(2e-4, 3e-4))
    assert fwd.time_s(_decode(1, 10)) == pytest.approx(arch.num_hidden_layers * 2e-4 + arch.num_moe_layers * 3e-4)


def test_tensor_parallel_splits_weights_but_pays_all_reduces(h100, qwen8b):
    t1 = ForwardModel(qwen8b, h100, tp=1).components(_decode(8, 2000))
    t2 = ForwardModel(qwen8b, h100, tp=2).components(_decode(8, 2000))
    assert t2["linear"] == pytest.approx(t1["linear"] / 2, rel=0.15)
    assert t1["communication"] == 0.0 and t2["communication"] > 0.0
    assert sum(t2.values()) < sum(t1.values())


def test_moe_weight_traffic_follows_distinct_experts_touched(h100):
    """Qwen3-30B-A3B: one token touches 8 of 128 experts; 512 tokens touch nearly all (the
    uniform spread: the profile's skewed-router factors removed)."""
    moe = h100.efficiency.moe
    bf16 = moe.bf16.model_copy(update={"skewed_routing": None})
    h100 = h100.model_copy(update={"efficiency": h100.efficiency.model_copy(update={"moe": moe.model_copy(update={"bf16": bf16})})})
    fwd = ForwardModel(load_model("Qwen3-30B-A3B"), h100)
    fixed = h100.moe_eff("bf16").latency_us * 1e-6 * 48  # per-layer kernel latency, 48 MoE layers
    moe1, moe4, moe512 = (fwd.components(_decode(b, 100))["moe"] - fixed for b in (1, 4, 512))
    # 4 tokens touch ~3.7x the experts of 1 token: memory-bound expert reads scale accordingly
    assert 2.5 < moe4 / moe1 < 4.0
    assert moe512 / moe1 > 8.0


def test_moe_verify_cost_grows_faster_than_dense(h100):
    """4 tokens per sequence at batch 1 (a k=3 verify) vs 1 token: MoE pays far more than dense."""
    dense = ForwardModel(load_model("Qwen3-8B"), h100)
    moe = ForwardModel(load_model("Qwen3-30B-A3B"), h100)
    verify = PassShape(4, 4, 0, 0.0, 1, 4 * (1000 + 2.5), 1004)
    one = _decode(1, 1000)
    assert moe.time_s(verify) / moe.time_s(one) > dense.time_s(verify) / dense.time_s(one) + 0.2


def test_prefill_is_compute_bound_at_long_prompts(h100, qwen8b):
    fwd = ForwardModel(qwen8b, h100)
    T = 8192
    t = fwd.time_s(PassShape(T, 1, 0, 0.0, 1, T * (T + 1) / 2.0, T))
    flops = 2 * T * 6.95e9 + 4 * 32 * 128 * 36 * T * (T + 1) / 2  # linear + causal attention
    ideal = flops / h100.peak_flops("bf16")
    assert ideal < t < 2.5 * ideal


@pytest.mark.parametrize("kv_dtype", ["bf16", "fp8"])
def test_decode_only_pass_attention_is_the_ops_attention_bit_for_bit(h100, qwen8b, kv_dtype):
    """components() prices a decode-only pass's attention in Python floats; it must be the very
    number attention_time_s (numpy) gives: CTA-bound (short context), memory-bound (long) and
    compute-bound (a wide verify pass, many pairs per key) shapes."""
    fwd = ForwardModel(qwen8b, h100, kv_dtype=kv_dtype)
    for seqs, ctx, pairs in [(1, 3.0, None), (256, 256 * 17.0, None), (37, 37 * 9_001.0, None),
                             (200, 200 * 4_100.0, 200 * 4_100.0 * 8 - 200 * 28.0), (64, 64 * 40.0, 64 * 40.0 * 200)]:
        shape = PassShape(seqs, seqs, seqs, ctx, decode_pairs=pairs)
        fast = fwd.components(shape)["attention"]
        ref = float(fwd.attention_time_s(seqs, ctx, decode_pairs=pairs))
        assert fast == ref, (seqs, ctx, pairs, fast, ref)


@pytest.mark.parametrize("model,options", [("Qwen3-8B", {}), ("Qwen3-8B", {"tp": 2, "weight_dtype": "fp8"}),
                                           ("Qwen3-235B-A22B", {"tp": 4, "expert_parallel": True})])
def test_linear_gemms_vectorised_over_weights_equal_one_call_per_weight(h100, model, options):
    """The pass body times every linear weight in one numpy call per dtype: the same numbers,
    bit for bit, as timing each weight on its own."""
    from rlsim.cost.memory import local_shape
    from rlsim.hardware import ops

    fwd = ForwardModel(load_model(model), h100, **options)
    for T in (1, 7, 128, 129, 300, 4096, 8191):
        vec = fwd.linear_gemm_times_s(T).tolist()
        one = []
        for w in fwd._weights:
            n, k = local_shape(fwd.arch, w, fwd.tp)
            d = fwd.quant.dtype_of(w.group)
            one.append(float(ops.gemm_time_s(h100, T, n, k, d, fwd._gemm_kernels[d])))
        assert vec == one, (model, T)
