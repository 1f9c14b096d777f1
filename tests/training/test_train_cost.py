"""Trainer step cost: hand-computed FLOPs and times (DESIGN 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlsim.hardware import load_profile, ops
from rlsim.models import load_model
from rlsim.training import (
    TrainingConfig,
    attention_flops_coeff,
    dp_collective_time_s,
    forward_flops,
    matmul_params,
    train_step_cost,
    validate_layout,
)

# Qwen3-8B (HF config): H=4096, L=36, 32 heads x 128, 8 KV heads, I=12288, V=151936, untied.
QKV = 4096 * (32 + 2 * 8) * 128          # 25,165,824
O_PROJ = 4096 * 4096                     # 16,777,216
MLP = 3 * 4096 * 12288                   # 150,994,944
LM_HEAD = 4096 * 151936                  # 622,329,856
N8B = 36 * (QKV + O_PROJ + MLP) + LM_HEAD  # 7,568,097,280 GEMM weights per token
A8B = 4 * 36 * 32 * 128                  # 589,824: causal attention FLOPs = A * s^2 / 2
TOTAL8B = 8_190_735_360

# 64 sequences of 2048 tokens: forward FLOPs per sequence = 2 N s + A s^2 / 2
#   = 30,998,926,458,880 + 1,236,950,581,248 = 32,235,877,040,128
F_SEQ = 32_235_877_040_128.0
F_BATCH = 64 * F_SEQ                      # 2,063,096,130,568,192
SEQ = np.full(64, 2048)


@pytest.fixture(scope="module")
def q8():
    return load_model("Qwen3-8B")


def layout(arch, hw, gpus=32, **cfg):
    return validate_layout(arch, TrainingConfig(**cfg), gpus, hw, "s.yaml")


def test_flops_constants(q8):
    assert matmul_params(q8) == N8B == 7_568_097_280
    assert matmul_params(q8) == q8.active_params - q8.embedding_params - 36 * (2 * 4096 + 2 * 128) - 4096
    assert attention_flops_coeff(q8) == A8B
    f = forward_flops(q8, [2048, 1000])
    assert f[0] == F_SEQ
    assert f[1] - 2 * N8B * 1000 == pytest.approx(A8B * 1000**2 / 2)


def test_moe_counts_topk_experts():
    m = load_model("Qwen3-235B-A22B")
    # active = total less the unrouted experts; GEMM weights = active less embedding and norms
    norms = m.num_hidden_layers * m.norm_params_per_layer + m.final_norm_params
    assert matmul_params(m) == m.active_params - m.embedding_params - norms


@pytest.mark.parametrize(
    "hw_name, peak, expected_lp_s",
    [
        # 2,063,096,130,568,192 / (32 x 2.5e15 x 0.4) = 0.064471754080256 s
        ("gb200", 2.5e15, 0.064471754080256),
        # 2,063,096,130,568,192 / (32 x 989e12 x 0.4) = 0.1629720780592922 s
        ("h100_sxm", 989e12, 0.1629720780592922),
    ],
)
def test_hand_computed_times_qwen8b_32_gpus(q8, hw_name, peak, expected_lp_s):
    hw = load_profile(hw_name)
    assert hw.peak_flops("bf16") == peak
    c = train_step_cost(q8, hw, layout(q8, hw, mfu=0.4), SEQ, reference_logprob=False)
    assert c.policy_logprob_s == pytest.approx(expected_lp_s, rel=1e-12)
    assert c.reference_logprob_s == 0.0
    assert c.forward_backward_s == pytest.approx(3 * expected_lp_s, rel=1e-12)
    assert c.pipeline_bubble_s == 0.0
    assert c.tokens == 64 * 2048 and c.padded_tokens == c.tokens and c.num_optimizer_steps == 1
    assert c.flops == pytest.approx(4 * F_BATCH, rel=1e-12)
    assert c.logprob_s == c.policy_logprob_s
    assert c.train_s == pytest.approx(c.forward_backward_s + c.optimizer_s + c.grad_comm_s + c.pipeline_bubble_s)
    assert c.total_s == pytest.approx(c.logprob_s + c.train_s)
    assert sum(c.breakdown().values()) == pytest.approx(c.total_s)
    assert c.mfu == 0.4 and c.mfu_source == "rl.training.mfu"


def test_logprob_train_ratio_and_checkpointing(q8):
    hw = load_profile("gb200")
    seq = np.array([300, 1200, 4000, 777] * 16)
    base = train_step_cost(q8, hw, layout(q8, hw), seq, reference_logprob=False)
    ckpt = train_step_cost(q8, hw, layout(q8, hw, activation_checkpointing=True), seq, reference_logprob=False)
    assert base.forward_backward_s / base.policy_logprob_s == pytest.approx(3.0, rel=1e-12)
    assert ckpt.forward_backward_s / ckpt.policy_logprob_s == pytest.approx(4.0, rel=1e-12)
    # without attention (linear term only) the FLOPs are 2NT : 6NT : 8NT
    lin = 2 * N8B * seq.sum()
    attn = A8B * (seq.astype(float) ** 2).sum() / 2
    assert base.logprob_flops == pytest.approx(lin + attn)
    assert base.train_flops == pytest.approx(3 * (lin + attn))
    assert ckpt.train_flops == pytest.approx(4 * (lin + attn))


def test_reference_pass_doubles_logprob(q8):
    hw = load_profile("gb200")
    lay = layout(q8, hw)
    a = train_step_cost(q8, hw, lay, SEQ, reference_logprob=False)
    b = train_step_cost(q8, hw, lay, SEQ, reference_logprob=True)
    assert b.reference_logprob_s == a.policy_logprob_s
    assert b.logprob_s == pytest.approx(2 * a.logprob_s)
    assert b.train_s == a.train_s
    assert b.total_s == pytest.approx(a.total_s + a.policy_logprob_s)


def test_logprob_mfu_factor(q8):
    hw = load_profile("gb200")
    a = train_step_cost(q8, hw, layout(q8, hw, mfu=0.4), SEQ, reference_logprob=False)
    b = train_step_cost(q8, hw, layout(q8, hw, mfu=0.4, logprob_mfu_factor=1.25), SEQ, reference_logprob=False)
    assert b.policy_logprob_s == pytest.approx(a.policy_logprob_s / 1.25)
    assert b.forward_backward_s == a.forward_backward_s


@pytest.mark.parametrize("pp, m", [(2, 4), (4, 8)])
def test_pipeline_bubble_formula(q8, pp, m):
    """32 GPUs, tp=1: dp = 32/pp; 64 unpacked sequences, micro-batch 1 -> m = 64/dp per rank."""
    hw = load_profile("gb200")
    lay = layout(q8, hw, pipeline_parallel_size=pp, sequence_packing=False)
    assert lay.dp == 32 // pp and 64 // lay.dp == m
    c = train_step_cost(q8, hw, lay, SEQ, reference_logprob=False)
    assert c.micro_batches_per_step == m
    assert c.pipeline_bubble_s == pytest.approx(c.forward_backward_s * (pp - 1) / m)
    frac = c.pipeline_bubble_s / (c.pipeline_bubble_s + c.forward_backward_s)
    assert frac == pytest.approx((pp - 1) / (m + pp - 1))
    # the logprob pass has its own bubble, inside policy_logprob_s
    ideal_lp = F_BATCH / (32 * hw.peak_flops("bf16") * lay.mfu)
    assert c.logprob_bubble_s == pytest.approx(ideal_lp * (pp - 1) / m)
    assert c.policy_logprob_s == pytest.approx(ideal_lp + c.logprob_bubble_s)


def test_packed_micro_batches_count_bins(q8):
    """Packed: m = ceil(tokens per DP rank / (micro_batch x max_sequence_tokens))."""
    hw = load_profile("gb200")
    lay = layout(q8, hw, pipeline_parallel_size=2, train_micro_batch_size=2)  # dp = 16
    c = train_step_cost(q8, hw, lay, SEQ, reference_logprob=False, max_sequence_tokens=4096)
    assert c.micro_batches_per_step == math.ceil(64 * 2048 / 16 / (2 * 4096))  # 1
    c = train_step_cost(q8, hw, lay, SEQ, reference_logprob=False, max_sequence_tokens=1024)
    assert c.micro_batches_per_step == 4


def test_padding_without_packing(q8):
    hw = load_profile("gb200")
    seq = np.array([100, 300, 200, 50])
    packed = train_step_cost(q8, hw, layout(q8, hw, gpus=1), seq, reference_logprob=False)
    padded = train_step_cost(
        q8, hw, layout(q8, hw, gpus=1, sequence_packing=False, train_micro_batch_size=2), seq, reference_logprob=False
    )
    assert packed.padded_tokens == packed.tokens == 650
    assert padded.tokens == 650 and padded.padded_tokens == 300 + 300 + 200 + 200
    assert padded.train_flops == pytest.approx(3 * forward_flops(q8, [300, 300, 200, 200]).sum())


def test_sequence_cannot_split_across_dp_ranks(q8):
    """One sequence on 32 data-parallel GPUs runs on one replica (tp*pp*cp = 1 GPU)."""
    hw = load_profile("gb200")
    c = train_step_cost(q8, hw, layout(q8, hw, mfu=0.4), [2048], reference_logprob=False)
    assert c.policy_logprob_s == pytest.approx(F_SEQ / (1 * 2.5e15 * 0.4))


def test_optimizer_steps_and_optimizer_bytes(q8, pinned):
    """Distributed optimizer: total_params / num_gpus per GPU x 16 B / HBM bandwidth, per step."""
    hw = pinned("gb200")  # elementwise mem_eff 1, latency 0
    lay = layout(q8, hw, train_global_batch_size=32)
    assert lay.optimizer_params_per_gpu == pytest.approx(TOTAL8B / 32)
    c = train_step_cost(q8, hw, lay, SEQ, reference_logprob=False)
    assert c.num_optimizer_steps == 2
    # 8,190,735,360 / 32 x 16 B / 8e12 B/s = 0.00051192096 s per optimizer step
    assert c.optimizer_s == pytest.approx(2 * 0.00051192096, rel=1e-12)
    one = train_step_cost(q8, hw, layout(q8, hw), SEQ, reference_logprob=False)
    assert one.num_optimizer_steps == 1
    assert c.grad_comm_s == pytest.approx(2 * one.grad_comm_s)
    assert c.forward_backward_s == pytest.approx(one.forward_backward_s)  # same FLOPs, balanced
    bytes24 = train_step_cost(q8, hw, layout(q8, hw, optimizer_bytes_per_param=24.0), SEQ, reference_logprob=False)
    assert bytes24.optimizer_s == pytest.approx(one.optimizer_s * 1.5)


def test_moe_optimizer_shard_is_params_over_gpus():
    m = load_model("Qwen3-235B-A22B")
    hw = load_profile("gb200")
    lay = validate_layout(
        m, TrainingConfig(tensor_parallel_size=4, expert_parallel_size=16, expert_tensor_parallel_size=1), 64, hw, None
    )
    assert (lay.dp, lay.edp) == (16, 4)
    assert lay.optimizer_params_per_gpu == pytest.approx(m.total_params / 64)


def test_dp_comm_in_nvlink_domain_exposed_fraction(q8, pinned):
    """GB200, 32 GPUs, tp=1: reduce-scatter + all-gather of 2 B x 8,190,735,360 over 32 GPUs in
    the NVL72 domain, each 10 us + nbytes x 31/32 / (900 GB/s x 0.5); 30 % exposed."""
    hw = pinned("gb200")
    c = train_step_cost(q8, hw, layout(q8, hw), SEQ, reference_logprob=False)
    nbytes = 2 * TOTAL8B
    total = 2 * (10e-6 + nbytes * 31 / 32 / (900e9 * 0.5))  # 0.0705513322666... s
    assert c.grad_comm_total_s == pytest.approx(total, rel=1e-12)
    assert c.grad_comm_s == pytest.approx(0.3 * total, rel=1e-12)
    hidden = train_step_cost(q8, hw, layout(q8, hw, dp_comm_overlap_frac=1.0), SEQ, reference_logprob=False)
    assert hidden.grad_comm_s == 0.0 and hidden.grad_comm_total_s == c.grad_comm_total_s
    exposed = train_step_cost(q8, hw, layout(q8, hw, dp_comm_overlap_frac=0.0), SEQ, reference_logprob=False)
    assert exposed.grad_comm_s == pytest.approx(total)


def test_dp_comm_strided_group_crosses_nodes_on_nic(q8, pinned):
    """H100 HGX, 32 GPUs, tp=8: the 4 DP members sit on 4 nodes (stride 8 = the node) -> a pure
    scale-out ring: 20 us + nbytes x 3/4 / (50 GB/s x 0.5), nbytes = 2 x params per GPU."""
    hw = pinned("h100_sxm")
    lay = layout(q8, hw, tensor_parallel_size=8)
    assert lay.dp == 4 and lay.dense_params_per_gpu == pytest.approx(TOTAL8B / 8)
    c = train_step_cost(q8, hw, lay, SEQ, reference_logprob=False)
    nbytes = 2 * TOTAL8B / 8
    assert c.grad_comm_total_s == pytest.approx(2 * (20e-6 + nbytes * 3 / 4 / (50e9 * 0.5)), rel=1e-12)
    # NVLink-only view would be ~9x faster: the helper must not treat the group as one node
    assert c.grad_comm_total_s > 5 * 2 * ops.collective_time_s(hw, "reduce_scatter", nbytes, 4)


def test_dp_collective_uses_helper_when_contiguous(pinned):
    hw = pinned("h100_sxm")
    for n in (2, 8, 32):
        assert dp_collective_time_s(hw, "all_gather", 1e9, n, 1) == ops.collective_time_s(hw, "all_gather", 1e9, n)
    assert dp_collective_time_s(hw, "all_gather", 1e9, 2, 4) == ops.collective_time_s(hw, "all_gather", 1e9, 2)
    assert dp_collective_time_s(hw, "all_gather", 1e9, 1, 8) == 0.0


def test_bad_sequences_are_rejected(q8):
    hw = load_profile("gb200")
    lay = layout(q8, hw)
    with pytest.raises(ValueError):
        train_step_cost(q8, hw, lay, [], reference_logprob=False)
    with pytest.raises(ValueError):
        train_step_cost(q8, hw, lay, [10, 0], reference_logprob=False)
    with pytest.raises(ValueError):
        train_step_cost(q8, hw, lay, [10, 20], reference_logprob=False, prompt_tokens=[5, 30])
    c = train_step_cost(q8, hw, lay, [10, 20], reference_logprob=False, prompt_tokens=[5, 8])
    assert c.prompt_tokens == 13 and c.tokens == 30
