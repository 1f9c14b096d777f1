"""Build a :class:`ModelArch` from a Hugging Face ``config.json`` dict.

Supported ``model_type`` values: see :data:`SUPPORTED_MODEL_TYPES` and
:mod:`rlsim.models.families` (what each reads and leaves out).  Multimodal wrappers (Kimi-K2.5's
``kimi_k25``, Gemma-3's ``gemma3``, ...) are read through their ``text_config`` when that holds a
supported ``model_type``; the vision tower is not modelled (said in the model's notes).  EAGLE-3
draft heads are recognised by an ``architectures`` entry containing ``Eagle3`` (the SpecForge
format: ``LlamaForCausalLMEagle3`` with a llama-shaped layer, ``draft_vocab_size`` and, in
rlsim's catalog, ``target_model``).  Keys starting with ``_`` (``_source``, ``_comment``,
``_hf_ids``) are catalog annotations and are ignored here.

Rules (each breach is a one-line ConfigError naming the source, key, value and rule):

* shape fields are positive integers; ``head_dim`` defaults to ``hidden_size // heads``;
  ``num_key_value_heads`` defaults to ``num_attention_heads``;
* quantisation: ``quantization_config`` at the top level or in ``text_config``, and an optional
  ModelOpt ``hf_quant_config.json`` beside the config (:mod:`rlsim.models.quant`); absent ->
  bf16;
* dense/MoE layers: DeepSeek layer ``i`` is MoE when ``i >= first_k_dense_replace`` and
  ``i % moe_layer_freq == 0``; Qwen3-MoE layer ``i`` is MoE when ``i`` is not in
  ``mlp_only_layers`` and ``(i + 1) % decoder_sparse_step == 0``.  Only the count of dense
  layers is kept (their position does not change cost); likewise for sliding-window layers.
"""

from __future__ import annotations

from typing import Any

import pydantic

from rlsim.errors import ConfigError, format_location
from rlsim.models._reader import Reader
from rlsim.models.arch import ModelArch
from rlsim.models.families import FAMILIES, ROUTING_NOTE, family_for
from rlsim.models.quant import parse_quantization

__all__ = ["model_from_hf_config", "SUPPORTED_MODEL_TYPES"]

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(FAMILIES))
_MISSING = object()
_VISION_NOTE = "multimodal checkpoint: only the language model (text_config) is modelled, not the vision tower"


def model_from_hf_config(config: dict[str, Any], name: str, source: str | None = None, *,
                         quant_sidecar: dict[str, Any] | None = None, sidecar_source: str | None = None) -> ModelArch:
    """Parse an HF ``config.json`` dict (or an EAGLE-3 head dict) into a :class:`ModelArch`.

    ``source`` (the file name) prefixes error messages; it defaults to ``name``.
    ``quant_sidecar``: the checkpoint's ModelOpt ``hf_quant_config.json`` (read from
    ``sidecar_source``), used where the config has no ``quantization_config``.
    """
    where = source or name
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: top level must be a JSON object, got {type(config).__name__}")
    architecture = _architecture(config, where)
    eagle = "eagle3" in architecture.lower()
    r, module_prefix, notes = _text_reader(config, where, eagle)
    family = FAMILIES["llama"] if eagle else family_for(r.model_type)
    fields = {**_common_fields(r), **family.fields(r)}
    if eagle:
        fields.update(_eagle3_fields(r, fields))
    quant_where = _quant_location(config, r)
    fields["quantization"] = parse_quantization(
        quant_where[0], _module_names(family.names, module_prefix), _group_layers(fields), where,
        path=quant_where[1], sidecar=quant_sidecar, sidecar_where=sidecar_source or "hf_quant_config.json")
    fields["weight_dtype"] = fields["quantization"].dtype
    if fields.get("router_scoring") == "sigmoid":
        notes = notes + (ROUTING_NOTE,)
    fields["notes"] = notes + family.notes + fields["quantization"].notes
    fields["hf_architecture"] = architecture or family.architecture
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


def _text_reader(config: dict[str, Any], where: str, eagle: bool) -> tuple[Reader, str, tuple[str, ...]]:
    """The reader of the language model's fields (``text_config`` for a multimodal wrapper), the
    module-name prefix its checkpoint uses, and notes."""
    if eagle:
        return Reader(config, where, "eagle3 head"), "", ()
    model_type = config.get("model_type", _MISSING)
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    if model_type is _MISSING:
        raise ConfigError(f"{format_location(where, 'model_type')} is missing (supported: {supported})")
    if family_for(model_type) is not None:
        return Reader(config, where, model_type), "", ()
    text = config.get("text_config")
    if isinstance(text, dict) and family_for(text.get("model_type")) is not None:
        return Reader(text, where, text["model_type"], "text_config."), "language_model.", (_VISION_NOTE,)
    if isinstance(text, dict):
        raise ConfigError.at(where, "text_config.model_type", text.get("model_type"), f"is not supported (supported: {supported})")
    raise ConfigError.at(where, "model_type", model_type, f"is not supported (supported: {supported})")


def _quant_location(config: dict[str, Any], r: Reader) -> tuple[Any, str]:
    """The ``quantization_config`` to read (top level first, then the text config's) and its path."""
    if config.get("quantization_config") is not None:
        return config["quantization_config"], "quantization_config"
    if r.prefix and r.config.get("quantization_config") is not None:
        return r.config["quantization_config"], f"{r.prefix}quantization_config"
    return None, "quantization_config"


def _module_names(names: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {g: [prefix + t for t in ts] for g, ts in names.items()}


def _group_layers(fields: dict[str, Any]) -> dict[str, range]:
    """Layer indices carrying each group of linear weights (dense layers first, as DeepSeek)."""
    layers = fields["num_hidden_layers"]
    experts = fields.get("num_experts", 0)
    dense = fields.get("num_dense_layers", 0 if experts else layers)
    moe = range(dense, layers) if experts else range(0)
    return {"attention": range(layers), "dense_mlp": range(dense), "expert": moe,
            "shared_expert": moe if fields.get("num_shared_experts") else range(0),
            "draft_fc": range(1) if fields.get("kind") == "eagle3_head" else range(0)}


def _common_fields(r: Reader) -> dict[str, Any]:
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


def _eagle3_fields(r: Reader, fields: dict[str, Any]) -> dict[str, Any]:
    """An EAGLE-3 head: one llama-style decoder layer (no q/k norm, whatever the target)."""
    target = r.config.get("target_model")
    if target is not None and not isinstance(target, str):
        raise r.error("target_model", target, "must be a model name")
    return {"kind": "eagle3_head", "draft_vocab_size": r.int("draft_vocab_size", default=fields["vocab_size"]),
            "target_model": target}


def _as_config_error(err: pydantic.ValidationError, where: str) -> ConfigError:
    """The first pydantic error as ``source: field = value rule``."""
    first = err.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return ConfigError(f"{where}: {cause}")
    path = ".".join(str(p) for p in first["loc"])
    return ConfigError.at(where, path, first.get("input"), first["msg"].lower())
