"""Weight sync per framework mode (rlsim.training.weight_sync): each part by hand."""

from __future__ import annotations

import pytest

from rlsim.cost.memory import weight_bytes_per_gpu
from rlsim.hardware import load_profile, ops
from rlsim.models import load_model
from rlsim.training import TrainingConfig, WeightSyncConfig, dp_collective_time_s, validate_layout
from rlsim.training.weight_sync import weight_sync

GB200 = load_profile("gb200")


@pytest.fixture(scope="module")
def m235():
    return load_model("Qwen3-235B-A22B")


def _lay(arch, gpus, **cfg):
    return validate_layout(arch, TrainingConfig(**cfg), gpus, GB200, "s.yaml")


def test_broadcast_sends_the_full_model_to_every_rollout_gpu(m235):
    lay = _lay(m235, 64, tensor_parallel_size=4, expert_parallel_size=16, expert_tensor_parallel_size=1)
    kw = dict(mode="disaggregated", rollout_tp=8, rollout_gpus=64, rollout_weight_dtype="bf16")
    nic = weight_sync(m235, GB200, lay, WeightSyncConfig(), same_nvlink_domain=False, **kw)
    full = m235.total_params * 2.0
    assert nic.bytes_per_receiver == full and nic.link == "nic" and nic.transport == "broadcast"
    buckets = -(-full // (1024 * 2**20))
    assert nic.parts["transfer_s"] == pytest.approx(buckets * 5e-6 + full / (100e9 * 0.7), rel=1e-12)
    gather = dp_collective_time_s(GB200, "all_gather", lay.dense_params_per_gpu * 4 * 2, 4, 1) + \
        dp_collective_time_s(GB200, "all_gather", lay.expert_params_per_gpu * 16 * 2, 16, 1)
    assert nic.parts["gather_s"] == pytest.approx(gather, rel=1e-12)
    shard = weight_bytes_per_gpu(m235, 8, "bf16")
    assert nic.parts["load_s"] == pytest.approx(float(ops.elementwise_time_s(GB200, 2 * shard)), rel=1e-12)
    assert nic.total_s == pytest.approx(sum(nic.parts.values()), rel=1e-12) == nic.engine_pause_s
    # 470 GB over the NIC: seconds, where the old per-rank model said ~0.9 s
    assert 5.0 < nic.total_s < 10.0
    rack = weight_sync(m235, GB200, lay, WeightSyncConfig(), same_nvlink_domain=True, **kw)
    assert rack.parts["transfer_s"] == pytest.approx(buckets * 10e-6 + full / (900e9 * 0.7), rel=1e-12)
    # per-rank streaming: every rollout GPU receives only its shard, the senders in parallel
    per = weight_sync(m235, GB200, lay, WeightSyncConfig(transport="per_rank"), same_nvlink_domain=False, **kw)
    assert per.bytes_per_receiver == shard
    assert per.parts["transfer_s"] == pytest.approx(max(shard, shard * 8 / 64) / (100e9 * 0.7), rel=1e-12)
    assert per.total_s < nic.total_s / 4


def test_colocated_offloads_trainer_state_and_reshards(m235):
    q8 = load_model("Qwen3-8B")
    lay = _lay(q8, 32)
    s = weight_sync(q8, GB200, lay, WeightSyncConfig(), mode="colocated", rollout_tp=1, rollout_gpus=32,
                    rollout_weight_dtype="bf16", same_nvlink_domain=True)
    state = lay.optimizer_bytes_per_gpu + lay.grad_bytes_per_gpu
    assert s.parts["offload_s"] == s.parts["onload_s"] == pytest.approx(state / 64e9, rel=1e-12)
    shard = weight_bytes_per_gpu(q8, 1, "bf16")
    assert s.parts["reshard_s"] == pytest.approx(shard / (900e9 * 0.7), rel=1e-12)
    assert s.parts["sleep_wake_s"] == 3.0 and s.parts["gather_s"] == 0.0  # tp = 1: nothing to gather
    kept = weight_sync(q8, GB200, lay, WeightSyncConfig(offload_trainer_state=False), mode="colocated", rollout_tp=1,
                       rollout_gpus=32, rollout_weight_dtype="bf16", same_nvlink_domain=True)
    assert kept.total_s == pytest.approx(s.total_s - 2 * s.parts["offload_s"], rel=1e-12)


def test_online_drafter_weights_ride_along(m235):
    q8 = load_model("Qwen3-8B")
    lay = _lay(q8, 16)
    kw = dict(mode="disaggregated", rollout_tp=1, rollout_gpus=16, rollout_weight_dtype="bf16", same_nvlink_domain=False)
    base = weight_sync(q8, GB200, lay, WeightSyncConfig(), **kw)
    draft = load_model("EAGLE3-Qwen3-8B")
    full = draft.total_params * 2.0
    with_d = weight_sync(q8, GB200, lay, WeightSyncConfig(), drafter_full_bytes=full, drafter_bytes_per_gpu=full, **kw)
    assert with_d.bytes_per_receiver == pytest.approx(base.bytes_per_receiver + full)
    # its bytes over the NIC (and one more bucket latency)
    assert with_d.parts["transfer_s"] - base.parts["transfer_s"] == pytest.approx(full / (100e9 * 0.7) + 5e-6, rel=1e-6)
