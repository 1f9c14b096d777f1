"""Library entry points (re-exported from :mod:`rlsim`)."""

from __future__ import annotations

from pathlib import Path

from rlsim.config import LoadedScenario, load_scenario
from rlsim.sim import RolloutResult, resolve, simulate_rollout

__all__ = ["simulate"]


def simulate(scenario: str | Path | LoadedScenario, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> RolloutResult:
    """Load (if a path), validate and simulate a scenario; returns summary and tables.

    >>> r = simulate("scenarios/qwen8b_rollout.yaml", overrides=["workload.num_prompts_per_step=8"])  # doctest: +SKIP
    >>> r.summary["rollout_time_s"]  # doctest: +SKIP
    """
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario, overrides, seed)
    return simulate_rollout(resolve(loaded), seed)
