"""rlsim: a discrete-event performance simulator for RL post-training of LLMs.

Public API::

    from rlsim import load_scenario, simulate
    result = simulate("scenarios/qwen8b_rollout.yaml", overrides=["seed=1"])   # or an RL scenario
    result.summary["rollout_time_s"]; result.sequences; result.segments; result.baseline
    rl = simulate("scenarios/qwen8b_sync.yaml"); rl.steps; rl.runs["baseline"].summary

Errors a user can cause are :class:`rlsim.errors.RlsimError` subclasses (see rlsim.errors).
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

# Imported on first use (PEP 562), so ``rlsim --help`` and ``import rlsim.errors`` do not pay for
# pandas / scipy; ``from rlsim import simulate`` works as before.
_LAZY = {
    "sweep": "rlsim.analysis", "simulate": "rlsim.api", "simulate_seeds": "rlsim.api",
    "seed_statistics": "rlsim.api", "load_scenario": "rlsim.config", "LoadedScenario": "rlsim.config",
    "Scenario": "rlsim.config", "RunResult": "rlsim.results.result", "RolloutResult": "rlsim.sim",
    "RlsimError": "rlsim.errors", "ConfigError": "rlsim.errors", "InfeasibleConfig": "rlsim.errors",
    "CalibrationError": "rlsim.errors",
}

if _TYPE_CHECKING:
    from rlsim.analysis import sweep
    from rlsim.api import seed_statistics, simulate, simulate_seeds
    from rlsim.config import LoadedScenario, Scenario, load_scenario
    from rlsim.errors import CalibrationError, ConfigError, InfeasibleConfig, RlsimError
    from rlsim.results.result import RunResult
    from rlsim.sim import RolloutResult


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlsim' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
