"""A flat, printable summary of a :class:`ModelArch` for ``rlsim models show``.

Parameter counts are in billions (3 decimals); weights in decimal GB as stored (each linear
group at its quantisation dtype, scales included) and with every parameter at bf16 / fp8; KV
cache in bytes per token over the full-attention layers (plus the sliding layers' per-sequence
cap where the model has sliding-window layers); ``notes``: what the model has that is not timed.
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
    out["quantization"] = _quantization(model)
    out["weight_gb"] = {"as_stored": round(model.weight_bytes() / GB, 2),
                        **{d: round(model.weight_bytes(d) / GB, 2) for d in ("bf16", "fp8")}}
    out["kv_values_per_token_per_layer"] = model.kv_values_per_token_per_layer
    out["kv_bytes_per_token"] = {d: _num(model.kv_bytes_per_token(d)) for d in ("bf16", "fp8")}
    if model.num_sliding_layers:
        out["sliding_kv_bytes_per_sequence"] = {d: _num(model.sliding_kv_bytes_per_sequence(d)) for d in ("bf16", "fp8")}
    if model.notes:
        out["notes"] = list(model.notes)
    source = catalog_source(model.name)
    if source:
        out["source"] = source
    return out


def _quantization(m: ModelArch) -> dict[str, Any]:
    q = m.quantization
    groups = q.groups()
    present = {"attention", "head"} | ({"dense_mlp"} if m.num_dense_layers else set())
    if m.is_moe:
        present |= {"expert", "router"} | ({"shared_expert"} if m.num_shared_experts else set())
    if m.is_draft_head:
        present.add("draft_fc")
    out: dict[str, Any] = {"method": q.method, **{g: d for g, d in groups.items() if g in present}}
    if q.kv_cache_dtype:
        out["kv_cache_dtype"] = q.kv_cache_dtype
    if q.weight_only:
        out["weight_only"] = True
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
    if m.num_sliding_layers:
        shape.update(sliding_window=m.sliding_window, sliding_layers=m.num_sliding_layers,
                     full_attention_layers=m.num_full_attention_layers)
    if m.attention_sinks:
        shape["attention_sinks"] = True
    if m.is_moe:
        shape["router_scoring"] = m.router_scoring + (" + score bias" if m.router_score_bias else "")
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
