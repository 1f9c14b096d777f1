"""Weight sync as RL frameworks do it: new policy weights from the trainer to every vLLM engine.

Sources: the frameworks' code paths as recalled (not in ../shared, UNVERIFIED): NeMo-RL
``megatron_policy_worker.broadcast_weights_for_collective`` / ``vllm_backend.
update_weights_from_collective`` (non-colocated: full tensors gathered on the trainer, broadcast
over one NCCL group with every vLLM worker, in packed buckets) and ``update_weights_via_ipc_zmq``
with ``offload_before_refit`` / ``offload_after_refit`` (colocated: CUDA-IPC handles, trainer
state offloaded to the host while vLLM runs); verl's sharding managers and OpenRLHF's
``_broadcast_to_vllm`` (bucketed or per-tensor broadcast from trainer rank 0); per-rank
streaming (each trainer rank sends the slices a rollout rank needs: checkpoint-engine style);
vLLM's sleep mode (``LLM.sleep`` frees the KV cache and offloads or discards weights,
``wake_up`` re-allocates).

Modes (``rl.weight_sync``)
--------------------------
``B`` = full policy bytes (bf16: the trainer's dtype; vLLM quantises on load), ``S`` = one
rollout GPU's shard (``weight_bytes_per_gpu`` at the rollout TP and dtype).

* disaggregated, ``transport: broadcast`` (default; NeMo-RL / verl / OpenRLHF)::

      gather    = TP all-gather of the dense shards + EP all-gather of the experts on the trainer
                  (its NVLink; per pipeline stage, stages in parallel) + the other stages' layers
                  to the sender (B (pp-1)/pp over its link)
      broadcast = buckets x latency + B / (link * transfer_efficiency)   every rollout GPU receives B
      load      = each rollout GPU copies its shard S out of the received tensors (HBM read + write)

  ``link`` = NVLink when trainer and rollout pools share one NVLink domain, else the NIC (a ring
  through every receiver is as fast as its slowest hop).  Engines are paused for all of it.
* disaggregated, ``transport: per_rank``: the same gather, then every rollout GPU receives only
  ``S`` from the trainer GPUs in parallel: ``max(S, S tp_rollout / trainer_gpus) / (link * eff)``
  (:func:`rlsim.training.cost.weight_sync_cost`).
* colocated (NeMo-RL default): offload the trainer's optimizer state and gradients to the host
  (``host_bandwidth``), gather (TP), reshard into vLLM's layout through CUDA IPC
  (``S / (nvlink * eff)``), vLLM wake (and later sleep) ``sleep_wake_s`` (assumed), and before the
  next training the state back onto the GPU.

An online-trained drafter adds its weights (full bytes to every receiver with broadcast; its
per-GPU shard otherwise).  ``latency_s`` (assumed) covers handshakes and barriers per sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rlsim import units
from rlsim.cost.memory import weight_bytes_per_gpu
from rlsim.hardware import ops
from rlsim.training.config import WeightSyncConfig
from rlsim.training.cost import dp_collective_time_s
from rlsim.training.layout import TrainLayout
from rlsim.units import MIB, gb_per_s

__all__ = ["WeightSync", "weight_sync", "HOST_BW_DEFAULT_GB_PER_S"]

#: Host link when the profile has none: PCIe Gen5 x16, 64 GB/s per direction (A2).
HOST_BW_DEFAULT_GB_PER_S = 64.0
_BF16 = 2.0


@dataclass(frozen=True)
class WeightSync:
    """One policy weight sync: ``total_s`` = sum of ``parts`` (seconds); the trainer is blocked
    for ``total_s``, the engines are paused for ``engine_pause_s``."""

    total_s: float
    engine_pause_s: float
    parts: dict[str, float]
    mode: str
    transport: str
    link: str
    bytes_per_receiver: float
    assumed: dict[str, float] = field(default_factory=dict)


def _gather_s(hw, lay: TrainLayout, full_bytes: float, same_domain: bool) -> float:
    """Full tensors on the sender: TP and EP all-gathers (stages in parallel) + the other stages."""
    t = dp_collective_time_s(hw, "all_gather", lay.dense_params_per_gpu * lay.tp * _BF16, lay.tp, 1)
    if lay.expert_params_per_gpu > 0 and lay.ep > 1:
        t += dp_collective_time_s(hw, "all_gather", lay.expert_params_per_gpu * lay.ep * _BF16, lay.ep, lay.etp)
    if lay.pp > 1:
        bw = hw.nvlink_bw_bytes_per_s if same_domain else hw.nic_bw_bytes_per_s
        t += full_bytes * (lay.pp - 1) / lay.pp / bw
    return t


def _host_bw(hw) -> float:
    v = getattr(hw.topology, "host_bandwidth_gb_per_s", None)
    return gb_per_s(v if v is not None else HOST_BW_DEFAULT_GB_PER_S)


def weight_sync(arch, hw, lay: TrainLayout, cfg: WeightSyncConfig, *, mode: str, rollout_tp: int, rollout_gpus: int,
                rollout_weight_dtype: str, same_nvlink_domain: bool, drafter_full_bytes: float = 0.0,
                drafter_bytes_per_gpu: float = 0.0) -> WeightSync:
    """Seconds of one sync in ``mode`` (``colocated`` / ``disaggregated``) and ``cfg.transport``
    (module docstring); ``drafter_*`` > 0 when the drafter's weights go too."""
    full = float(arch.total_params) * _BF16 + drafter_full_bytes
    shard = float(weight_bytes_per_gpu(arch, rollout_tp, rollout_weight_dtype)) + drafter_bytes_per_gpu
    eff = cfg.transfer_efficiency
    load = float(ops.elementwise_time_s(hw, 2.0 * shard))
    if mode == "colocated":
        state = lay.optimizer_bytes_per_gpu + lay.grad_bytes_per_gpu
        move = state / _host_bw(hw) if cfg.offload_trainer_state else 0.0
        parts = {"offload_s": move, "gather_s": _gather_s(hw, lay, full, True),
                 "reshard_s": shard / (hw.nvlink_bw_bytes_per_s * eff), "load_s": load,
                 "sleep_wake_s": cfg.sleep_wake_s, "onload_s": move, "latency_s": cfg.latency_s}
        total = sum(parts.values())
        return WeightSync(total, total, parts, mode, "cuda_ipc", "nvlink", shard,
                          {"sleep_wake_s": cfg.sleep_wake_s, "transfer_efficiency": eff, "latency_s": cfg.latency_s})
    bw = hw.nvlink_bw_bytes_per_s if same_nvlink_domain else hw.nic_bw_bytes_per_s
    link = "nvlink" if same_nvlink_domain else "nic"
    gather = _gather_s(hw, lay, full, same_nvlink_domain)
    if cfg.transport == "broadcast":
        buckets = max(1, math.ceil(full / (cfg.bucket_mib * MIB)))
        alpha = units.us(hw.topology.nvlink_latency_us if same_nvlink_domain else hw.topology.nic_latency_us)
        send, received = buckets * alpha + full / (bw * eff), full
    else:
        send, received = max(shard, shard * rollout_tp / lay.num_gpus) / (bw * eff), shard
    parts = {"gather_s": gather, "transfer_s": send, "load_s": load, "latency_s": cfg.latency_s}
    total = sum(parts.values())
    return WeightSync(total, total, parts, mode, cfg.transport, link, received,
                      {"transfer_efficiency": eff, "latency_s": cfg.latency_s, "bucket_mib": cfg.bucket_mib})
