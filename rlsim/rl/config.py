"""RL pipeline configuration (NeMo-RL GRPO names where they exist)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rlsim.rl.policies import RolloutPolicy
from rlsim.training.config import DrafterTrainingConfig, TrainingConfig, WeightSyncConfig

__all__ = ["RLConfig", "ConvergenceConfig"]


class ConvergenceConfig(BaseModel):
    """When the steady-state window has converged (``rl.num_steps`` unset; rlsim.rl.steady).

    After the warm-up, the window grows one *dispatch cycle* at a time (``lag + 1`` steps: async
    batches are released in waves of the policy lag; 1 step for sync).  The run stops at the
    first window of at least ``min_window_steps`` and two cycles whose mean step time changed by
    at most ``rel_tol`` (relative) when its last cycle was added, or at ``max_steps`` steps in
    all (a warning says it did not converge)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rel_tol: float = Field(default=0.03, gt=0, lt=1, description="relative change of the windowed mean step time over one cycle")
    min_window_steps: int = Field(default=3, ge=2, description="smallest steady-state window")
    max_steps: int = Field(default=24, ge=2, description="cap on simulated steps, warm-up included")


class RLConfig(BaseModel):
    """Several RL steps: rollouts (the engine pool), reward, logprobs, training, weight sync.

    ``pipeline`` (DESIGN 8):

    * ``sync_colocated`` -- NeMo-RL's default: generation and training share every GPU and
      alternate (weight sync = resharding over NVLink + engine sleep/wake);
    * ``sync_disaggregated`` -- separate rollout (``rollout.num_gpus``) and training
      (``rl.training.num_gpus``) pools, same ordering, idle pools;
    * ``async`` -- NeMo-RL async GRPO: the rollout pool generates continuously; batch t may be
      generated with weights at most ``max_trajectory_age_steps`` versions old (generation
      throttles otherwise); the trainer consumes whole batches.  Lag 0 is sync disaggregated.

    Steady state (rlsim.rl.steady): the first ``warmup_steps`` (at least lag + 1: batches
    0..lag all start at t = 0) are reported apart; the window after them grows until the step
    time converges (``convergence``) unless ``num_steps`` fixes the count; batches beyond the
    last reported step keep the rollout pool loaded, so there is no wind-down in the window.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    pipeline: Literal["sync_colocated", "sync_disaggregated", "async"]
    num_steps: int | None = Field(
        default=None, ge=2, description="RL steps to simulate and report (warm-up included); None = until the step "
                                        "time converges (rl.convergence)")
    warmup_steps: int | None = Field(
        default=None, ge=1, description="first steps reported apart from the steady state; None = lag + 1 (async), 1 (sync)")
    convergence: ConvergenceConfig = ConvergenceConfig()
    max_trajectory_age_steps: int = Field(default=1, ge=0, description="async policy lag (NeMo-RL async_grpo)")
    in_flight_weight_updates: bool = Field(default=False, description="async: update weights mid-generation")
    recompute_kv_on_weight_update: bool = Field(default=False, description="in-flight updates: recompute KV")
    reward_time_s: float = Field(default=0.0, ge=0, description="reward computation per batch (assumed)")
    reference_policy_kl_penalty: float = Field(default=0.0, ge=0, description="> 0 adds a reference logprob pass")
    training: TrainingConfig = TrainingConfig()
    weight_sync: WeightSyncConfig = WeightSyncConfig()
    drafter: DrafterTrainingConfig = DrafterTrainingConfig()
    policy: RolloutPolicy | None = Field(
        default=None, description="rollout-acceleration policy (rlsim.rl.policies); None = the rollouts as configured")
