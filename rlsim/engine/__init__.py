"""vLLM-V1-style engine: requests, scheduler and policies, paged KV accounting, iteration timing.

The rooms (see docs/architecture.md): :mod:`~rlsim.engine.requests` (per-request state),
:mod:`~rlsim.engine.scheduler` (vLLM V1's schedule: budget, chunking, preemption) behind
:mod:`~rlsim.engine.policy` (waiting order and preemption victim), :mod:`~rlsim.engine.kv` (the
only owner of KV blocks), :mod:`~rlsim.engine.passes` (a pass's shape), :mod:`~rlsim.engine.jump`
(the fast path), :mod:`~rlsim.engine.params` (step time), :mod:`~rlsim.engine.engine` (the loop).
"""

from rlsim.engine.engine import Engine
from rlsim.engine.kv import KvCache
from rlsim.engine.params import EngineParams
from rlsim.engine.policy import POLICIES, Fcfs, SchedulingPolicy, ShortestRemaining, policy_named
from rlsim.engine.segment import Segment
from rlsim.engine.stats import EngineStats

__all__ = ["Engine", "EngineParams", "EngineStats", "Segment", "KvCache", "SchedulingPolicy", "Fcfs",
           "ShortestRemaining", "POLICIES", "policy_named"]
