"""Configuration of the training side of an RL step: trainer layout, weight sync, drafter in RL.

Field names follow NeMo-RL's ``policy`` config so values can be copied across
(``../shared/reference/ecosystem_conventions.md``).  The parallel sizes are Megatron's
``policy.megatron_cfg`` keys without the ``_model_`` infix:

=================================  ==========================================================
rlsim ``rl.training``               NeMo-RL
=================================  ==========================================================
``tensor_parallel_size``            ``megatron_cfg.tensor_model_parallel_size``
                                    (``dtensor_cfg.tensor_parallel_size``)
``pipeline_parallel_size``          ``megatron_cfg.pipeline_model_parallel_size``
``expert_parallel_size``            ``megatron_cfg.expert_model_parallel_size``
``expert_tensor_parallel_size``     ``megatron_cfg.expert_tensor_parallel_size``
``context_parallel_size``           ``megatron_cfg.context_parallel_size`` (and dtensor_cfg)
``sequence_parallel``               ``megatron_cfg.sequence_parallel`` (and dtensor_cfg)
``activation_checkpointing``        ``megatron_cfg.activation_checkpointing`` (and dtensor_cfg)
``train_global_batch_size``         ``policy.train_global_batch_size``
``train_micro_batch_size``          ``policy.train_micro_batch_size``
``logprob_batch_size``              ``policy.logprob_batch_size``
``sequence_packing``                ``policy.sequence_packing.enabled``
=================================  ==========================================================

The data-parallel size is not configured: it is ``num_gpus / (tp * pp * cp)``, as in Megatron.
Every number without a published source is marked "assumed" in its description.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrainingConfig", "WeightSyncConfig", "DrafterTrainingConfig"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TrainingConfig(BaseModel):
    """The policy trainer (Megatron-style 5-D parallelism) and its efficiency knobs.

    ``mfu`` overrides the hardware profile's ``training.mfu_dense`` / ``training.mfu_moe``
    (see :func:`rlsim.training.cost.resolve_mfu` for the defaults when the profile has none).
    MFU here is the achieved fraction of the bf16 dense peak on the FLOPs actually executed
    (so with activation checkpointing it is the hardware-FLOPs utilisation).  Tensor-, expert-
    and context-parallel communication is inside it; data-parallel gradient traffic, the
    pipeline bubble and the optimizer are modelled separately.

    By default (``cost_model: auto`` without ``mfu``) the trainer is instead costed per
    operation (:mod:`rlsim.training.perop`): GEMMs, grouped expert GEMMs, attention, elementwise
    ops, TP / CP / EP communication, pipeline bubbles, data-parallel communication and the
    optimizer from the calibrated kernel models, and the MFU is reported, not assumed.
    """

    model_config = _FROZEN

    num_gpus: int | None = Field(
        default=None, ge=1, description="training pool size when disaggregated; None = the rollout GPUs (colocated)"
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="megatron_cfg.tensor_model_parallel_size")
    pipeline_parallel_size: int = Field(default=1, ge=1, description="megatron_cfg.pipeline_model_parallel_size")
    expert_parallel_size: int = Field(default=1, ge=1, description="megatron_cfg.expert_model_parallel_size")
    expert_tensor_parallel_size: int | None = Field(
        default=None, ge=1, description="megatron_cfg.expert_tensor_parallel_size; None = tensor_parallel_size (Megatron's default)"
    )
    context_parallel_size: int = Field(default=1, ge=1, description="megatron_cfg.context_parallel_size")
    sequence_parallel: bool = Field(default=True, description="activations of norms/dropout split over TP")
    activation_checkpointing: bool = Field(default=False, description="full recompute: training costs 4 forwards, not 3")
    train_global_batch_size: int | None = Field(
        default=None, ge=1, description="sequences per optimizer step; None = the whole rollout batch (one step per RL step)"
    )
    train_micro_batch_size: int = Field(default=1, ge=1, description="sequences per micro-batch (per packed bin: x max length)")
    logprob_batch_size: int | None = Field(default=None, ge=1, description="sequences per logprob micro-batch; None = train_micro_batch_size")
    sequence_packing: bool = Field(default=True, description="pack sequences into bins, no padding (policy.sequence_packing.enabled)")
    mfu: float | None = Field(default=None, gt=0, le=1, description="override of the profile's trainer MFU")
    dp_comm_overlap_frac: float = Field(
        default=0.7, ge=0, le=1, description="fraction of DP gradient reduce-scatter / param all-gather hidden behind compute (assumed)"
    )
    optimizer_bytes_per_param: float = Field(
        default=16.0, gt=0, description="HBM bytes moved per parameter by the Adam update (assumed; see cost.optimizer)"
    )
    logprob_mfu_factor: float = Field(
        default=1.0, gt=0, description="forward-only (logprob) MFU relative to training MFU (assumed)"
    )
    # ---- the per-operation model (rlsim.training.perop)
    cost_model: Literal["auto", "per_op", "mfu"] = Field(
        default="auto", description="per_op: every op from the calibrated kernel models (MFU is an output); "
                                    "mfu: one assumed MFU; auto: mfu when `mfu` is set, else per_op",
    )
    pipeline_schedule: Literal["1f1b", "interleaved"] = Field(
        default="1f1b", description="Megatron pipeline schedule; interleaved needs virtual_pipeline_size"
    )
    virtual_pipeline_size: int | None = Field(
        default=None, ge=2, description="megatron_cfg.virtual_pipeline_model_parallel_size (model chunks per pipeline rank)"
    )
    tp_comm_overlap: bool = Field(default=False, description="Megatron tp_comm_overlap: TP collectives hidden behind GEMMs")
    overlap_grad_reduce: bool = Field(default=True, description="Megatron DDP overlap_grad_reduce (reduce-scatter behind the backward)")
    overlap_param_gather: bool = Field(default=True, description="Megatron DDP overlap_param_gather (all-gather behind the forward)")
    attention_backward_ratio: float = Field(
        default=2.5, gt=0, description="attention backward / forward FLOPs (assumed: FlashAttention-2, 5 vs 2 matmuls per tile)"
    )
    moe_load_imbalance: float = Field(
        default=1.1, ge=1, description="busiest expert rank's routed rows / mean (assumed: aux-loss balanced router)"
    )
    grouped_gemm_efficiency: float = Field(
        default=1.0, gt=0, le=1,
        description="grouped expert GEMM throughput relative to the calibrated dense GEMM of each expert's rows (assumed)",
    )


class WeightSyncConfig(BaseModel):
    """Moving the new policy weights from the trainer to the vLLM engines after a train step.

    ``mode``: ``auto`` follows the pipeline (colocated when the trainer shares the rollout GPUs,
    disaggregated otherwise); an explicit mode must agree with it.  The model of each mode and
    its sources: :mod:`rlsim.training.weight_sync`.
    """

    model_config = _FROZEN

    mode: Literal["auto", "colocated", "disaggregated"] = "auto"
    sleep_wake_s: float = Field(
        default=3.0, ge=0,
        description="colocated only: vLLM sleep/wake per step (free + re-allocate KV cache, reload weights; assumed)",
    )
    transfer_efficiency: float = Field(
        default=0.7, gt=0, le=1, description="fraction of the link bandwidth the weight transfer achieves (assumed)"
    )
    latency_s: float = Field(default=0.05, ge=0, description="fixed cost per sync: handshake, metadata, barriers (assumed)")
    transport: Literal["broadcast", "per_rank"] = Field(
        default="broadcast",
        description="disaggregated: broadcast = full tensors gathered on the trainer, NCCL broadcast in buckets to every "
                    "rollout GPU (NeMo-RL, verl, OpenRLHF); per_rank = each rollout GPU receives only its shard",
    )
    bucket_mib: float = Field(default=1024.0, gt=0, description="broadcast bucket size, MiB (assumed)")
    offload_trainer_state: bool = Field(
        default=True, description="colocated: optimizer state and gradients go to the host while vLLM runs (NeMo-RL offload_before_refit)"
    )


class DrafterTrainingConfig(BaseModel):
    """The speculative drafter inside an RL job (DESIGN 6, "In RL").

    A frozen drafter's per-position *conditional* acceptance is multiplied by
    ``(1 - acceptance_drift_per_step)`` per policy step since it was last trained (assumed model;
    qualitative evidence that acceptance decays as the policy moves and that online refresh
    restores it: TLT arXiv:2511.16665, ReSpec, the NVIDIA paper's online adaptation --
    published_results.md sections 1 and 3; no published decay rate).  With
    ``online_training_every_steps = N`` the drafter is trained (EAGLE-3 head on the verifier's
    hidden states) every N policy steps, on ``drafter_train_tokens_frac`` of the step's tokens,
    and -- with ``sync_drafter_weights`` -- its weights are sent to the engines with the policy's.
    """

    model_config = _FROZEN

    acceptance_drift_per_step: float = Field(
        default=0.0, ge=0, lt=1, description="relative loss of conditional acceptance per policy step (assumed)"
    )
    online_training_every_steps: int | None = Field(default=None, ge=1, description="None = frozen drafter")
    drafter_train_tokens_frac: float = Field(
        default=1.0, gt=0, le=1, description="fraction of the step's tokens the drafter trains on"
    )
    sync_drafter_weights: bool = Field(default=True, description="send the drafter's weights with the policy's after training it")
