"""Trainer layout validation: exact one-line messages, parallel sizes, per-GPU memory."""

from __future__ import annotations

import pydantic
import pytest

from rlsim.errors import ConfigError, InfeasibleConfig
from rlsim.hardware import load_profile
from rlsim.models import load_model
from rlsim.training import TrainingConfig, param_split, validate_layout
from rlsim.training.layout import activation_bytes_per_token_per_layer

GIB = 2**30


@pytest.fixture(scope="module")
def q8():
    return load_model("Qwen3-8B")


@pytest.fixture(scope="module")
def q235():
    return load_model("Qwen3-235B-A22B")


@pytest.fixture(scope="module")
def gb200():
    return load_profile("gb200")


def check(arch, hw, gpus, **cfg):
    return validate_layout(arch, TrainingConfig(**cfg), gpus, hw, "s.yaml")


def message(arch, hw, gpus, **cfg) -> str:
    with pytest.raises(ConfigError) as exc:
        check(arch, hw, gpus, **cfg)
    return str(exc.value)


def test_tp_not_dividing_heads(q8, gb200):
    assert message(q8, gb200, 32, tensor_parallel_size=3) == (
        "s.yaml: rl.training.tensor_parallel_size = 3 does not divide num_attention_heads = 32"
    )


def test_tp_not_dividing_kv_heads(q8, gb200):
    assert message(q8, gb200, 32, tensor_parallel_size=16) == (
        "s.yaml: rl.training.tensor_parallel_size = 16 does not divide num_key_value_heads = 8 "
        "(Megatron splits query groups over TP)"
    )


def test_pp_not_dividing_layers(q8, gb200):
    assert message(q8, gb200, 32, pipeline_parallel_size=5) == (
        "s.yaml: rl.training.pipeline_parallel_size = 5 does not divide num_hidden_layers = 36"
    )


def test_layout_not_dividing_gpus(q8, gb200):
    assert message(q8, gb200, 32, tensor_parallel_size=4, pipeline_parallel_size=3) == (
        "s.yaml: rl.training.tensor_parallel_size * pipeline_parallel_size * context_parallel_size = 12 "
        "does not divide rl.training.num_gpus = 32"
    )
    with pytest.raises(ConfigError) as exc:
        validate_layout(q8, TrainingConfig(tensor_parallel_size=4, pipeline_parallel_size=3), 32, gb200, "s.yaml",
                        num_gpus_path="rollout.num_gpus")
    assert str(exc.value).endswith("= 12 does not divide rollout.num_gpus = 32")


def test_ep_on_dense_model(q8, gb200):
    assert message(q8, gb200, 32, expert_parallel_size=2) == (
        "s.yaml: rl.training.expert_parallel_size = 2 needs an MoE model (Qwen3-8B has no experts)"
    )


def test_ep_not_dividing_experts(q235, gb200):
    assert message(q235, gb200, 96, tensor_parallel_size=4, expert_parallel_size=48, expert_tensor_parallel_size=1) == (
        "s.yaml: rl.training.expert_parallel_size = 48 does not divide num_experts = 128"
    )


def test_ep_must_fold_into_tp_cp_dp(q235, gb200):
    # Megatron default expert_tensor_parallel_size = tp = 4: ep * etp = 64 does not divide 32
    assert message(q235, gb200, 32, tensor_parallel_size=4, expert_parallel_size=16) == (
        "s.yaml: rl.training.expert_parallel_size = 16 x expert_tensor_parallel_size = 4 does not divide "
        "tp*cp*dp = 32 (rl.training.num_gpus / pipeline_parallel_size; Megatron folds experts into those ranks)"
    )
    lay = check(q235, gb200, 32, tensor_parallel_size=4, expert_parallel_size=16, expert_tensor_parallel_size=1)
    assert (lay.tp, lay.dp, lay.ep, lay.etp, lay.edp) == (4, 8, 16, 1, 2)
    assert lay.expert_dp_group_stride == 16 and lay.dp_group_stride == 4


def test_global_batch_must_split_over_dp(q8, gb200):
    assert message(q8, gb200, 32, train_global_batch_size=48) == (
        "s.yaml: rl.training.train_global_batch_size = 48 is not a multiple of the data-parallel size = 32"
    )
    assert message(q8, gb200, 32, train_global_batch_size=96, sequence_packing=False, train_micro_batch_size=2) == (
        "s.yaml: rl.training.train_global_batch_size = 96 is not a multiple of "
        "train_micro_batch_size x the data-parallel size = 64"
    )


def test_logprob_mfu_above_one(q8, gb200):
    assert message(q8, gb200, 32, mfu=0.5, logprob_mfu_factor=2.5) == (
        "s.yaml: rl.training.logprob_mfu_factor = 2.5 makes the logprob MFU 1.25 > 1 (training MFU 0.5 from rl.training.mfu)"
    )


def test_model_does_not_fit(q8):
    hw = load_profile("h100_sxm")
    # one GPU: weights 2 B + grads 2 B + optimizer 12 B unsharded = 16 x 8,190,735,360 B = 122.1 GiB > 0.9 x 80
    with pytest.raises(InfeasibleConfig) as exc:
        check(q8, hw, 1)
    assert str(exc.value) == (
        "s.yaml: rl.training.tensor_parallel_size = 1 with pipeline_parallel_size = 1, context_parallel_size = 1, "
        "expert_parallel_size = 1 needs 122.1 GiB per GPU (weights 15.3 + grads 15.3 + optimizer 91.5 + "
        "activations 0.0) > 72.0 GiB usable of 80.0 GiB HBM on h100_sxm; raise tensor/pipeline/expert "
        "parallelism or the GPU count"
    )
    # 32 GPUs, 16k-token micro-batches without recompute: activations 79.0 GiB do not fit either
    with pytest.raises(InfeasibleConfig) as exc:
        validate_layout(q8, TrainingConfig(), 32, hw, "s.yaml", max_sequence_tokens=16384)
    assert "needs 112.4 GiB per GPU (weights 15.3 + grads 15.3 + optimizer 2.9 + activations 79.0)" in str(exc.value)
    assert str(exc.value).endswith("or the GPU count, or enable activation_checkpointing")
    # ... and fit with activation checkpointing
    lay = validate_layout(q8, TrainingConfig(activation_checkpointing=True), 32, hw, "s.yaml", max_sequence_tokens=16384)
    assert lay.total_bytes_per_gpu < 0.9 * 80 * GIB


def test_memory_hand_computed(q8, gb200):
    lay = check(q8, gb200, 32)
    total = 8_190_735_360
    assert lay.weight_bytes_per_gpu == pytest.approx(2 * total)
    assert lay.grad_bytes_per_gpu == pytest.approx(2 * total)
    assert lay.optimizer_bytes_per_gpu == pytest.approx(12 * total / 32)
    assert lay.activation_bytes_per_gpu == 0.0 and not lay.activations_counted
    # activations per token per layer (tp=1, SP): 2 x [4H + (q+k+v) + attn out + 3 I]
    a = 2 * (4 * 4096 + (32 + 16) * 128 + 32 * 128 + 3 * 12288)
    assert a == 126_976 == activation_bytes_per_token_per_layer(q8, 1, True)
    lay = validate_layout(q8, TrainingConfig(activation_checkpointing=True), 32, gb200, None, max_sequence_tokens=16384)
    t = 16384
    assert lay.activation_bytes_per_gpu == pytest.approx(36 * t * 2 * 4096 + t * a + t * 151936 * 4)
    lay = validate_layout(q8, TrainingConfig(), 32, gb200, None, max_sequence_tokens=16384)
    assert lay.activation_bytes_per_gpu == pytest.approx(36 * t * a + t * 151936 * 4)


def test_parallelism_divides_memory(q8, gb200):
    one = check(q8, gb200, 32)
    tp4 = check(q8, gb200, 32, tensor_parallel_size=4)
    assert tp4.weight_bytes_per_gpu == pytest.approx(one.weight_bytes_per_gpu / 4)
    assert tp4.optimizer_bytes_per_gpu == pytest.approx(one.optimizer_bytes_per_gpu)  # 12 B x total / 32 either way
    pp2 = check(q8, gb200, 32, pipeline_parallel_size=2)
    layers, head, expert = param_split(q8)
    assert expert == 0 and layers + head == q8.total_params
    # most loaded stage: half the layers + the larger of embedding / lm_head
    assert pp2.dense_params_per_gpu == pytest.approx(layers / 2 + 4096 * 151936)
    no_sp = activation_bytes_per_token_per_layer(q8, 4, False)
    sp = activation_bytes_per_token_per_layer(q8, 4, True)
    assert no_sp - sp == pytest.approx(2 * 4 * 4096 * (1 - 1 / 4))


def test_layout_sizes_and_source_less_messages(q8, gb200):
    lay = check(q8, gb200, 32, tensor_parallel_size=2, pipeline_parallel_size=2, context_parallel_size=2)
    assert (lay.tp, lay.pp, lay.cp, lay.dp, lay.num_gpus, lay.model_parallel_gpus) == (2, 2, 2, 4, 32, 8)
    assert lay.describe() == "tp=2 pp=2 cp=2 dp=4"
    with pytest.raises(ConfigError) as exc:
        validate_layout(q8, TrainingConfig(tensor_parallel_size=3), 32, gb200, None)
    assert str(exc.value) == "rl.training.tensor_parallel_size = 3 does not divide num_attention_heads = 32"


def test_config_rejects_bad_values():
    for bad in ({"mfu": 0.0}, {"mfu": 1.5}, {"dp_comm_overlap_frac": 1.2}, {"tensor_parallel_size": 0},
                {"optimizer_bytes_per_param": 0}, {"tensor_model_parallel_size": 2}):
        with pytest.raises(pydantic.ValidationError):
            TrainingConfig(**bad)
    cfg = TrainingConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.tensor_parallel_size = 2  # frozen
