"""Forward model of the measured models: per-group weight dtypes, sliding-window attention,
fp8-KV attention parameters, MLA for Kimi, and the warnings a run shows."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.cost import ForwardModel, PassShape
from rlsim.cost.memory import kv_bytes_per_token_per_gpu, local_shape, sliding_kv_bytes_per_seq_per_gpu, weight_bytes_per_gpu
from rlsim.hardware import load_profile, ops
from rlsim.models import load_model, model_from_hf_config


@pytest.fixture(scope="module")
def h100():
    return load_profile("h100_sxm")


@pytest.fixture(scope="module")
def gpt():
    return load_model("gpt-oss-120b")


def test_each_group_is_timed_at_its_checkpoint_dtype(h100, gpt):
    fwd = ForwardModel(gpt, h100, tp=2)
    assert fwd.weight_dtype == "mxfp4" and fwd.quant.attention == "bf16"
    T = 64
    linear = sum(w.layers * ops.gemm_time_s(h100, T, *local_shape(gpt, w, 2), "bf16")
                 for w in gpt.linear_weights() if w.group in ("attention", "router"))
    moe = gpt.num_moe_layers * ops.moe_layer_time_s(h100, T, 128, 4, 2880, 2880, "mxfp4", tp=2)
    parts = fwd.decode_const_parts(T)
    assert parts["linear"] == pytest.approx(linear, rel=1e-12)
    assert parts["moe"] == pytest.approx(moe, rel=1e-12)
    # an override applies to every linear layer but router and head
    over = ForwardModel(gpt, h100, tp=2, weight_dtype="bf16")
    assert over.quant.expert == "bf16" and over.decode_const_parts(T)["moe"] > 2 * parts["moe"]


def test_mxfp4_experts_on_blackwell_run_the_mxfp8_activation_kernel(h100, gpt):
    """gpt-oss's experts on B200 are timed by the MXFP4 x MXFP8 kernel by default (auto), by the
    bf16-activation one when the engine asks; Hopper has only the latter."""
    b200 = load_profile("b200_sxm")
    T = 64
    moe = {a: ForwardModel(gpt, b200, mxfp4_moe_activation=a).decode_const_parts(T)["moe"] for a in ("auto", "bf16", "mxfp8")}
    assert moe["auto"] == moe["mxfp8"] == pytest.approx(
        gpt.num_moe_layers * ops.moe_layer_time_s(b200, T, 128, 4, 2880, 2880, "mxfp4_mxfp8"), rel=1e-12)
    assert moe["bf16"] == pytest.approx(gpt.num_moe_layers * ops.moe_layer_time_s(b200, T, 128, 4, 2880, 2880, "mxfp4"),
                                        rel=1e-12)
    assert moe["bf16"] > 1.3 * moe["auto"]  # weights stream at ~0.82 vs ~0.58 of HBM bandwidth (fitted)
    assert ForwardModel(gpt, b200).warnings == ()
    hop = {a: ForwardModel(gpt, h100, mxfp4_moe_activation=a) for a in ("auto", "mxfp8")}
    assert hop["auto"].decode_const_parts(T)["moe"] == hop["mxfp8"].decode_const_parts(T)["moe"]
    assert any("no calibrated MXFP4 x MXFP8 fused MoE" in w for w in hop["mxfp8"].warnings)


def test_sliding_layers_read_at_most_the_window(h100, gpt):
    fwd = ForwardModel(gpt, h100, tp=2)
    B = 16
    full_only = ForwardModel(gpt.model_copy(update={"num_sliding_layers": 0, "sliding_window": None}), h100, tp=2)
    short, long = fwd.time_s(PassShape(B, B, B, B * 100.0)), fwd.time_s(PassShape(B, B, B, B * 20_000.0))
    short_f, long_f = full_only.time_s(PassShape(B, B, B, B * 100.0)), full_only.time_s(PassShape(B, B, B, B * 20_000.0))
    assert short == pytest.approx(short_f, rel=1e-12)  # contexts inside the window: no difference
    assert (long - short) == pytest.approx((long_f - short_f) / 2, rel=0.05)  # half the layers stop growing at W
    ctx = np.array([B * 50.0, B * 128.0, B * 3_000.0, B * 100_000.0])
    np.testing.assert_allclose(fwd.decode_times_s(B, ctx), [fwd.time_s(PassShape(B, B, B, c)) for c in ctx], rtol=1e-12)
    np.testing.assert_allclose(fwd.decode_times_s(B, ctx, q=4),
                               [fwd.time_s(PassShape(4 * B, 4 * B, B, c, decode_pairs=4 * c - B * 6)) for c in ctx], rtol=1e-12)
    # the engine may pass the exact sum of min(context, W) (one 10k and one 100-token sequence:
    # 228) instead of the estimate min(10100, 2 x 128) = 256; the sliding layers use it
    kv_tok = 2 * 4 * 64 * 2  # K and V, 4 KV heads per rank at TP 2, head_dim 64, bf16
    def layers(ctx):  # 18 layers of one kind over ``ctx`` keys in all
        return 18 * ops.decode_attention_time_s(h100, ctx * kv_tok, 2, ctx * 4 * 32 * 64, 4, "bf16", 64)
    assert fwd.attention_time_s(2, 10_100.0, decode_window_ctx_tokens=228.0) == pytest.approx(
        layers(10_100.0) + layers(228.0), rel=1e-12)
    assert fwd.attention_time_s(2, 10_100.0) == pytest.approx(layers(10_100.0) + layers(256.0), rel=1e-12)


def test_sliding_window_prefill_is_bounded_by_the_window(h100, gpt):
    fwd = ForwardModel(gpt, h100, tp=1)
    P = 8192
    one = fwd.attention_time_s(0, 0.0, P * (P + 1) / 2.0, P, prefill_seqs=1, prefill_tokens=P, prefill_tiles=P / 128,
                               prefill_max_keys=P)
    nowin = ForwardModel(gpt.model_copy(update={"num_sliding_layers": 0, "sliding_window": None}), h100, tp=1)
    full = nowin.attention_time_s(0, 0.0, P * (P + 1) / 2.0, P, prefill_seqs=1, prefill_tokens=P, prefill_tiles=P / 128,
                                  prefill_max_keys=P)
    sliding_layer = ops.prefill_attention_time_s(h100, P, P * 128 * 4 * 64 * 64, P / 128, 256, 64, 8, 4 * 64)
    full_layer = full / 36
    assert one == pytest.approx(18 * full_layer + 18 * sliding_layer, rel=1e-12)
    assert ops.window_pairs(P * (P + 1) / 2.0, P, 128) == P * 128
    assert ops.window_pairs(10.0, 4, 128) == 10.0  # never more than the causal pairs


def test_fp8_kv_uses_its_own_fitted_parameters(h100):
    q8 = load_model("Qwen3-8B")
    da, da8 = h100.efficiency.decode_attention, h100.efficiency.decode_attention_fp8
    assert da8 is not None and da8 != da
    kv = 1e9
    assert ops.decode_attention_time_s(h100, kv, 1, kv_dtype="fp8") == pytest.approx(
        kv / (h100.hbm_bandwidth_bytes_per_s * da8.mem_eff) + da8.latency_us * 1e-6, rel=1e-12)
    fwd8 = ForwardModel(q8, h100, kv_dtype="fp8")
    assert fwd8.warnings == ()
    ctx = np.array([32 * 4000.0])
    np.testing.assert_allclose(fwd8.decode_times_s(32, ctx), fwd8.time_s(PassShape(32, 32, 32, float(ctx[0]))), rtol=1e-12)
    d = h100.model_dump()
    d["efficiency"]["decode_attention_fp8"] = None
    from rlsim.hardware.profile import HardwareProfile

    bare = ForwardModel(q8, HardwareProfile.model_validate(d), kv_dtype="fp8")
    assert bare.warnings == ("attention with an fp8 KV cache on h100_sxm: no fitted fp8-KV attention parameters; timed "
                             "with the bf16-KV kernel's parameters at 1 byte per KV value",)


def test_kimi_runs_mla_with_int4_experts(h100):
    kimi = load_model("Kimi-K2.5")
    fwd = ForwardModel(kimi, h100, tp=8)
    assert fwd.warnings == ()  # moe.int4 (Marlin) is calibrated
    t = fwd.time_s(PassShape(32, 32, 32, 32 * 4000.0))
    assert 0 < t < 0.5
    # the latent cache: one KV head of 576 values, whole on every rank
    assert kv_bytes_per_token_per_gpu(kimi, 8, "bf16") == 61 * 576 * 2


def test_nvfp4_on_hopper_warns_and_runs(h100):
    fwd = ForwardModel(load_model("Llama-3.1-70B-NVFP4"), h100, tp=4)
    assert len(fwd.warnings) == 1 and fwd.warnings[0].startswith("gemm fp4 on h100_sxm: no FP4 tensor cores")
    assert ForwardModel(load_model("Llama-3.1-70B-NVFP4"), load_profile("b200_sxm"), tp=4).warnings == ()


def test_memory_of_mixed_precision_and_sliding_models(gpt):
    w1 = weight_bytes_per_gpu(gpt, 1, None)
    assert w1 == pytest.approx(gpt.weight_bytes(), rel=1e-12)  # MXFP4 experts, bf16 rest
    assert weight_bytes_per_gpu(gpt, 2, None) == pytest.approx(w1 / 2, rel=0.01)  # only router and norms replicated
    assert kv_bytes_per_token_per_gpu(gpt, 1, "bf16") == 18 * 2 * 8 * 64 * 2
    assert sliding_kv_bytes_per_seq_per_gpu(gpt, 1, "bf16", 16) == 18 * 2 * 8 * 64 * 2 * (128 + 16)
    mistral = model_from_hf_config({"model_type": "mistral", "hidden_size": 512, "intermediate_size": 1024,
                                    "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
                                    "vocab_size": 1000, "max_position_embeddings": 8192, "sliding_window": 4096}, "m")
    assert kv_bytes_per_token_per_gpu(mistral, 1, "bf16") == 4 * 2 * 2 * 64 * 2  # only sliding layers: per token
    assert sliding_kv_bytes_per_seq_per_gpu(mistral, 1, "bf16") == 0.0
