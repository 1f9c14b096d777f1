"""Memory plan: weights per GPU, KV bytes per token, capacity."""

from __future__ import annotations

import pytest

from rlsim.cost import plan_memory, weight_bytes_per_gpu
from rlsim.cost.memory import kv_bytes_per_token_per_gpu
from rlsim.models import load_model
from rlsim.units import GIB


def test_weights_per_gpu_split_over_tp():
    m = load_model("Qwen3-8B")
    assert weight_bytes_per_gpu(m, 1, "bf16") == pytest.approx(m.total_params * 2, rel=1e-6)
    assert weight_bytes_per_gpu(m, 2, "bf16") == pytest.approx(m.total_params, rel=0.01)
    emb_and_head = m.embedding_params + m.lm_head_params  # kept bf16 in fp8 checkpoints
    assert weight_bytes_per_gpu(m, 1, "fp8") == pytest.approx(m.total_params + emb_and_head, rel=1e-3)


def test_qkv_keeps_one_kv_head_per_rank_beyond_the_kv_head_count():
    from rlsim.cost.memory import local_shape

    m = load_model("Qwen3-235B-A22B")  # 64 heads, 4 KV heads
    qkv = next(w for w in m.linear_weights() if w.name == "qkv_proj")
    assert local_shape(m, qkv, 4) == ((16 + 2 * 1) * 128, 4096)
    assert local_shape(m, qkv, 8) == ((8 + 2 * 1) * 128, 4096)  # KV heads replicated: 1280 columns


def test_kv_heads_replicate_when_tp_exceeds_them():
    m = load_model("Qwen3-235B-A22B")  # 4 KV heads
    assert kv_bytes_per_token_per_gpu(m, 1, "bf16") == 188 * 1024
    assert kv_bytes_per_token_per_gpu(m, 4, "bf16") == 2 * 1 * 128 * 94 * 2
    assert kv_bytes_per_token_per_gpu(m, 8, "bf16") == 2 * 1 * 128 * 94 * 2


def test_mla_latent_cache_is_whole_on_every_rank():
    m = load_model("DeepSeek-V3")
    assert kv_bytes_per_token_per_gpu(m, 8, "bf16") == 576 * 61 * 2
    assert kv_bytes_per_token_per_gpu(m, 8, "fp8") == 576 * 61


def test_kv_capacity_is_what_is_left_in_whole_blocks():
    m = load_model("Qwen3-8B")
    plan = plan_memory(m, 80 * GIB, 0.9, 1, "bf16", "bf16", 2 * GIB, 16)
    left = 80 * GIB * 0.9 - m.total_params * 2 - 2 * GIB
    assert plan.kv_bytes == pytest.approx(left)
    assert plan.num_blocks == int(left // (144 * 1024)) // 16
    assert plan.kv_capacity_tokens == plan.num_blocks * 16
