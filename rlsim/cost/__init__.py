"""Pure cost functions composing op times (rlsim.hardware.ops) into forward passes and memory plans."""

from rlsim.cost.forward import ForwardModel, PassShape
from rlsim.cost.memory import MemoryPlan, plan_memory, weight_bytes_per_gpu

__all__ = ["ForwardModel", "PassShape", "MemoryPlan", "plan_memory", "weight_bytes_per_gpu"]
