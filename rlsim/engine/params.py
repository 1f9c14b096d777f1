"""Engine settings and the one rule that turns GPU and host time into step time.

Step time (DESIGN 5.3) = GPU pass time (target pass + drafting, :mod:`rlsim.cost`) combined with
host time ``cpu_step_s + cpu_per_seq_s * seqs + cpu_per_prefill_token_s * prefill_tokens``
(scheduler, input preparation, output processing): added without async scheduling; with it the
host work of step N+1 overlaps the GPU work of step N, so a step costs ``max(gpu, host) +
async_exposed_s`` (vLLM V1 ``--async-scheduling``; hardware_and_models.md C2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EngineParams"]


@dataclass(frozen=True)
class EngineParams:
    """Scheduler and host-overhead settings of one engine (from EngineConfig)."""

    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    num_blocks: int
    enable_chunked_prefill: bool = True
    enable_prefix_caching: bool = True
    async_scheduling: bool = True
    cpu_step_s: float = 1000e-6
    cpu_per_seq_s: float = 4e-6
    cpu_per_prefill_token_s: float = 0.02e-6
    async_exposed_s: float = 0.0
    async_exposed_per_seq_s: float = 0.0
    fast: bool = True
    scheduling_policy: str = "fcfs"
    record_token_gaps: bool = False  # keep inter-token latencies (serving benchmarks)
    #: With async scheduling, a request arriving while step N runs joins step N + 2: step N + 1
    #: was scheduled during step N (vLLM PR #19970).  Off: it joins step N + 1.
    async_admission_lag: bool = False

    def host_s(self, seqs: int, prefill_tokens: int) -> float:
        """Host time of one step with ``seqs`` scheduled requests and ``prefill_tokens``."""
        return self.cpu_step_s + self.cpu_per_seq_s * seqs + self.cpu_per_prefill_token_s * prefill_tokens

    def step_s(self, gpu_s, host_s, seqs: int = 0):
        """Step time from GPU and host time (scalars or arrays) of a step with ``seqs`` scheduled
        requests: overlapped with async scheduling (but for the exposed part), else serial."""
        if self.async_scheduling:
            exposed_s = self.async_exposed_s + self.async_exposed_per_seq_s * seqs
            if isinstance(gpu_s, float) and isinstance(host_s, float):  # one step: no array round trip
                return max(gpu_s, host_s) + exposed_s
            return np.maximum(gpu_s, host_s) + exposed_s
        return gpu_s + host_s
