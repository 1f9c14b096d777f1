"""vLLM-V1-style engine: scheduler, paged KV accounting, iteration timing."""

from rlsim.engine.engine import Engine, EngineParams, Segment
from rlsim.engine.kv import KvCache

__all__ = ["Engine", "EngineParams", "Segment", "KvCache"]
