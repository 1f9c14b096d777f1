"""Library entry points (re-exported from :mod:`rlsim`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from rlsim.config import LoadedScenario, load_scenario
from rlsim.sim import RolloutResult, resolve, simulate_rollout

__all__ = ["simulate", "simulate_seeds", "seed_statistics"]


def _load(scenario, overrides, seed) -> LoadedScenario:
    return scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario, overrides, seed)


def simulate(scenario: str | Path | LoadedScenario, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None,
             baseline: bool = True) -> RolloutResult:
    """Load (if a path), validate and simulate a scenario; returns summary and tables.

    With a ``speculative_config`` the paired no-speculation baseline runs too (unless
    ``baseline=False``): ``result.summary["speedup"]["rollout"]``, ``result.baseline``.

    >>> r = simulate("scenarios/qwen8b_rollout.yaml", overrides=["workload.num_prompts_per_step=8"])  # doctest: +SKIP
    >>> r.summary["rollout_time_s"]  # doctest: +SKIP
    """
    loaded = _load(scenario, overrides, seed)
    return simulate_rollout(resolve(loaded), seed, paired=baseline)


def simulate_seeds(scenario: str | Path | LoadedScenario, num_seeds: int, overrides: list[str] | tuple[str, ...] = (),
                   seed: int | None = None, baseline: bool = True) -> tuple[list[RolloutResult], dict]:
    """Simulate seeds ``seed, seed + 1, ...`` (``num_seeds`` of them); returns the results and
    :func:`seed_statistics` over them."""
    loaded = _load(scenario, overrides, seed)
    res = resolve(loaded)
    first = loaded.scenario.seed if seed is None else seed
    results = [simulate_rollout(res, first + i, paired=baseline) for i in range(num_seeds)]
    return results, seed_statistics([r.summary for r in results])


def seed_statistics(summaries: list[dict]) -> dict:
    """Mean and two-sided 95 % Student-t interval over seeds of the headline numbers."""
    keys = ["rollout_time_s", "output_tokens_per_s", "tail_time_s", "preemptions", "mean_acceptance_length"]
    rows = {k: [s[k] for s in summaries if s.get(k) is not None] for k in keys}
    if all("speedup" in s for s in summaries):
        rows["speedup_rollout"] = [s["speedup"]["rollout"] for s in summaries]
        rows["baseline_rollout_time_s"] = [s["baseline"]["rollout_time_s"] for s in summaries]
    out = {"num_seeds": len(summaries), "seeds": [s["seed"] for s in summaries]}
    for k, vals in rows.items():
        if vals:
            out[k] = _mean_ci(np.asarray(vals, dtype=np.float64))
    return out


def _mean_ci(x: np.ndarray) -> dict:
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "ci95": [mean, mean]}
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": mean, "ci95": [mean - half, mean + half]}
