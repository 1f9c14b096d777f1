"""Build a :class:`ModelArch` from a Hugging Face ``config.json`` dict.

Supported ``model_type`` values: ``llama``, ``qwen3``, ``qwen3_moe``, ``deepseek_v3``; and
EAGLE-3 draft heads, recognised by an ``architectures`` entry containing ``Eagle3`` (the
SpecForge format: ``LlamaForCausalLMEagle3`` with a llama-shaped layer, ``draft_vocab_size``,
and, in rlsim's catalog, ``target_model``).  Keys starting with ``_`` (``_source``,
``_comment``, ``_hf_ids``) are catalog annotations and are ignored here.

Rules (each breach is a one-line ConfigError naming the source, key, value and rule):
* shape fields are positive integers; ``head_dim`` defaults to ``hidden_size // heads``;
  ``num_key_value_heads`` defaults to ``num_attention_heads``;
* ``quantization_config``: absent -> bf16; ``fp8`` with ``weight_block_size`` -> fp8_block,
  without -> fp8; other methods are not supported;
* dense/MoE layers: DeepSeek layer ``i`` is MoE when ``i >= first_k_dense_replace`` and
  ``i % moe_layer_freq == 0``; Qwen3-MoE layer ``i`` is MoE when ``i`` is not in
  ``mlp_only_layers`` and ``(i + 1) % decoder_sparse_step == 0``.  Only the count of dense
  layers is kept (their position does not change cost).
"""

from __future__ import annotations

from typing import Any, Callable

import pydantic

from rlsim.errors import ConfigError, format_location
from rlsim.models.arch import ModelArch

__all__ = ["model_from_hf_config", "SUPPORTED_MODEL_TYPES"]

_MISSING = object()

_DEFAULT_ARCH = {
    "llama": "LlamaForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_DEFAULT_ARCH))


class _Reader:
    """Typed access to one config dict, raising ConfigErrors that name the source and key."""

    def __init__(self, config: dict[str, Any], source: str, model_type: str) -> None:
        self.config, self.source, self.model_type = config, source, model_type

    def error(self, key: str, value: Any, rule: str) -> ConfigError:
        return ConfigError.at(self.source, key, value, rule)

    def int(self, key: str, default: Any = _MISSING, minimum: int = 1) -> Any:
        value = self.config.get(key, _MISSING)
        if value is _MISSING or (value is None and default is not _MISSING):
            if default is _MISSING:
                where = format_location(self.source, key)
                raise ConfigError(f"{where} is missing (required for model_type {self.model_type!r})")
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(key, value, f"must be {kind}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.config.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self.error(key, value, "must be a list of layer indices")
        return value


def model_from_hf_config(config: dict[str, Any], name: str, source: str | None = None) -> ModelArch:
    """Parse an HF ``config.json`` dict (or an EAGLE-3 head dict) into a :class:`ModelArch`.

    ``source`` (the file name) prefixes error messages; it defaults to ``name``.
    """
    where = source or name
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: top level must be a JSON object, got {type(config).__name__}")
    architecture = _architecture(config, where)
    if "eagle3" in architecture.lower():
        fields = _eagle3_fields(_Reader(config, where, "eagle3 head"))
    else:
        fields = _target_fields(config, where)
    fields.setdefault("hf_architecture", architecture or _DEFAULT_ARCH[config["model_type"]])
    try:
        return ModelArch(name=name, **fields)
    except pydantic.ValidationError as err:
        raise _as_config_error(err, where) from None


def _architecture(config: dict[str, Any], where: str) -> str:
    archs = config.get("architectures")
    if archs is None:
        return ""
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise ConfigError.at(where, "architectures", archs, "must be a non-empty list of class names")
    eagle = [a for a in archs if "eagle3" in a.lower()]
    return eagle[0] if eagle else archs[0]


def _target_fields(config: dict[str, Any], where: str) -> dict[str, Any]:
    model_type = config.get("model_type", _MISSING)
    if model_type is _MISSING:
        supported = ", ".join(SUPPORTED_MODEL_TYPES)
        raise ConfigError(f"{format_location(where, 'model_type')} is missing (supported: {supported})")
    if model_type not in _PARSERS:
        supported = ", ".join(SUPPORTED_MODEL_TYPES)
        raise ConfigError.at(where, "model_type", model_type, f"is not supported (supported: {supported})")
    r = _Reader(config, where, model_type)
    return {**_common_fields(r), **_PARSERS[model_type](r), "weight_dtype": _weight_dtype(r)}


def _common_fields(r: _Reader) -> dict[str, Any]:
    """Fields every supported config carries in the same keys."""
    hidden = r.int("hidden_size")
    heads = r.int("num_attention_heads")
    head_dim = r.config.get("head_dim")
    if head_dim is None:
        if hidden % heads:
            rule = f"is not divisible by num_attention_heads = {heads} (and head_dim is missing)"
            raise r.error("hidden_size", hidden, rule)
        head_dim = hidden // heads
    return {
        "hidden_size": hidden,
        "num_hidden_layers": r.int("num_hidden_layers"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.int("num_key_value_heads", default=heads),
        "head_dim": r.int("head_dim", default=head_dim),
        "intermediate_size": r.int("intermediate_size"),
        "vocab_size": r.int("vocab_size"),
        "tie_word_embeddings": r.bool("tie_word_embeddings", default=False),
        "max_position_embeddings": r.int("max_position_embeddings"),
    }


def _llama_fields(r: _Reader) -> dict[str, Any]:
    return {}


def _qwen3_fields(r: _Reader) -> dict[str, Any]:
    return {"qk_norm": True}


def _qwen3_moe_fields(r: _Reader) -> dict[str, Any]:
    layers = r.int("num_hidden_layers")
    experts = r.int("num_experts")
    step = r.int("decoder_sparse_step", default=1)
    dense_only = set(r.int_list("mlp_only_layers"))
    moe_layers = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    return {
        "qk_norm": True,
        "num_experts": experts,
        "num_experts_per_tok": r.int("num_experts_per_tok"),
        "moe_intermediate_size": r.int("moe_intermediate_size"),
        "num_dense_layers": layers - moe_layers,
    }


def _deepseek_v3_fields(r: _Reader) -> dict[str, Any]:
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
    }


_PARSERS: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "llama": _llama_fields,
    "qwen3": _qwen3_fields,
    "qwen3_moe": _qwen3_moe_fields,
    "deepseek_v3": _deepseek_v3_fields,
}


def _eagle3_fields(r: _Reader) -> dict[str, Any]:
    """An EAGLE-3 head: one llama-style decoder layer (no q/k norm, whatever the target)."""
    fields = _common_fields(r)
    target = r.config.get("target_model")
    if target is not None and not isinstance(target, str):
        raise r.error("target_model", target, "must be a model name")
    return {
        **fields,
        "kind": "eagle3_head",
        "draft_vocab_size": r.int("draft_vocab_size", default=fields["vocab_size"]),
        "target_model": target,
        "weight_dtype": _weight_dtype(r),
    }


def _weight_dtype(r: _Reader) -> str:
    quant = r.config.get("quantization_config")
    if quant is None:
        return "bf16"
    if not isinstance(quant, dict):
        raise r.error("quantization_config", quant, "must be a mapping")
    method = quant.get("quant_method")
    if method != "fp8":
        raise r.error("quantization_config.quant_method", method, "is not supported (supported: fp8)")
    return "fp8_block" if quant.get("weight_block_size") else "fp8"


def _as_config_error(err: pydantic.ValidationError, where: str) -> ConfigError:
    """The first pydantic error as ``source: field = value rule``."""
    first = err.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return ConfigError(f"{where}: {cause}")
    path = ".".join(str(p) for p in first["loc"])
    return ConfigError.at(where, path, first.get("input"), first["msg"].lower())
