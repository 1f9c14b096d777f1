"""The ``serving:`` section of a scenario: a simulated ``vllm bench serve`` client.

Field names are ``vllm bench serve``'s flags (vllm/benchmarks/serve.py, datasets.py RandomDataset)
with their defaults: ``--num-prompts 1000``, ``--request-rate inf``, ``--burstiness 1.0``,
``--max-concurrency`` none, ``--random-input-len 1024``, ``--random-output-len 128``,
``--random-range-ratio 0.0``, ``--random-prefix-len 0``.  Outputs have exactly the sampled
length (the benchmark's ``--ignore-eos``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ServingConfig"]


class ServingConfig(BaseModel):
    """Requests a benchmark client sends (see the module docstring).

    * arrivals: with ``request_rate`` None (vLLM's ``inf``) every request is ready at t = 0;
      else inter-arrival times are Gamma(shape = ``burstiness``, scale = 1 / (rate x
      burstiness)) -- exponential (Poisson arrivals) at burstiness 1, as vLLM draws them;
    * ``max_concurrency`` caps requests in flight (vLLM's semaphore): a closed-loop client when
      the rate is unlimited (each finished request is replaced at once);
    * lengths: input uniform on the integers ``int(L (1 - r)) .. int(L (1 + r))`` plus the common
      prefix, output likewise (vLLM's RandomDataset), or rows of ``dataset_path`` (CSV with
      ``input_len`` and ``output_len`` columns, taken in order and cycled).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_prompts: int = Field(default=1000, ge=1, description="requests to send (vLLM: --num-prompts)")
    max_concurrency: int | None = Field(default=None, ge=1, description="requests in flight at most; None = unlimited")
    request_rate: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                       description="requests per second; None = all at once (vLLM's inf)")
    burstiness: float = Field(default=1.0, gt=0, allow_inf_nan=False, description="Gamma shape of inter-arrival times")
    random_input_len: int = Field(default=1024, ge=1)
    random_output_len: int = Field(default=128, ge=1)
    random_range_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="lengths uniform in L (1 -+ r)")
    random_prefix_len: int = Field(default=0, ge=0, description="tokens every prompt shares (prefix-cache hits)")
    dataset_path: str | None = Field(default=None, description="CSV of input_len, output_len per request (relative "
                                                               "to the scenario)")

    @model_validator(mode="after")
    def _lengths_positive(self) -> "ServingConfig":
        if int(self.random_output_len * (1 - self.random_range_ratio)) < 1:
            raise ValueError(f"random_range_ratio = {self.random_range_ratio} lets random_output_len = "
                             f"{self.random_output_len} reach 0 tokens")
        return self

    def max_input_tokens(self) -> int:
        """Longest prompt the random dataset can draw (prefix included)."""
        return self.random_prefix_len + int(self.random_input_len * (1 + self.random_range_ratio))

    def max_output_tokens(self) -> int:
        """Longest output the random dataset can draw."""
        return int(self.random_output_len * (1 + self.random_range_ratio))
