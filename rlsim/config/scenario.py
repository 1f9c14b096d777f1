"""Scenario schema: what to simulate, split by question (model / system / execution / workload).

Field names follow vLLM's EngineArgs and NeMo-RL's GRPO config wherever those have the concept
(``tensor_parallel_size``, ``max_num_seqs``, ``num_prompts_per_step``, ...), so values can be
copied across.  Every model is frozen and forbids unknown keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlsim.serving.config import ServingConfig
from rlsim.speculation.acceptance import AcceptanceModel
from rlsim.workload import WorkloadConfig

__all__ = [
    "AdaptiveKConfig",
    "SpeculativeConfig",
    "ClusterConfig",
    "ModelConfig",
    "CpuOverheadConfig",
    "EngineConfig",
    "RolloutConfig",
    "SimulationConfig",
    "Scenario",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ClusterConfig(BaseModel):
    """The GPUs available: one hardware profile (name in ``hardware_profiles/`` or a YAML path)."""

    model_config = _FROZEN
    hardware: str = Field(description="hardware profile name (h100_sxm, ...) or path to a profile YAML")
    num_gpus: int = Field(ge=1, description="GPUs in the cluster")
    kernel_tables: str | None = Field(
        default=None,
        description="table mode: folder of measured kernel latencies (aiconfigurator / Vidur / Chrome traces, relative "
                    "to the scenario) interpolated where they cover an op, the fitted model elsewhere; overrides "
                    "the profile's kernel_tables",
    )


class ModelConfig(BaseModel):
    """The policy (target) model: a catalog name, an HF id, or a path to a config.json."""

    model_config = _FROZEN
    name: str
    dtype: Literal["bf16", "fp8", "fp8_block"] | None = Field(
        default=None, description="weight dtype; None = the model's own (bf16, fp8_block for DeepSeek-V3)"
    )


class CpuOverheadConfig(BaseModel):
    """Engine overheads beyond the timed kernels: host time per engine step, API-server time per
    request, and the untimed MoE routing kernels (see
    :class:`rlsim.hardware.profile.EngineOverheads` for the model).  Every field left unset
    (None) takes the hardware profile's ``engine`` value: fitted by ``rlsim calibrate e2e`` where
    the profile says so, else assumed from hardware_and_models.md C2 (~0.5-2 ms per step
    without async scheduling, ~0.1-0.3 ms exposed with it).
    """

    model_config = _FROZEN
    step_us: float | None = Field(default=None, ge=0, description="fixed host time per step, us")
    per_seq_us: float | None = Field(default=None, ge=0, description="host time per scheduled sequence, us")
    per_prefill_token_us: float | None = Field(default=None, ge=0, description="host time per prefill token, us")
    async_exposed_us: float | None = Field(default=None, ge=0, description="host time not hidden by async scheduling, us")
    async_exposed_per_seq_us: float | None = Field(default=None, ge=0, description="per scheduled sequence, us")
    api_server_us: float | None = Field(default=None, ge=0, description="API server time per request, us")
    api_server_us_per_prompt_token: float | None = Field(default=None, ge=0, description="tokenisation per prompt token, us")
    api_server_cv: float | None = Field(default=None, ge=0, description="coefficient of variation of the API server time")
    moe_routing_us_per_layer: float | None = Field(default=None, ge=0, description="GPU time per MoE layer of the "
                                                   "router top-k and alignment kernels (not in the kernel tables), us")
    eager_layer_us: float | None = Field(default=None, ge=0, description="host dispatch per decoder layer of a pass "
                                         "without CUDA graphs, us")
    eager_moe_layer_us: float | None = Field(default=None, ge=0, description="extra host dispatch per MoE layer of a "
                                             "pass without CUDA graphs, us")

    def resolved(self, profile_defaults) -> "CpuOverheadConfig":
        """Every unset field from the profile's ``engine`` section."""
        return self.model_copy(update={k: getattr(profile_defaults, k) for k in type(self).model_fields
                                       if getattr(self, k) is None})


class AdaptiveKConfig(BaseModel):
    """Pick k per iteration to maximise expected goodput (beyond vLLM; SmartSpec-style):
    ``argmax_k B * E[tokens | k] / step_time(B, k)`` over ``min_k..num_speculative_tokens``,
    with E from the acceptance model's base rates (no per-sequence heterogeneity)."""

    model_config = _FROZEN
    enabled: bool = True
    min_k: int = Field(default=0, ge=0, description="0 lets the policy switch speculation off")


class SpeculativeConfig(BaseModel):
    """vLLM's ``speculative_config`` plus rlsim's acceptance model (DESIGN 6)."""

    model_config = _FROZEN
    method: Literal["eagle3", "eagle", "mtp", "draft_model", "ngram"]
    model: str | None = Field(default=None, description="draft model / head; eagle3 default: EAGLE3-<target>")
    num_speculative_tokens: int = Field(ge=1, le=32, description="k; vLLM caps drafts at MAX_SPEC_LEN = 32")
    draft_tensor_parallel_size: int | None = Field(default=None, ge=1, description="None = the target's TP")
    prompt_lookup_max: int = Field(default=5, ge=1, description="ngram (informational)")
    prompt_lookup_min: int = Field(default=2, ge=1, description="ngram (informational)")
    disable_by_batch_size: int | None = Field(default=None, ge=1, description="no drafts once the running batch reaches this")
    acceptance: AcceptanceModel
    adaptive_k: AdaptiveKConfig | None = None
    draft_step_overhead_us: float | None = Field(
        default=None, ge=0,
        description="GPU idle time per draft forward beyond its kernels (attention-metadata update, launches, argmax), "
                    "us; None = the hardware profile's fitted speculation.draft_step_us (rlsim calibrate spec)")
    sampling_temperature: float = Field(
        default=1.0, ge=0, description="the requests' sampling temperature: 0 = greedy rejection sampling, > 0 = "
                                       "random (target probabilities at every draft position; RL samples at 1.0)")


class EngineConfig(BaseModel):
    """One vLLM V1 engine instance (EngineArgs names)."""

    model_config = _FROZEN
    tensor_parallel_size: int = Field(default=1, ge=1)
    enable_expert_parallel: bool = Field(default=False, description="experts split over the DP x TP GPUs (vLLM: "
                                         "EP = DP x TP) instead of each expert over TP")
    data_parallel_size: int = Field(default=1, ge=1, description="vLLM --data-parallel-size: an MoE model with expert "
                                    "parallelism runs DP attention ranks in lock-step sharing the experts "
                                    "(rlsim.engine.dp_group); otherwise DP ranks are independent engines")
    vllm_version: str | None = Field(default=None, description="vLLM release whose defaults apply (e.g. 0.19.0; "
                                     "None = the latest; see rlsim.config.vllm)")
    max_num_seqs: int | None = Field(default=None, ge=1, description="None = vLLM's default for the GPU and usage "
                                     "(1,024 on >= 70 GiB GPUs)")
    max_num_batched_tokens: int | None = Field(default=None, ge=1, description="None = vLLM's default: 16,384 "
                                               "(offline LLM, rollouts) / 8,192 (vllm serve) on >= 70 GiB GPUs")
    max_model_len: int | None = Field(default=None, ge=1, description="None = prompt cap + max_new_tokens")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    block_size: Literal[1, 8, 16, 32, 64, 128, 256] = Field(default=16, description="vLLM's allowed KV block sizes")
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = "auto"
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    enforce_eager: bool = Field(default=False, description="true = no CUDA graphs")
    async_scheduling: bool | None = Field(default=None, description="host work of step N+1 overlaps GPU of step N; "
                                          "None = the version's default (rlsim.config.vllm)")
    scheduling_policy: Literal["fcfs", "shortest_remaining"] = Field(
        default="fcfs", description="vLLM's --scheduling-policy: fcfs (vLLM's default) or shortest_remaining "
                                    "(oracle length-aware: fewest tokens left first; see rlsim.engine.policy)")
    max_cudagraph_capture_size: int = Field(default=512, ge=1, le=65536, description="largest batch captured in a "
                                            "CUDA graph (vLLM default 512; at most 65,536 here: sizes are listed up to it)")
    mxfp4_moe_activation: Literal["auto", "bf16", "mxfp8"] = Field(
        default="auto", description="activations of MXFP4 MoE experts (gpt-oss): bf16, or mxfp8 (Blackwell: vLLM's "
                                    "VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1); auto = mxfp8 where the hardware profile "
                                    "has a calibrated MXFP4 x MXFP8 kernel, else bf16 (assumed: rlsim.hardware.kernels)")
    cpu_overhead: CpuOverheadConfig = CpuOverheadConfig()
    activation_reserve_gib: float = Field(
        default=2.0, ge=0, description="activations + CUDA graphs + NCCL buffers per GPU, GiB (assumed)"
    )
    speculative_config: SpeculativeConfig | None = None


    @field_validator("block_size", mode="before")
    @classmethod
    def _block_size_not_bool(cls, v):
        if isinstance(v, bool):  # True == 1 would match the literal 1
            raise ValueError("input should be one of 1, 8, 16, 32, 64, 128, 256 (a number, not true/false)")
        return v

    @field_validator("vllm_version")
    @classmethod
    def _known_version_form(cls, v: str | None) -> str | None:
        from rlsim.config.vllm import parse_version

        if v is not None:
            parse_version(v)  # ValueError names the rule
        return v


class RolloutConfig(BaseModel):
    """The rollout pool: data-parallel engines fed from one batch."""

    model_config = _FROZEN
    num_gpus: int | None = Field(default=None, ge=1, description="GPUs for rollouts; None = the whole cluster")
    engine: EngineConfig = EngineConfig()
    dispatch: Literal["round_robin", "least_outstanding_tokens", "length_aware"] = Field(
        default="round_robin",
        description="how GRPO groups are dealt to engines (a group stays on one engine; rlsim.rl.dispatch): "
                    "round_robin, least_outstanding_tokens (load-aware), length_aware (longest predicted first)",
    )
    dispatch_length_noise: float = Field(
        default=0.5, ge=0, description="length_aware: lognormal sigma of the response-length predictor (assumed; 0 = oracle)"
    )


class SimulationConfig(BaseModel):
    """How to simulate (not what): ``fast`` jumps over decode-only stretches; ``reference``
    steps one engine iteration at a time (slow, used to test the fast path)."""

    model_config = _FROZEN
    mode: Literal["fast", "reference"] = "fast"


class Scenario(BaseModel):
    """A complete rlsim scenario."""

    model_config = _FROZEN
    name: str
    description: str = ""
    seed: int = Field(default=0, ge=0)
    cluster: ClusterConfig
    model: ModelConfig
    rollout: RolloutConfig = RolloutConfig()
    workload: WorkloadConfig | None = Field(default=None, description="the GRPO batch (rollout and RL scenarios)")
    simulation: SimulationConfig = SimulationConfig()
    rl: "RLConfig | None" = Field(default=None, description="RL steps (sync/async pipelines); None = one rollout batch")
    serving: ServingConfig | None = Field(default=None, description="a vllm bench serve client (rlsim bench) "
                                                                      "instead of a rollout batch")

    @field_validator("name")
    @classmethod
    def _name_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> "Scenario":
        if self.serving is None and self.workload is None:
            raise ValueError("workload is required (or a serving: section for a serving benchmark)")
        if self.serving is not None and self.rl is not None:
            raise ValueError("a scenario has either an rl: section or a serving: section, not both")
        return self

    @property
    def kind(self) -> str:
        """What the scenario simulates: ``rollout`` (one batch), ``rl`` (RL steps) or ``serving``."""
        return "serving" if self.serving is not None else "rl" if self.rl is not None else "rollout"


from rlsim.rl.config import RLConfig  # noqa: E402  (after Scenario's dependencies)

Scenario.model_rebuild()
