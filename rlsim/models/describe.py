"""A flat, printable summary of a :class:`ModelArch` for ``rlsim models show``.

Parameter counts are in billions (3 decimals), weights in decimal GB (params x dtype bytes,
scales ignored), KV-cache in bytes per token over all main-model layers.
"""

from __future__ import annotations

from typing import Any

from rlsim.models.arch import ModelArch
from rlsim.models.registry import catalog_source
from rlsim.units import GB

__all__ = ["describe"]


def describe(model: ModelArch) -> dict[str, Any]:
    """Ordered summary dict: identity, shape, MoE/MLA details, params, weight and KV bytes."""
    out: dict[str, Any] = {
        "name": model.name,
        "kind": model.kind,
        "hf_architecture": model.hf_architecture,
    }
    if model.target_model:
        out["target_model"] = model.target_model
    out.update(_shape(model))
    out.update(_params(model))
    out["weight_dtype"] = model.weight_dtype
    out["weight_gb"] = {d: round(model.weight_bytes(d) / GB, 2) for d in ("bf16", "fp8")}
    out["kv_values_per_token_per_layer"] = model.kv_values_per_token_per_layer
    out["kv_bytes_per_token"] = {d: _num(model.kv_bytes_per_token(d)) for d in ("bf16", "fp8")}
    source = catalog_source(model.name)
    if source:
        out["source"] = source
    return out


def _shape(m: ModelArch) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "layers": m.num_hidden_layers,
        "hidden_size": m.hidden_size,
        "attention": m.attention_kind,
        "heads": m.num_attention_heads,
        "kv_heads": m.num_key_value_heads,
        "head_dim": m.head_dim,
        "intermediate_size": m.intermediate_size,
        "vocab_size": m.vocab_size,
        "tie_word_embeddings": m.tie_word_embeddings,
        "max_position_embeddings": m.max_position_embeddings,
    }
    if m.draft_vocab_size is not None:
        shape["draft_vocab_size"] = m.draft_vocab_size
    if m.attention_kind == "mla":
        for field in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            shape[field] = getattr(m, field)
    if m.is_moe:
        shape.update(
            experts=m.num_experts, experts_per_tok=m.num_experts_per_tok, shared_experts=m.num_shared_experts,
            moe_intermediate_size=m.moe_intermediate_size, dense_layers=m.num_dense_layers, moe_layers=m.num_moe_layers,
        )
    if m.num_mtp_layers:
        shape["mtp_layers"] = m.num_mtp_layers
    return shape


def _params(m: ModelArch) -> dict[str, Any]:
    params = {
        "total_params_b": _b(m.total_params),
        "active_params_b": _b(m.active_params),
        "non_embedding_params_b": _b(m.non_embedding_params),
        "embedding_params_b": _b(m.embedding_params),
        "lm_head_params_b": _b(m.lm_head_params),
    }
    if m.num_mtp_layers:
        params["mtp_params_b"] = _b(m.mtp_params)
    return params


def _b(params: int) -> float:
    return round(params / 1e9, 3)


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x
