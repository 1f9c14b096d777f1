"""Per-``model_type`` readers of HF ``config.json`` files.

Each :class:`Family` turns a config (through a :class:`~rlsim.models._reader.Reader`) into the
family-specific :class:`~rlsim.models.arch.ModelArch` fields, and names the family's linear
modules as HF checkpoints do (``model.layers.{i}.self_attn.q_proj``, ...) so a quantisation
config's exclusion patterns can be matched (:mod:`rlsim.models.quant`).

Families and what each reads (sources: the configs in ../shared/reference/hf_configs,
hardware_and_models.md B1, and the HF / vLLM model classes named):

* ``llama``, ``mistral`` (``sliding_window`` on every layer when set), ``qwen2`` (q/k/v biases;
  sliding layers ``i >= max_window_layers`` when ``use_sliding_window``), ``qwen3`` (q/k norms);
* ``gemma`` (GeGLU, tied embeddings by default), ``gemma2`` (four norms per layer, even layers
  sliding unless ``layer_types`` says otherwise), ``gemma3_text`` (also q/k norms; layer ``i``
  is global when ``(i + 1) % sliding_window_pattern == 0``).  Left out, and said in the model's
  notes: GeGLU is timed as SwiGLU (same GEMMs), logit soft-capping, the sqrt(H) embedding
  scale, Gemma-3's vision tower;
* ``qwen3_moe``; ``deepseek_v3`` and ``kimi_k2`` (DeepSeek-V3 layers: MLA, shared experts,
  group-limited sigmoid routing with a score-correction bias, MTP modules);
* ``gpt_oss``: ``layer_types`` alternating sliding (``sliding_window``) and full attention,
  attention sinks, q/k/v/o, expert and router biases, ``num_local_experts`` experts;
* ``minimax_m2``: ``num_local_experts`` experts of width ``intermediate_size``, sigmoid routing
  with a routing bias, per-layer q/k norms (``qk_norm_type`` ``per_layer``), ``num_mtp_modules``
  MTP modules (counted with DeepSeek-V3's MTP structure: assumed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rlsim.models._reader import Reader
from rlsim.models.quant import ModuleNames

__all__ = ["Family", "FAMILIES", "ROUTING_NOTE", "family_for"]


def _layer(*parts: str) -> list[str]:
    return [f"model.layers.{{i}}.{p}" for p in parts]


_GQA = _layer("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
_DENSE = _layer("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_LLAMA_NAMES: ModuleNames = {"attention": _GQA, "dense_mlp": _DENSE}


@dataclass(frozen=True)
class Family:
    """How to read one ``model_type``: default class name, field reader, module names, notes."""

    architecture: str
    fields: Callable[[Reader], dict[str, Any]]
    names: ModuleNames = field(default_factory=lambda: dict(_LLAMA_NAMES))
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- shared pieces


def _sliding(r: Reader, rule: Callable[[int], bool]) -> dict[str, Any]:
    """``sliding_window`` / ``num_sliding_layers`` from ``layer_types`` when present, else from
    the family's ``rule(layer index)`` applied when ``sliding_window`` is set."""
    layers = r.int("num_hidden_layers")
    window = r.int("sliding_window", default=None)
    types = r.str_list("layer_types")
    if types is not None:
        if len(types) != layers:
            raise r.error("layer_types", f"{len(types)} entries", f"must have num_hidden_layers = {layers} entries")
        bad = next((t for t in types if t not in ("sliding_attention", "full_attention")), None)
        if bad is not None:
            raise r.error("layer_types", bad, "is not a supported layer type (supported: full_attention, sliding_attention)")
        sliding = types.count("sliding_attention")
        if sliding and window is None:
            raise r.error("sliding_window", None, f"must be set: layer_types has {sliding} sliding_attention layers")
    else:
        sliding = sum(1 for i in range(layers) if rule(i)) if window is not None else 0
    return {"sliding_window": window if sliding else None, "num_sliding_layers": sliding}


def _qwen_sliding(r: Reader) -> dict[str, Any]:
    """Qwen2/3: sliding layers are ``i >= max_window_layers``, only with ``use_sliding_window``."""
    if not r.bool("use_sliding_window", False):
        return {}
    first = r.int("max_window_layers", default=0, minimum=0)
    return _sliding(r, lambda i: i >= first)


def _moe_layers(r: Reader) -> dict[str, Any]:
    """Qwen3-MoE layer ``i`` is MoE when not in ``mlp_only_layers`` and ``(i + 1) %
    decoder_sparse_step == 0``."""
    layers = r.int("num_hidden_layers")
    step = r.int("decoder_sparse_step", default=1)
    dense_only = set(r.int_list("mlp_only_layers"))
    moe = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    return {"num_dense_layers": layers - moe}


# --------------------------------------------------------------------------- families


def _llama(r: Reader) -> dict[str, Any]:
    return {}


def _mistral(r: Reader) -> dict[str, Any]:
    return _sliding(r, lambda i: True)


def _qwen2(r: Reader) -> dict[str, Any]:
    return {"qkv_bias": True, **_qwen_sliding(r)}


def _qwen3(r: Reader) -> dict[str, Any]:
    return {"qk_norm": True, **_qwen_sliding(r)}


def _qwen3_moe(r: Reader) -> dict[str, Any]:
    return {
        "qk_norm": True,
        "num_experts": r.int("num_experts"),
        "num_experts_per_tok": r.int("num_experts_per_tok"),
        "moe_intermediate_size": r.int("moe_intermediate_size"),
        **_moe_layers(r),
        **_qwen_sliding(r),
    }


def _gemma(r: Reader) -> dict[str, Any]:
    return {"tie_word_embeddings": r.bool("tie_word_embeddings", True)}


def _gemma2(r: Reader) -> dict[str, Any]:
    return {**_gemma(r), "norms_per_layer": 4, **_sliding(r, lambda i: i % 2 == 0)}


def _gemma3(r: Reader) -> dict[str, Any]:
    pattern = r.int("sliding_window_pattern", default=6)
    return {**_gemma(r), "norms_per_layer": 4, "qk_norm": True, **_sliding(r, lambda i: (i + 1) % pattern != 0)}


def _router(r: Reader) -> dict[str, Any]:
    """DeepSeek-style routing: ``scoring_func`` and the ``noaux_tc`` score-correction bias."""
    scoring = r.choice("scoring_func", ("softmax", "sigmoid"), "softmax")
    return {"router_scoring": scoring, "router_score_bias": r.config.get("topk_method") == "noaux_tc"}


def _deepseek_v3(r: Reader) -> dict[str, Any]:
    layers = r.int("num_hidden_layers")
    first_dense = r.int("first_k_dense_replace", default=0, minimum=0)
    freq = r.int("moe_layer_freq", default=1)
    moe_layers = sum(1 for i in range(layers) if i >= first_dense and i % freq == 0)
    nope, rope = r.int("qk_nope_head_dim"), r.int("qk_rope_head_dim")
    return {
        "attention_kind": "mla",
        "head_dim": nope + rope,
        "q_lora_rank": r.int("q_lora_rank", default=None),
        "kv_lora_rank": r.int("kv_lora_rank"),
        "qk_nope_head_dim": nope,
        "qk_rope_head_dim": rope,
        "v_head_dim": r.int("v_head_dim"),
        "num_experts": r.int("n_routed_experts"),
        "num_experts_per_tok": r.int("num_experts_per_tok"),
        "moe_intermediate_size": r.int("moe_intermediate_size"),
        "num_shared_experts": r.int("n_shared_experts", default=0, minimum=0),
        "router_groups": r.int("n_group", default=1),
        "router_topk_groups": r.int("topk_group", default=1),
        "num_dense_layers": layers - moe_layers,
        "num_mtp_layers": r.int("num_nextn_predict_layers", default=0, minimum=0),
        **_router(r),
    }


def _gpt_oss(r: Reader) -> dict[str, Any]:
    topk_key = "num_experts_per_tok" if "num_experts_per_tok" in r.config else "experts_per_token"
    bias = r.bool("attention_bias", True)
    return {
        "num_experts": r.int("num_local_experts"),
        "num_experts_per_tok": r.int(topk_key),
        "moe_intermediate_size": r.int("intermediate_size"),
        "num_dense_layers": 0,
        "qkv_bias": bias,
        "o_proj_bias": bias,
        "expert_bias": True,
        "router_bias": True,
        "attention_sinks": True,
        **_sliding(r, lambda i: i % 2 == 0),
    }


def _minimax_m2(r: Reader) -> dict[str, Any]:
    kinds = r.config.get("attn_type_list")
    if isinstance(kinds, list) and any(k != 1 for k in kinds):
        raise r.error("attn_type_list", next(k for k in kinds if k != 1),
                      "is not supported: only softmax-attention layers (1) are modelled, not lightning attention (0)")
    shared = r.int("shared_intermediate_size", default=0, minimum=0)
    if shared:
        raise r.error("shared_intermediate_size", shared, "is not supported (supported: 0)")
    qk_scope = r.choice("qk_norm_type", ("per_layer", "per_head"), "per_layer")
    return {
        "num_experts": r.int("num_local_experts"),
        "num_experts_per_tok": r.int("num_experts_per_tok"),
        "moe_intermediate_size": r.int("intermediate_size"),
        "num_dense_layers": 0,
        "qk_norm": r.bool("use_qk_norm", False),
        "qk_norm_scope": "layer" if qk_scope == "per_layer" else "head",
        "router_scoring": r.choice("scoring_func", ("softmax", "sigmoid"), "softmax"),
        "router_score_bias": r.bool("use_routing_bias", False),
        "num_mtp_layers": r.int("num_mtp_modules", default=0, minimum=0) if r.bool("use_mtp", False) else 0,
        **_sliding(r, lambda i: True),
    }


_EXPERTS = _layer("mlp.experts.0.gate_proj", "mlp.experts.0.up_proj", "mlp.experts.0.down_proj")
_DEEPSEEK_NAMES: ModuleNames = {
    "attention": _layer("self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa",
                        "self_attn.kv_b_proj", "self_attn.o_proj"),
    "dense_mlp": _DENSE,
    "expert": _EXPERTS,
    "shared_expert": _layer("mlp.shared_experts.gate_proj", "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"),
}
_GEGLU = "GeGLU MLP timed as SwiGLU (the same three GEMMs); the sqrt(hidden_size) embedding scale is not timed"
_SOFTCAP = "attention and final logit soft-capping (tanh) not timed"
ROUTING_NOTE = ("sigmoid routing with a score-correction bias: the top-k selection is part of the fused MoE's "
            "per-routed-row cost, not timed on its own")
_SINKS = ("attention sinks (one learned logit per head in the softmax denominator) not timed: one extra term per "
          "query row, < 0.1 % of the attention FLOPs; clamped SwiGLU (swiglu_limit) timed as SwiGLU; attention, expert "
          "and router biases counted as parameters, not timed")

FAMILIES: dict[str, Family] = {
    "llama": Family("LlamaForCausalLM", _llama),
    "mistral": Family("MistralForCausalLM", _mistral),
    "qwen2": Family("Qwen2ForCausalLM", _qwen2),
    "qwen3": Family("Qwen3ForCausalLM", _qwen3),
    "qwen3_moe": Family("Qwen3MoeForCausalLM", _qwen3_moe, {"attention": _GQA, "dense_mlp": _DENSE, "expert": _EXPERTS}),
    "gemma": Family("GemmaForCausalLM", _gemma, notes=(_GEGLU,)),
    "gemma2": Family("Gemma2ForCausalLM", _gemma2, notes=(_GEGLU, _SOFTCAP)),
    "gemma3_text": Family("Gemma3ForCausalLM", _gemma3, notes=(_GEGLU, _SOFTCAP)),
    "deepseek_v3": Family("DeepseekV3ForCausalLM", _deepseek_v3, _DEEPSEEK_NAMES),
    "kimi_k2": Family("DeepseekV3ForCausalLM", _deepseek_v3, _DEEPSEEK_NAMES),
    "gpt_oss": Family("GptOssForCausalLM", _gpt_oss,
                      {"attention": _GQA, "expert": _layer("mlp.experts.gate_up_proj", "mlp.experts.down_proj")},
                      (_SINKS,)),
    "minimax_m2": Family("MiniMaxM2ForCausalLM", _minimax_m2,
                         {"attention": _GQA, "expert": _layer("block_sparse_moe.experts.0.w1", "block_sparse_moe.experts.0.w2",
                                                              "block_sparse_moe.experts.0.w3")},
                         ("MTP modules counted with DeepSeek-V3's MTP structure (enorm + hnorm + eh_proj + "
                                    "one decoder layer each; assumed, MiniMax does not document it)",)),
}


def family_for(model_type: str) -> Family | None:
    """The reader of ``model_type``, or None when it is not supported."""
    return FAMILIES.get(model_type)
