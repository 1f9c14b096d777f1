"""Per-GPU memory model of one engine: weights, KV cache capacity, activation reserve.

``KV capacity = HBM x gpu_memory_utilization - weights/GPU - activation reserve`` (DESIGN 4),
the same accounting vLLM does at start-up (it profiles the activation peak instead of assuming
it).  Tensor parallelism splits column/row-parallel weights, the vocabulary-parallel embedding
and LM head, and the experts (TP splits each expert, EP splits the set of experts: both divide
expert bytes by the group size).  Replicated weights (MLA down-projections, routers) are whole
on every GPU.  GQA KV heads are split across TP ranks, replicated when TP exceeds them;
the MLA latent cache is replicated on every TP rank (vLLM's MLA backends).  Each linear weight
is stored at its group's dtype (:meth:`rlsim.models.ModelArch.quantization_for`: the checkpoint's
scheme, or a uniform override), block / group scales included.

Sliding-window layers (gpt-oss, Gemma-2/3, Mistral) keep at most ``sliding_window`` tokens per
sequence (vLLM V1's hybrid KV-cache manager frees blocks that leave the window), so the per-token
KV cost counts the full-attention layers only; a sequence's sliding-layer KV
(:func:`sliding_kv_bytes_per_seq_per_gpu`, bounded) is not in the per-token figure -- the
engine's token-based KV accounting slightly overstates capacity for such models (gpt-oss-120b:
<= 4.7 MB per sequence at bf16, TP 1).  A model with *only* sliding layers is charged per token
over all its layers (conservative: its sequences hold at most the window).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlsim.units import dtype_bytes

__all__ = ["MemoryPlan", "plan_memory", "weight_bytes_per_gpu", "kv_bytes_per_token_per_gpu",
           "sliding_kv_bytes_per_seq_per_gpu"]


def local_shape(arch, w, tp: int) -> tuple[int, int]:
    """(n, k) of linear weight ``w`` on one TP rank.

    Column-parallel weights split their outputs, row-parallel their inputs, replicated ones are
    whole.  A GQA ``qkv_proj`` keeps at least one KV head per rank (vLLM replicates KV heads
    when TP exceeds their number)."""
    if w.name == "qkv_proj" and arch.attention_kind != "mla" and w.group == "attention":
        heads = arch.num_attention_heads // tp
        return (heads + 2 * kv_heads_per_gpu(arch, tp)) * arch.head_dim, w.in_features
    if w.parallel == "column":
        return max(1, w.out_features // tp), w.in_features
    if w.parallel == "row":
        return w.out_features, max(1, w.in_features // tp)
    return w.out_features, w.in_features


def head_dtype(weight_dtype: str) -> str:
    """dtype of the embedding and LM head: bf16 unless the model is bf16/fp16 already
    (vLLM's quantised checkpoints keep them unquantised)."""
    return weight_dtype if weight_dtype in ("bf16", "fp16") else "bf16"


def weight_bytes_per_gpu(arch, tp: int, dtype: str | None, expert_shards: int | None = None) -> float:
    """Weight bytes resident on one GPU of a TP (or TP = EP) group.

    Linear weights are at their group's dtype under ``dtype`` (None or the model's own
    ``weight_dtype``: the checkpoint's scheme; another dtype: every linear layer at it, LM head
    bf16) and split as :func:`local_shape` says; experts divide over the group either way (TP
    splits each expert, EP splits the set) -- over ``expert_shards`` GPUs when given (expert
    parallelism over DP x TP: each DP rank's GPUs hold 1/dp of the TP-split experts); the
    embedding is vocabulary-parallel at the head's dtype; norms and biases (small vectors) are
    bf16 and replicated.
    """
    quant = arch.quantization_for(dtype)
    total = 0.0
    linear_params = 0
    extra = 1.0 if expert_shards is None else tp / expert_shards
    for w in arch.linear_weights():
        if w.shares_storage:
            continue
        n, k = local_shape(arch, w, tp)
        share = extra if w.group == "expert" else 1.0
        total += share * n * k * w.layers * w.copies_per_layer * dtype_bytes(quant.dtype_of(w.group))
        linear_params += w.params
    emb = arch.embedding_params
    other = arch.total_params - linear_params - emb
    return total + emb / tp * dtype_bytes(quant.head) + max(other, 0) * 2.0


def kv_heads_per_gpu(arch, tp: int) -> int:
    """GQA KV heads held by one TP rank (replicated when TP > KV heads)."""
    return max(1, arch.num_key_value_heads // tp)


def kv_values_per_token_per_layer_per_gpu(arch, tp: int) -> int:
    """Cached values per token per layer on one GPU."""
    if arch.attention_kind == "mla":
        return arch.kv_lora_rank + arch.qk_rope_head_dim
    return 2 * kv_heads_per_gpu(arch, tp) * arch.head_dim


def kv_bytes_per_token_per_gpu(arch, tp: int, kv_dtype: str) -> float:
    """KV bytes one token occupies on one GPU: its full-attention layers (all layers for a model
    with only sliding-window layers; see the module docstring)."""
    layers = arch.num_full_attention_layers or arch.num_hidden_layers
    return kv_values_per_token_per_layer_per_gpu(arch, tp) * layers * dtype_bytes(kv_dtype)


def sliding_kv_bytes_per_seq_per_gpu(arch, tp: int, kv_dtype: str, block_size: int = 16) -> float:
    """Most KV bytes one sequence holds on one GPU in the sliding-window layers: the window
    rounded up to whole blocks plus the block being filled (vLLM V1's sliding-window manager);
    0 without sliding layers (or when they are charged per token, see the module docstring)."""
    if not arch.num_sliding_layers or not arch.num_full_attention_layers:
        return 0.0
    tokens = (-(-arch.sliding_window // block_size) + 1) * block_size
    return kv_values_per_token_per_layer_per_gpu(arch, tp) * arch.num_sliding_layers * tokens * dtype_bytes(kv_dtype)


@dataclass(frozen=True)
class MemoryPlan:
    """How one GPU's HBM is used by one engine rank."""

    hbm_bytes: float
    usable_bytes: float
    weight_bytes: float
    reserve_bytes: float
    kv_bytes: float
    kv_bytes_per_token: float
    kv_capacity_tokens: int
    num_blocks: int
    block_size: int


def plan_memory(
    arch,
    hbm_bytes: float,
    gpu_memory_utilization: float,
    tp: int,
    weight_dtype: str,
    kv_dtype: str,
    reserve_bytes: float,
    block_size: int,
    extra_weight_bytes: float = 0.0,
    extra_kv_bytes_per_token: float = 0.0,
    expert_shards: int | None = None,
) -> MemoryPlan:
    """Plan one GPU's memory; ``kv_bytes`` may be negative (the caller reports it)."""
    usable = hbm_bytes * gpu_memory_utilization
    weights = weight_bytes_per_gpu(arch, tp, weight_dtype, expert_shards) + extra_weight_bytes
    kv_bytes = usable - weights - reserve_bytes
    per_tok = kv_bytes_per_token_per_gpu(arch, tp, kv_dtype) + extra_kv_bytes_per_token
    tokens = int(kv_bytes // per_tok) if kv_bytes > 0 else 0
    blocks = tokens // block_size
    return MemoryPlan(
        hbm_bytes=hbm_bytes,
        usable_bytes=usable,
        weight_bytes=weights,
        reserve_bytes=reserve_bytes,
        kv_bytes=kv_bytes,
        kv_bytes_per_token=per_tok,
        kv_capacity_tokens=blocks * block_size,
        num_blocks=blocks,
        block_size=block_size,
    )
