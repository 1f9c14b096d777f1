"""Training side of an RL step (DESIGN 7): trainer layout and cost, weight sync, drafter in RL.

Public API::

    TrainingConfig, WeightSyncConfig, DrafterTrainingConfig          pydantic configs (rl.training, ...)
    validate_layout(arch, cfg, num_gpus, hw, source, path="rl.training", *,
                    num_gpus_path=None, max_sequence_tokens=None) -> TrainLayout
    train_step_cost(arch, hw, layout, seq_tokens, *, reference_logprob, prompt_tokens=None,
                    max_sequence_tokens=None) -> TrainStepCost
    weight_sync_cost(arch, hw, *, mode, rollout_tp, rollout_engines, rollout_weight_dtype,
                     training_gpus, cfg, same_nvlink_domain, extra_bytes=0.0) -> WeightSyncCost
    drafter_train_cost(draft_arch, hw, layout, tokens) -> float
    resolve_mfu(arch, hw, mfu_override) -> (mfu, source);  resolve_sync_mode(cfg, pools_colocated, source)
    acceptance_drift_factor(cfg, policy_version), trains_drafter_after(cfg, step)
"""

from rlsim.training.config import DrafterTrainingConfig, TrainingConfig, WeightSyncConfig
from rlsim.training.cost import (
    TrainStepCost,
    WeightSyncCost,
    attention_flops_coeff,
    drafter_train_cost,
    dp_collective_time_s,
    forward_flops,
    matmul_params,
    resolve_sync_mode,
    train_step_cost,
    weight_sync_cost,
)
from rlsim.training.drafter import (
    acceptance_drift_factor,
    drafter_version,
    steps_since_drafter_trained,
    trains_drafter_after,
)
from rlsim.training.efficiency import DEFAULT_MFU_DENSE, DEFAULT_MFU_MOE, resolve_mfu
from rlsim.training.layout import TrainLayout, param_split, validate_layout

__all__ = [
    "TrainingConfig",
    "WeightSyncConfig",
    "DrafterTrainingConfig",
    "TrainLayout",
    "validate_layout",
    "param_split",
    "TrainStepCost",
    "WeightSyncCost",
    "train_step_cost",
    "weight_sync_cost",
    "drafter_train_cost",
    "resolve_sync_mode",
    "matmul_params",
    "attention_flops_coeff",
    "forward_flops",
    "dp_collective_time_s",
    "resolve_mfu",
    "DEFAULT_MFU_DENSE",
    "DEFAULT_MFU_MOE",
    "acceptance_drift_factor",
    "drafter_version",
    "steps_since_drafter_trained",
    "trains_drafter_after",
]
