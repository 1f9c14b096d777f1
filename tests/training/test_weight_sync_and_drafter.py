"""Weight sync (colocated vs disaggregated), online drafter cost, acceptance drift, MFU defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from rlsim.errors import ConfigError
from rlsim.hardware import list_profiles, load_profile, profiles_dir
from rlsim.models import load_model
from rlsim.training import (
    DEFAULT_MFU_DENSE,
    DEFAULT_MFU_MOE,
    DrafterTrainingConfig,
    TrainingConfig,
    WeightSyncConfig,
    acceptance_drift_factor,
    drafter_train_cost,
    drafter_version,
    matmul_params,
    resolve_mfu,
    resolve_sync_mode,
    train_step_cost,
    trains_drafter_after,
    validate_layout,
    weight_sync_cost,
)

S8B_BF16 = 2 * 8_190_735_360  # Qwen3-8B shard on one TP=1 rollout GPU, bytes


@pytest.fixture(scope="module")
def q8():
    return load_model("Qwen3-8B")


def sync(arch, hw, mode, *, tp=1, engines=32, dtype="bf16", train_gpus=32, same=False, extra=0.0, **cfg):
    return weight_sync_cost(
        arch, hw, mode=mode, rollout_tp=tp, rollout_engines=engines, rollout_weight_dtype=dtype,
        training_gpus=train_gpus, cfg=WeightSyncConfig(**cfg), same_nvlink_domain=same, extra_bytes=extra,
    )


@pytest.mark.parametrize("hw_name, nvlink, nic", [("gb200", 900e9, 100e9), ("h100_sxm", 450e9, 50e9)])
def test_colocated_vs_disaggregated(q8, hw_name, nvlink, nic):
    hw = load_profile(hw_name)
    co = sync(q8, hw, "colocated")
    dis = sync(q8, hw, "disaggregated")
    assert co.bytes_per_rollout_gpu == dis.bytes_per_rollout_gpu == S8B_BF16
    # colocated: S / (NVLink x 0.7) + 0.05 s + 3.0 s sleep/wake
    assert co.transfer_s == pytest.approx(S8B_BF16 / (nvlink * 0.7))
    assert co.overhead_s == pytest.approx(3.05) and co.total_s == pytest.approx(co.transfer_s + 3.05)
    assert (co.link, dis.link) == ("nvlink", "nic")
    # disaggregated over the NIC: S / (NIC x 0.7) + 0.05 s
    assert dis.transfer_s == pytest.approx(S8B_BF16 / (nic * 0.7))
    assert dis.overhead_s == pytest.approx(0.05)
    assert dis.transfer_s / co.transfer_s == pytest.approx(nvlink / nic)  # the NVLink : NIC ratio (9x)
    # inside one NVLink domain (GB200 NVL72 rack) the broadcast runs at NVLink speed
    rack = sync(q8, hw, "disaggregated", same=True)
    assert rack.transfer_s == pytest.approx(co.transfer_s) and rack.overhead_s == pytest.approx(0.05)
    assert dis.bytes_total == S8B_BF16 * 32


def test_sync_bytes_dtype_extra_and_sender_bound(q8):
    hw = load_profile("gb200")
    base = sync(q8, hw, "disaggregated")
    fp8 = sync(q8, hw, "disaggregated", dtype="fp8")
    assert fp8.bytes_per_rollout_gpu < 0.6 * base.bytes_per_rollout_gpu  # embedding / lm_head stay bf16
    drafter = load_model("EAGLE3-Qwen3-8B").weight_bytes("bf16")
    withd = sync(q8, hw, "disaggregated", extra=drafter)
    assert withd.bytes_per_rollout_gpu == pytest.approx(S8B_BF16 + drafter)
    assert withd.transfer_s - base.transfer_s == pytest.approx(drafter / (100e9 * 0.7))
    # TP=4 engines, 2 training GPUs: the senders push a full copy (4 shards) through 2 links
    tp4 = sync(q8, hw, "disaggregated", tp=4, train_gpus=2)
    assert tp4.transfer_s == pytest.approx(2 * tp4.bytes_per_rollout_gpu / (100e9 * 0.7))
    tp4_many = sync(q8, hw, "disaggregated", tp=4, train_gpus=32)
    assert tp4_many.transfer_s == pytest.approx(tp4.bytes_per_rollout_gpu / (100e9 * 0.7))
    # the number of engines does not change a pipelined broadcast
    assert sync(q8, hw, "disaggregated", engines=4).total_s == base.total_s
    assert sync(q8, hw, "colocated", sleep_wake_s=0.0, latency_s=0.0).total_s == pytest.approx(S8B_BF16 / (900e9 * 0.7))
    with pytest.raises(ValueError):
        sync(q8, hw, "auto")


def test_resolve_sync_mode():
    assert resolve_sync_mode(WeightSyncConfig(), True, "s.yaml") == "colocated"
    assert resolve_sync_mode(WeightSyncConfig(), False, "s.yaml") == "disaggregated"
    assert resolve_sync_mode(WeightSyncConfig(mode="disaggregated"), False, "s.yaml") == "disaggregated"
    with pytest.raises(ConfigError) as exc:
        resolve_sync_mode(WeightSyncConfig(mode="colocated"), False, "s.yaml")
    assert str(exc.value) == (
        "s.yaml: rl.weight_sync.mode = 'colocated' contradicts the pipeline: the trainer has its own GPUs (disaggregated)"
    )
    with pytest.raises(pydantic.ValidationError):
        WeightSyncConfig(transfer_efficiency=0)


def test_drafter_train_cost_proportional_to_params(q8):
    hw = load_profile("gb200")
    lay = validate_layout(q8, TrainingConfig(mfu=0.4), 32, hw, None)
    d8, d235 = load_model("EAGLE3-Qwen3-8B"), load_model("EAGLE3-Qwen3-235B-A22B")
    # EAGLE-3 head for Qwen3-8B: qkv 8192 x 6144 + o 4096^2 + MLP 3 x 4096 x 12288 + fc 3 x 4096^2
    # + lm_head 4096 x 32000 = 399,507,456 GEMM weights
    assert matmul_params(d8) == 8192 * 6144 + 4096**2 + 3 * 4096 * 12288 + 3 * 4096**2 + 4096 * 32000 == 399_507_456
    # 6 x 399,507,456 x 1e6 / (32 x 2.5e15 x 0.4) = 0.074907648 s
    assert drafter_train_cost(d8, hw, lay, 1e6) == pytest.approx(0.074907648, rel=1e-12)
    assert drafter_train_cost(d8, hw, lay, 2e6) == pytest.approx(2 * 0.074907648)
    ratio = drafter_train_cost(d235, hw, lay, 1e6) / drafter_train_cost(d8, hw, lay, 1e6)
    assert ratio == pytest.approx(matmul_params(d235) / matmul_params(d8))
    assert drafter_train_cost(d8, hw, lay, 0) == 0.0
    # a small fraction of the policy's own training
    policy = train_step_cost(q8, hw, lay, [2048] * 64, reference_logprob=False)
    assert drafter_train_cost(d8, hw, lay, 64 * 2048) < 0.06 * policy.forward_backward_s


def test_acceptance_drift_and_online_training():
    frozen = DrafterTrainingConfig(acceptance_drift_per_step=0.02)
    assert acceptance_drift_factor(frozen, 0) == 1.0
    assert acceptance_drift_factor(frozen, 10) == pytest.approx(0.98**10)
    assert not any(trains_drafter_after(frozen, s) for s in range(10))
    online = DrafterTrainingConfig(acceptance_drift_per_step=0.1, online_training_every_steps=3)
    assert [drafter_version(online, v) for v in range(7)] == [0, 0, 0, 3, 3, 3, 6]
    assert [trains_drafter_after(online, s) for s in range(6)] == [False, False, True, False, False, True]
    assert [round(acceptance_drift_factor(online, v), 6) for v in range(4)] == [1.0, 0.9, 0.81, 1.0]
    assert acceptance_drift_factor(DrafterTrainingConfig(), 50) == 1.0
    for bad in ({"acceptance_drift_per_step": 1.0}, {"online_training_every_steps": 0}, {"drafter_train_tokens_frac": 0}):
        with pytest.raises(pydantic.ValidationError):
            DrafterTrainingConfig(**bad)


def test_mfu_defaults_without_profile_section(q8, pinned):
    moe = load_model("Qwen3-235B-A22B")
    bare = pinned("gb200", training=None)
    assert bare.training is None
    assert resolve_mfu(q8, bare, None) == (
        DEFAULT_MFU_DENSE, f"rlsim default mfu_dense = {DEFAULT_MFU_DENSE} (assumed; gb200 profile has no training section)"
    )
    assert resolve_mfu(moe, bare, None)[0] == DEFAULT_MFU_MOE
    assert resolve_mfu(q8, bare, 0.5) == (0.5, "rl.training.mfu")
    with_section = pinned("gb200", training={"mfu_dense": 0.5, "mfu_moe": 0.3, "mfu_source": "test"})
    assert resolve_mfu(q8, with_section, None) == (0.5, "gb200 profile training.mfu_dense (test)")
    assert resolve_mfu(moe, with_section, None)[0] == 0.3
    # the trainer cost runs on a bare profile, at the default MFU
    lay = validate_layout(q8, TrainingConfig(), 32, bare, None)
    c = train_step_cost(q8, bare, lay, [2048] * 64, reference_logprob=False)
    assert c.mfu == DEFAULT_MFU_DENSE and lay.mfu == DEFAULT_MFU_DENSE
    c04 = train_step_cost(q8, bare, validate_layout(q8, TrainingConfig(mfu=0.4), 32, bare, None), [2048] * 64,
                          reference_logprob=False)
    assert c.forward_backward_s == pytest.approx(c04.forward_backward_s * 0.4 / DEFAULT_MFU_DENSE)
    with pytest.raises(pydantic.ValidationError):
        pinned("gb200", training={"mfu_dense": 1.5, "mfu_moe": 0.3, "mfu_source": "x"})


def test_shipped_profiles_training_section_is_sourced():
    for name in ("h100_sxm", "h200_sxm", "b200_sxm", "gb200"):
        if name not in list_profiles():
            pytest.skip(f"{name} not shipped")
        hw = load_profile(name)
        assert hw.training is not None and 0 < hw.training.mfu_moe <= hw.training.mfu_dense <= 1
        text = Path(profiles_dir() / f"{name}.yaml").read_text()
        for key in ("mfu_dense", "mfu_moe"):
            line = re.search(rf"^\s+{key}:.*$", text, re.M).group(0)
            assert "#" in line and ("assumed" in line or "[" in line), line
