"""Parameter counts, KV bytes and GEMM shapes against hardware_and_models.md Part B2/B3."""

from __future__ import annotations

import pytest

from rlsim.errors import ConfigError
from rlsim.models import LinearWeight, ModelArch, describe, list_models, load_model

# name -> (total params, active params) in billions, from B2 / B3.
PUBLISHED_B = {
    "Qwen3-0.6B": (0.596, 0.596),
    "Qwen3-1.7B": (1.721, 1.721),
    "Qwen3-4B": (4.022, 4.022),
    "Qwen3-8B": (8.191, 8.191),
    "Qwen3-32B": (32.76, 32.76),
    "Qwen3-30B-A3B": (30.53, 3.35),
    "Qwen3-235B-A22B": (235.09, 22.19),
    "Llama-3.1-8B": (8.030, 8.030),
    "Llama-3.1-70B": (70.55, 70.55),
    "DeepSeek-V3": (671.0, 37.55),
    # gpt-oss: OpenAI's 116.83B / 5.13B active excl. embedding (B2); the active figure here
    # includes the embedding (5.13 + 0.58).  MiniMax-M2.5: MiniMax's ~229B / ~10B (10B excludes
    # the embedding and lm_head: 9.80B, see test_minimax_m2_structure); Kimi-K2.5: Moonshot's
    # 1T / 32B (1.0264T computed, so the tolerance below is 3 %).
    "gpt-oss-120b": (116.83, 5.71),
    "MiniMax-M2.5": (229.0, 11.03),
    "MiniMax-M2.5-NVFP4": (229.0, 11.03),
    "Kimi-K2.5": (1000.0, 32.86),
    "Kimi-K2.5-NVFP4": (1000.0, 32.86),
    "Llama-3.1-70B-FP8": (70.55, 70.55),
    "Llama-3.1-70B-NVFP4": (70.55, 70.55),
    "EAGLE3-Llama-3.1-8B": (0.425, 0.425),
    "EAGLE3-Qwen3-8B": (0.40, 0.40),
    "EAGLE3-Qwen3-235B-A22B": (0.59, 0.59),
}
NON_EMBEDDING_B = {
    "Qwen3-0.6B": 0.440, "Qwen3-1.7B": 1.409, "Qwen3-4B": 3.634, "Qwen3-8B": 6.946, "Qwen3-32B": 31.21,
    "Qwen3-30B-A3B": 29.91, "Qwen3-235B-A22B": 233.85, "Llama-3.1-8B": 6.980, "Llama-3.1-70B": 68.45,
    "DeepSeek-V3": 669.2,
}
KV_KIB_BF16 = {
    "Qwen3-0.6B": 112, "Qwen3-1.7B": 112, "Qwen3-4B": 144, "Qwen3-8B": 144, "Qwen3-32B": 256,
    "Qwen3-30B-A3B": 96, "Qwen3-235B-A22B": 188, "Llama-3.1-8B": 128, "Llama-3.1-70B": 320,
    "gpt-oss-120b": 36,  # B2: the 18 full-attention layers (the 18 sliding ones hold <= 128 tokens)
    "MiniMax-M2.5": 248,  # 62 layers x 2 x 8 KV heads x 128 x 2 B
}
#: Moonshot's and MiniMax's published totals are rounded (1T, ~229B): looser tolerance.
_LOOSE = {"Kimi-K2.5": 0.03, "Kimi-K2.5-NVFP4": 0.03, "MiniMax-M2.5": 0.005, "MiniMax-M2.5-NVFP4": 0.005}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def test_catalog_lists_every_model() -> None:
    assert list_models() == sorted(PUBLISHED_B)


@pytest.mark.parametrize("name", sorted(PUBLISHED_B))
def test_total_and_active_params_match_published(name: str) -> None:
    model = load_model(name)
    total_b, active_b = PUBLISHED_B[name]
    tol = 0.005 if not name.startswith("EAGLE3-Qwen3") else 0.02  # B3 gives those to 2 digits
    assert _rel(model.total_params / 1e9, total_b) < _LOOSE.get(name, tol)
    assert _rel(model.active_params / 1e9, active_b) < tol


@pytest.mark.parametrize("name", sorted(NON_EMBEDDING_B))
def test_non_embedding_params_match_published(name: str) -> None:
    assert _rel(load_model(name).non_embedding_params / 1e9, NON_EMBEDDING_B[name]) < 0.005


def test_exact_counts_of_two_dense_models() -> None:
    q8 = load_model("Qwen3-8B")
    assert q8.attention_params_per_layer == 4096 * (32 + 16) * 128 + 32 * 128 * 4096
    assert q8.norm_params_per_layer == 2 * 4096 + 2 * 128
    assert q8.total_params == 8_190_735_360
    assert load_model("Llama-3.1-8B").total_params == 8_030_261_248


def test_tied_embeddings_have_no_lm_head_params() -> None:
    small = load_model("Qwen3-0.6B")
    assert small.tie_word_embeddings and small.lm_head_params == 0
    assert small.embedding_params == 151936 * 1024


def test_deepseek_v3_structure() -> None:
    ds = load_model("DeepSeek-V3")
    assert (ds.attention_kind, ds.num_dense_layers, ds.num_moe_layers) == ("mla", 3, 58)
    assert (ds.num_experts, ds.num_experts_per_tok, ds.num_shared_experts, ds.num_mtp_layers) == (256, 8, 1, 1)
    assert ds.weight_dtype == "fp8_block"
    assert ds.expert_params == 3 * 7168 * 2048
    assert ds.shared_expert_params_per_layer == ds.expert_params
    assert ds.router_params_per_layer == 256 * 7168
    assert (ds.active_params - ds.embedding_params) / 1e9 == pytest.approx(36.6, abs=0.05)
    assert _rel(ds.mtp_params / 1e9, 11.6) < 0.005


def test_moe_layer_counts() -> None:
    assert load_model("Qwen3-30B-A3B").num_moe_layers == 48
    assert load_model("Qwen3-235B-A22B").num_dense_layers == 0
    assert not load_model("Qwen3-8B").is_moe and load_model("Qwen3-8B").num_moe_layers == 0


def test_eagle3_llama_head_breakdown_matches_b3() -> None:
    head = load_model("EAGLE3-Llama-3.1-8B")
    assert (head.kind, head.target_model, head.draft_vocab_size) == ("eagle3_head", "Llama-3.1-8B", 32000)
    assert head.embedding_params == 0
    assert head.attention_params_per_layer == 8192 * 6144 + 4096 * 4096  # qkv reads 2H
    assert head.dense_mlp_params_per_layer == 3 * 4096 * 14336
    assert head.draft_fc_params == 3 * 4096 * 4096
    assert head.lm_head_params == 4096 * 32000
    assert _rel(head.total_params / 1e9, 0.425) < 0.005


@pytest.mark.parametrize(
    ("name", "kv_bytes"),
    [(n, kib * 1024) for n, kib in KV_KIB_BF16.items()] + [("DeepSeek-V3", 576 * 61 * 2)],
)
def test_kv_bytes_per_token_bf16(name: str, kv_bytes: int) -> None:
    assert load_model(name).kv_bytes_per_token() == kv_bytes


def test_kv_bytes_fp8_and_values() -> None:
    ds = load_model("DeepSeek-V3")
    assert ds.kv_values_per_token_per_layer == 576
    assert ds.kv_bytes_per_token("fp8") == 576 * 61
    assert load_model("Qwen3-8B").kv_values_per_token_per_layer == 2 * 8 * 128


def test_unknown_dtype_is_a_config_error() -> None:
    model = load_model("Qwen3-8B")
    with pytest.raises(ConfigError) as err:
        model.kv_bytes_per_token("int3")
    known = "fp32, bf16, fp16, fp8, fp8_block, fp4, mxfp4, int4, int4_g64, int4_g32, int4_gch"
    assert str(err.value) == f"kv_dtype = 'int3' is not a known dtype (known: {known})"
    with pytest.raises(ConfigError, match="^dtype = 'int3' is not a known dtype"):
        model.weight_bytes("int3")


def test_weight_bytes() -> None:
    q8 = load_model("Qwen3-8B")
    assert q8.weight_bytes() == q8.total_params * 2
    assert q8.weight_bytes("fp8") == q8.total_params
    ds = load_model("DeepSeek-V3")
    # as stored: every linear layer but router and lm_head fp8 e4m3 + an fp32 scale per 128 x 128
    # block; router, lm_head, embedding and norms bf16
    linear = {w.name: w.params for w in ds.linear_weights()}
    bf16 = linear["router"] + linear["lm_head"] + ds.embedding_params + (ds.total_params - sum(linear.values())
                                                                        - ds.embedding_params)
    fp8 = ds.total_params - bf16
    assert ds.weight_bytes() == pytest.approx(fp8 * (1 + 4 / 128**2) + 2 * bf16, rel=1e-12)
    gpt = load_model("gpt-oss-120b")  # MXFP4 experts (4.25 bits with scales), the rest bf16: B2's ~61-65 GB
    experts = gpt.num_moe_layers * gpt.num_experts * gpt.expert_params
    assert gpt.weight_bytes() == pytest.approx(experts * 4.25 / 8 + (gpt.total_params - experts) * 2, rel=1e-12)
    assert 61e9 < gpt.weight_bytes() < 66e9


def _reconstructed(model: ModelArch, weights: list[LinearWeight]) -> int:
    norms = model.num_hidden_layers * model.norm_params_per_layer + model.final_norm_params
    return sum(w.in_features * w.out_features * w.layers * w.copies_per_layer for w in weights if not w.shares_storage) + (
        model.embedding_params + norms + model.bias_params
    )


@pytest.mark.parametrize("name", sorted(PUBLISHED_B))
def test_linear_weights_reconstruct_total_params(name: str) -> None:
    model = load_model(name)
    weights = model.linear_weights()
    assert _reconstructed(model, weights) == model.total_params
    norms = model.num_hidden_layers * model.norm_params_per_layer + model.final_norm_params
    assert sum(w.params for w in weights) + model.embedding_params + norms + model.bias_params == model.total_params
    assert all(w.layers >= 1 for w in weights)
    assert [w.name for w in weights].count("lm_head") == 1


def test_linear_weights_of_deepseek_v3() -> None:
    shapes = {
        w.name: (w.in_features, w.out_features, w.parallel, w.group, w.layers, w.copies_per_layer)
        for w in load_model("DeepSeek-V3").linear_weights()
    }
    assert shapes == {
        "q_a_proj": (7168, 1536, "replicated", "attention", 61, 1),
        "q_b_proj": (1536, 128 * 192, "column", "attention", 61, 1),
        "kv_a_proj": (7168, 576, "replicated", "attention", 61, 1),
        "kv_b_proj": (512, 128 * 256, "column", "attention", 61, 1),
        "o_proj": (128 * 128, 7168, "row", "attention", 61, 1),
        "gate_up_proj": (7168, 2 * 18432, "column", "dense_mlp", 3, 1),
        "down_proj": (18432, 7168, "row", "dense_mlp", 3, 1),
        "router": (7168, 256, "replicated", "router", 58, 1),
        "expert_gate_up": (7168, 4096, "column", "expert", 58, 256),
        "expert_down": (2048, 7168, "row", "expert", 58, 256),
        "shared_gate_up": (7168, 4096, "column", "shared_expert", 58, 1),
        "shared_down": (2048, 7168, "row", "shared_expert", 58, 1),
        "lm_head": (7168, 129280, "column", "head", 1, 1),
    }


def test_linear_weights_of_dense_and_head_models() -> None:
    q8 = {w.name: (w.in_features, w.out_features, w.parallel, w.layers) for w in load_model("Qwen3-8B").linear_weights()}
    assert q8 == {
        "qkv_proj": (4096, 6144, "column", 36),
        "o_proj": (4096, 4096, "row", 36),
        "gate_up_proj": (4096, 24576, "column", 36),
        "down_proj": (12288, 4096, "row", 36),
        "lm_head": (4096, 151936, "column", 1),
    }
    head = {w.name: (w.in_features, w.out_features, w.group) for w in load_model("EAGLE3-Llama-3.1-8B").linear_weights()}
    assert head["qkv_proj"] == (8192, 6144, "attention")
    assert head["eagle_fc"] == (12288, 4096, "draft_fc")
    assert head["lm_head"] == (4096, 32000, "head")
    tied = [w for w in load_model("Qwen3-0.6B").linear_weights() if w.name == "lm_head"]
    assert tied[0].shares_storage and tied[0].params == 0


def test_mtp_linear_weights_reconstruct_mtp_params() -> None:
    ds = load_model("DeepSeek-V3")
    weights = ds.mtp_linear_weights()
    assert weights[0].name == "eh_proj" and (weights[0].in_features, weights[0].out_features) == (2 * 7168, 7168)
    norms = ds.num_mtp_layers * (2 * ds.hidden_size + ds.norm_params_per_layer)
    assert sum(w.params for w in weights) + norms == ds.mtp_params
    assert load_model("Qwen3-8B").mtp_linear_weights() == []


def test_describe_reports_the_key_numbers() -> None:
    info = describe(load_model("Qwen3-30B-A3B"))
    assert info["total_params_b"] == 30.532
    assert info["active_params_b"] == 3.353
    assert info["kv_bytes_per_token"] == {"bf16": 96 * 1024, "fp8": 48 * 1024}
    assert info["experts"] == 128 and info["moe_layers"] == 48
    assert info["weight_gb"]["bf16"] == round(load_model("Qwen3-30B-A3B").total_params * 2 / 1e9, 2)
    assert info["source"].startswith("HF config.json of Qwen/Qwen3-30B-A3B")
    assert describe(load_model("DeepSeek-V3"))["mtp_params_b"] == 11.61
    assert describe(load_model("EAGLE3-Qwen3-8B"))["target_model"] == "Qwen3-8B"


def test_model_arch_is_frozen() -> None:
    model = load_model("Qwen3-8B")
    with pytest.raises(Exception):
        model.hidden_size = 1  # type: ignore[misc]
