"""Build a simulation from a scenario and run it."""

from rlsim.sim.build import Resolved, resolve
from rlsim.sim.rollout import RolloutResult, simulate_rollout

__all__ = ["Resolved", "resolve", "RolloutResult", "simulate_rollout"]
