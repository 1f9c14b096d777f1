"""rlsim: a discrete-event performance simulator for RL post-training of LLMs.

Public API::

    from rlsim import load_scenario, simulate
    result = simulate("scenarios/qwen8b_rollout.yaml", overrides=["seed=1"])   # or an RL scenario
    result.summary["rollout_time_s"]; result.sequences; result.segments; result.baseline
    rl = simulate("scenarios/qwen8b_sync.yaml"); rl.steps; rl.runs["baseline"].summary

Errors a user can cause are :class:`rlsim.errors.RlsimError` subclasses (see rlsim.errors).
"""

from rlsim.analysis import sweep
from rlsim.api import seed_statistics, simulate, simulate_seeds
from rlsim.config import LoadedScenario, Scenario, load_scenario
from rlsim.errors import CalibrationError, ConfigError, InfeasibleConfig, RlsimError
from rlsim.results.result import RunResult
from rlsim.sim import RolloutResult

__version__ = "0.1.0"

__all__ = [
    "simulate",
    "simulate_seeds",
    "seed_statistics",
    "sweep",
    "load_scenario",
    "LoadedScenario",
    "Scenario",
    "RunResult",
    "RolloutResult",
    "RlsimError",
    "ConfigError",
    "InfeasibleConfig",
    "CalibrationError",
    "__version__",
]
