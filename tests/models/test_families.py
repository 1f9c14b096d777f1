"""Model families from their HF configs (rlsim.models.families): the measured models' structure,
llama-like families (real key names, small shapes), published totals, exact errors, and the
draft / target compatibility warnings (rlsim.models.compat)."""

from __future__ import annotations

import pytest

from rlsim.errors import ConfigError
from rlsim.models import draft_target_warnings, load_model, model_from_hf_config
from rlsim.models.registry import catalog_entry

# ---------------------------------------------------------------------- the measured MoE models


def test_gpt_oss_structure():
    m = load_model("openai/gpt-oss-120b")
    assert (m.num_experts, m.num_experts_per_tok, m.num_moe_layers, m.num_dense_layers) == (128, 4, 36, 0)
    assert (m.sliding_window, m.num_sliding_layers, m.num_full_attention_layers) == (128, 18, 18)
    assert m.attention_sinks and m.qkv_bias and m.o_proj_bias and m.expert_bias and m.router_bias
    assert m.total_params == 116_829_156_672  # OpenAI: 116.83B
    assert round((m.active_params - m.embedding_params) / 1e9, 2) == 5.13  # OpenAI: 5.13B active
    # biases: q/k/v/o (4096 + 2 x 512 + 2880) and 64 sinks per layer; experts (5760 + 2880) and router per MoE layer
    assert m.bias_params == 36 * (4096 + 1024 + 2880 + 64) + 36 * (128 * (5760 + 2880) + 128)
    assert m.kv_bytes_per_token() == 18 * 2 * 8 * 64 * 2  # 36 KiB: full layers only (B2)
    assert m.sliding_kv_bytes_per_sequence("fp8") == 18 * 128 * 2 * 8 * 64


def test_minimax_m2_structure():
    m = load_model("MiniMaxAI/MiniMax-M2.5")
    assert (m.num_experts, m.num_experts_per_tok, m.num_shared_experts, m.moe_intermediate_size) == (256, 8, 0, 1536)
    assert (m.router_scoring, m.router_score_bias, m.num_mtp_layers) == ("sigmoid", True, 3)
    assert m.qk_norm and m.qk_norm_scope == "layer"
    assert m.norm_params_per_layer == 2 * 3072 + (48 + 8) * 128  # per-layer q/k norms over all heads
    active_b = (m.active_params - m.embedding_params - m.lm_head_params) / 1e9
    assert round(m.total_params / 1e9) == 229 and round(active_b) == 10  # MiniMax: ~229B / ~10B
    assert m.kv_bytes_per_token() == 62 * 2 * 8 * 128 * 2
    assert any("MTP modules counted with DeepSeek-V3's MTP structure" in n for n in m.notes)


def test_kimi_k25_is_deepseek_v3_layers_in_text_config():
    m = load_model("moonshotai/Kimi-K2.5")
    assert m.hf_architecture == "KimiK25ForConditionalGeneration" and m.attention_kind == "mla"
    assert (m.num_experts, m.num_experts_per_tok, m.num_shared_experts, m.num_dense_layers) == (384, 8, 1, 1)
    assert (m.router_groups, m.router_topk_groups, m.router_scoring, m.num_mtp_layers) == (1, 1, "sigmoid", 0)
    assert m.kv_values_per_token_per_layer == 512 + 64
    assert round(m.total_params / 1e12, 2) == 1.03 and round(m.active_params / 1e9) == 33  # Moonshot: 1T / 32B
    assert m.weight_dtype == "int4_g32"
    assert "vision tower" in m.notes[0]
    nv = load_model("nvidia/Kimi-K2.5-NVFP4")
    assert nv.model_dump(exclude={"name", "quantization", "weight_dtype", "notes"}) == \
        m.model_dump(exclude={"name", "quantization", "weight_dtype", "notes"})


# ---------------------------------------------------------------------- llama-like families


def _small(model_type: str, arch: str, **extra) -> dict:
    """A small config with the real keys of ``model_type``'s published configs."""
    return {"architectures": [arch], "model_type": model_type, "hidden_size": 512, "intermediate_size": 1024,
            "num_hidden_layers": 6, "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, **extra}


def _layer_params(h: int, i: int, heads: int, kv: int, d: int) -> int:
    return h * (heads + 2 * kv) * d + heads * d * h + 3 * h * i


def test_mistral_sliding_window_on_every_layer():
    m = model_from_hf_config(_small("mistral", "MistralForCausalLM", sliding_window=4096, tie_word_embeddings=False), "m")
    assert (m.num_sliding_layers, m.sliding_window, m.kv_bytes_per_token()) == (6, 4096, 0.0)
    assert m.total_params == 2 * 1000 * 512 + 512 + 6 * (_layer_params(512, 1024, 8, 2, 64) + 2 * 512)
    plain = model_from_hf_config(_small("mistral", "MistralForCausalLM", sliding_window=None), "m")
    assert plain.num_sliding_layers == 0 and plain.sliding_window is None


def test_qwen2_has_qkv_biases_and_optional_sliding_layers():
    m = model_from_hf_config(_small("qwen2", "Qwen2ForCausalLM", sliding_window=4096, max_window_layers=4,
                                    use_sliding_window=False), "m")
    assert m.qkv_bias and not m.o_proj_bias and m.num_sliding_layers == 0
    assert m.bias_params == 6 * (8 + 2 * 2) * 64
    swa = model_from_hf_config(_small("qwen2", "Qwen2ForCausalLM", sliding_window=4096, max_window_layers=4,
                                      use_sliding_window=True), "m")
    assert swa.num_sliding_layers == 2  # layers 4 and 5


def test_gemma_families():
    g1 = model_from_hf_config(_small("gemma", "GemmaForCausalLM", head_dim=256, hidden_act="gelu"), "g")
    assert g1.tie_word_embeddings and g1.lm_head_params == 0 and g1.head_dim == 256
    g2 = model_from_hf_config(_small("gemma2", "Gemma2ForCausalLM", head_dim=64, sliding_window=4096,
                                     attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                                     query_pre_attn_scalar=64), "g")
    assert (g2.norms_per_layer, g2.num_sliding_layers, g2.qk_norm) == (4, 3, False)  # layers 0, 2, 4 slide
    assert any("soft-capping" in n for n in g2.notes)
    g3 = _small("gemma3_text", "Gemma3ForCausalLM", head_dim=64, sliding_window=512, sliding_window_pattern=6,
                num_hidden_layers=12)
    m3 = model_from_hf_config(g3, "g")
    assert (m3.num_sliding_layers, m3.qk_norm, m3.norm_params_per_layer) == (10, True, 4 * 512 + 2 * 64)
    wrapped = model_from_hf_config({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                                    "text_config": g3, "vision_config": {"hidden_size": 1152}}, "g")
    assert wrapped.total_params == m3.total_params and "vision tower" in wrapped.notes[0]
    layered = model_from_hf_config({**g3, "layer_types": ["full_attention"] * 11 + ["sliding_attention"]}, "g")
    assert layered.num_sliding_layers == 1  # layer_types wins over the pattern


@pytest.mark.parametrize(
    ("config", "total"),
    [  # published totals (model cards; the configs' real shapes)
        (dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=8, vocab_size=32000, max_position_embeddings=32768, sliding_window=4096), 7_241_732_096),
        (dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
              num_key_value_heads=4, vocab_size=152064, max_position_embeddings=131072, use_sliding_window=False),
         7_615_616_512),
        (dict(model_type="gemma2", hidden_size=3584, intermediate_size=14336, num_hidden_layers=42, num_attention_heads=16,
              num_key_value_heads=8, head_dim=256, vocab_size=256000, max_position_embeddings=8192, sliding_window=4096),
         9_241_705_984),
        (dict(model_type="gemma", hidden_size=3072, intermediate_size=24576, num_hidden_layers=28, num_attention_heads=16,
              num_key_value_heads=16, head_dim=256, vocab_size=256000, max_position_embeddings=8192), 8_537_680_896),
    ],
    ids=["Mistral-7B-v0.1", "Qwen2-7B", "gemma-2-9b", "gemma-7b"],
)
def test_llama_like_families_match_published_totals(config: dict, total: int):
    assert model_from_hf_config(config, "m").total_params == total


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (_small("gpt_oss", "GptOssForCausalLM", num_local_experts=8, num_experts_per_tok=2, sliding_window=128,
                layer_types=["sliding_attention", "full_attention"]),
         "c.json: layer_types = '2 entries' must have num_hidden_layers = 6 entries"),
        (_small("gpt_oss", "GptOssForCausalLM", num_local_experts=8, num_experts_per_tok=2, sliding_window=128,
                layer_types=["chunked_attention"] * 6),
         "c.json: layer_types = 'chunked_attention' is not a supported layer type (supported: full_attention, "
         "sliding_attention)"),
        (_small("gpt_oss", "GptOssForCausalLM", num_local_experts=8, num_experts_per_tok=2,
                layer_types=["sliding_attention"] * 6),
         "c.json: sliding_window = None must be set: layer_types has 6 sliding_attention layers"),
        (_small("minimax_m2", "MiniMaxM2ForCausalLM", num_local_experts=8, num_experts_per_tok=2,
                attn_type_list=[0, 1, 1, 1, 1, 1]),
         "c.json: attn_type_list = 0 is not supported: only softmax-attention layers (1) are modelled, not lightning "
         "attention (0)"),
        (_small("minimax_m2", "MiniMaxM2ForCausalLM", num_local_experts=8, num_experts_per_tok=2,
                shared_intermediate_size=512),
         "c.json: shared_intermediate_size = 512 is not supported (supported: 0)"),
        (_small("minimax_m2", "MiniMaxM2ForCausalLM", num_local_experts=8, num_experts_per_tok=2, scoring_func="relu"),
         "c.json: scoring_func = 'relu' is not supported (supported: softmax, sigmoid)"),
        (_small("gpt_oss", "GptOssForCausalLM", num_experts_per_tok=2),
         "c.json: num_local_experts is missing (required for model_type 'gpt_oss')"),
    ],
)
def test_family_errors(config: dict, message: str):
    with pytest.raises(ConfigError) as err:
        model_from_hf_config(config, "m", "c.json")
    assert str(err.value) == message


def test_text_config_errors_name_the_nested_key():
    kimi = catalog_entry("Kimi-K2.5")
    del kimi["text_config"]["kv_lora_rank"]
    with pytest.raises(ConfigError) as err:
        model_from_hf_config(kimi, "k", "kimi.json")
    assert str(err.value) == "kimi.json: text_config.kv_lora_rank is missing (required for model_type 'kimi_k2')"


# ---------------------------------------------------------------------- draft / target fit


def test_eagle3_head_for_another_vocabulary_is_detected():
    head = load_model("EAGLE3-Qwen3-8B")
    assert draft_target_warnings(head, load_model("Qwen3-8B")) == ()
    assert draft_target_warnings(load_model("EAGLE3-Llama-3.1-8B"), load_model("meta-llama/Llama-3.1-8B")) == ()
    llama2 = model_from_hf_config({**_small("llama", "LlamaForCausalLM"), "hidden_size": 4096, "num_attention_heads": 32,
                                   "vocab_size": 32000}, "Llama-2-7b")
    warnings = draft_target_warnings(head, llama2)
    assert warnings == (
        "EAGLE-3 head EAGLE3-Qwen3-8B: vocab_size = 151936 differs from target Llama-2-7b's vocab_size = 32000: it was "
        "trained for another tokenizer, its proposals are other tokens' ids and acceptance will be near zero (the "
        "acceptance model does not know this)",
        "EAGLE-3 head EAGLE3-Qwen3-8B: trained for target_model = 'Qwen3-8B', used with 'Llama-2-7b'",
    )
    q32 = draft_target_warnings(head, load_model("Qwen3-32B"))
    assert len(q32) == 2 and "hidden_size = 4096 differs from target Qwen3-32B's hidden_size = 5120" in q32[0]
