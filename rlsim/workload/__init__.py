"""Workload: what each RL step generates (prompt and response token lengths per sequence)."""

from rlsim.workload.batch import Batch, sample_batch
from rlsim.workload.config import WorkloadConfig
from rlsim.workload.lengths import EmpiricalLength, FixedLength, LengthDist, LognormalLength

__all__ = [
    "Batch",
    "EmpiricalLength",
    "FixedLength",
    "LengthDist",
    "LognormalLength",
    "WorkloadConfig",
    "sample_batch",
]
