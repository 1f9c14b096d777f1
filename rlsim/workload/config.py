"""What one RL (GRPO) step asks the rollout engine to generate."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rlsim.workload.lengths import LengthDist

__all__ = ["WorkloadConfig"]


class WorkloadConfig(BaseModel):
    """The rollout batch of one GRPO step (field names follow NeMo-RL).

    Each step samples ``num_prompts_per_step`` prompts and generates
    ``num_generations_per_prompt`` responses per prompt (one GRPO group per prompt); all
    responses of a group share their prompt.  Prompt lengths come from ``prompt_length``;
    response lengths from ``response_length``, then are truncated at ``max_new_tokens``
    (generation stops there, as vLLM's ``max_tokens`` does).

    ``group_length_correlation`` (rho) models that responses to the same prompt have similar
    lengths (hard prompts make every sample long).  Only a ``lognormal`` response length uses
    it: the normal noise of a response is ``sqrt(rho) * z_group + sqrt(1 - rho) * z_own``, still
    standard normal, so the marginal distribution (and its mean) is unchanged; rho = 1 makes all
    untruncated lengths of a group equal.  ``fixed`` lengths have no noise to correlate and
    ``empirical`` lengths are drawn independently: for those kinds the value is ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_prompts_per_step: int = Field(ge=1)
    num_generations_per_prompt: int = Field(ge=1)
    prompt_length: LengthDist
    response_length: LengthDist
    max_new_tokens: int = Field(ge=1)
    group_length_correlation: float = Field(default=0.0, ge=0.0, le=1.0)

    @property
    def num_sequences_per_step(self) -> int:
        """Sequences generated per step: prompts x generations per prompt."""
        return self.num_prompts_per_step * self.num_generations_per_prompt

    def mean_prompt_tokens_estimate(self, base_dir: Path | None = None) -> float:
        """Expected prompt length in tokens."""
        return self.prompt_length.mean_tokens_estimate(base_dir)

    def mean_response_tokens_estimate(self, base_dir: Path | None = None) -> float:
        """Expected response length in tokens after truncation at ``max_new_tokens``."""
        return self.response_length.mean_tokens_estimate(base_dir, cap_tokens=self.max_new_tokens)
