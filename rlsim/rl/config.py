"""RL pipeline configuration (NeMo-RL GRPO names where they exist)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rlsim.training.config import DrafterTrainingConfig, TrainingConfig, WeightSyncConfig

__all__ = ["RLConfig"]


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
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    pipeline: Literal["sync_colocated", "sync_disaggregated", "async"]
    num_steps: int = Field(default=4, ge=1, description="RL steps to simulate (warm-up included)")
    warmup_steps: int = Field(default=1, ge=0, description="first steps reported apart from steady state")
    max_trajectory_age_steps: int = Field(default=1, ge=0, description="async policy lag (NeMo-RL async_grpo)")
    in_flight_weight_updates: bool = Field(default=False, description="async: update weights mid-generation")
    recompute_kv_on_weight_update: bool = Field(default=False, description="in-flight updates: recompute KV")
    reward_time_s: float = Field(default=0.0, ge=0, description="reward computation per batch (assumed)")
    reference_policy_kl_penalty: float = Field(default=0.0, ge=0, description="> 0 adds a reference logprob pass")
    training: TrainingConfig = TrainingConfig()
    weight_sync: WeightSyncConfig = WeightSyncConfig()
    drafter: DrafterTrainingConfig = DrafterTrainingConfig()
