"""Library entry points (re-exported from :mod:`rlsim`): one ``simulate`` for every scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from rlsim.config import LoadedScenario, load_scenario
from rlsim.config.work import HARD_LIMIT, check_work, estimate
from rlsim.errors import ConfigError
from rlsim.results.result import RunResult
from rlsim.sim import Resolved, resolve, simulate_rollout

__all__ = ["simulate", "simulate_seeds", "seed_statistics", "BASELINE_MODES"]

#: RL baselines: the same pipeline without speculation, or the sync colocated twin without it.
BASELINE_MODES = ("no-spec", "sync")


def _load(scenario, overrides, seed) -> LoadedScenario:
    return scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario, overrides, seed)


def _simulate(res: Resolved, seed: int, baseline: bool, baseline_mode: str, workers: int = 1) -> RunResult:
    """A rollout batch, the RL pipeline(s) (an ``rl:`` section) or a serving benchmark (a
    ``serving:`` section); ``workers``: processes a rollout batch's engines, or an RL scenario's
    runs (speculative and baselines), run in."""
    kind = res.scenario.kind
    if kind == "serving":
        from rlsim.serving.bench import simulate_bench

        return simulate_bench(res, seed)
    if kind == "rollout":
        return simulate_rollout(res, seed, paired=baseline, workers=workers)
    from rlsim.rl.run import simulate_rl

    return simulate_rl(res, seed, baseline_mode, baselines=baseline, workers=workers)


def _check_mode(baseline_mode: str) -> None:
    if baseline_mode not in BASELINE_MODES:
        raise ConfigError(f"--baseline-mode = {baseline_mode!r} must be one of: {', '.join(BASELINE_MODES)}")


def simulate(scenario: str | Path | LoadedScenario, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None,
             baseline: bool = True, baseline_mode: str = "no-spec", work_limit: float | None = HARD_LIMIT,
             progress: bool | None = None, workers: int = 1) -> RunResult:
    """Load (if a path), validate and simulate a scenario: one rollout batch, RL steps when it
    has an ``rl:`` section, or a ``vllm bench serve``-like benchmark when it has ``serving:``.  Returns a :class:`~rlsim.results.RunResult` (``.summary``,
    ``.sequences``, ``.segments``, ``.steps`` (RL), ``.baseline``, ``.runs`` (RL)).
    ``progress``: a bar of the RL steps as they are simulated (None: in a notebook only, tqdm).
    ``workers``: a rollout batch's engines, or an RL scenario's runs (speculative, baseline, sync
    baseline), run in that many forked processes (the same result; serving runs ignore it).

    With a ``speculative_config`` the paired no-speculation baseline runs too (unless
    ``baseline=False``): ``result.summary["speedup"]``, ``result.baseline``.  RL scenarios:
    ``baseline_mode="sync"`` compares with the synchronous colocated twin instead; async ones
    also get the sync twin as ``sync_baseline``.

    >>> r = simulate("scenarios/qwen8b_rollout.yaml", overrides=["workload.num_prompts_per_step=8"])  # doctest: +SKIP
    >>> r.summary["rollout_time_s"]  # doctest: +SKIP

    A scenario asking for more work than ``work_limit`` (:mod:`rlsim.config.work`; None or 0:
    no limit) is refused before anything is simulated.
    """
    from rlsim.results.progress import ProgressBar, in_notebook, tracking

    _check_mode(baseline_mode)
    loaded = _load(scenario, overrides, seed)
    check_work(estimate(loaded.scenario, loaded.base_dir, baseline=baseline, source=loaded.source), loaded.source,
               work_limit)
    seed = loaded.scenario.seed if seed is None else seed
    show = in_notebook() if progress is None else progress
    with ProgressBar("simulate", quiet=not show) as bar, tracking(bar):
        return _simulate(resolve(loaded), seed, baseline, baseline_mode, workers)


def simulate_seeds(scenario: str | Path | LoadedScenario, num_seeds: int, overrides: list[str] | tuple[str, ...] = (),
                   seed: int | None = None, baseline: bool = True, baseline_mode: str = "no-spec",
                   work_limit: float | None = HARD_LIMIT, progress=None, workers: int = 1) -> tuple[list[RunResult], dict]:
    """Simulate seeds ``seed, seed + 1, ...`` (``num_seeds`` of them); returns the results and
    :func:`seed_statistics` over them.  ``work_limit`` and ``workers`` as :func:`simulate`
    (``work_limit`` over all seeds); ``progress(done, total)`` is called after each seed."""
    _check_mode(baseline_mode)
    if num_seeds < 1:
        raise ConfigError(f"--seeds = {num_seeds} must be >= 1")
    loaded = _load(scenario, overrides, seed)
    est = estimate(loaded.scenario, loaded.base_dir, seeds=num_seeds, baseline=baseline, source=loaded.source)
    check_work(est, loaded.source, work_limit)
    res = resolve(loaded)
    first = loaded.scenario.seed if seed is None else seed
    results = []
    for i in range(num_seeds):
        results.append(_simulate(res, first + i, baseline, baseline_mode, workers))
        if progress is not None:
            progress(i + 1, num_seeds)
    return results, seed_statistics([r.summary for r in results])


def _rollout_rows(summaries: list[dict]) -> dict[str, list]:
    keys = ["rollout_time_s", "output_tokens_per_s", "tail_time_s", "preemptions", "mean_acceptance_length"]
    rows = {k: [s[k] for s in summaries if s.get(k) is not None] for k in keys}
    if all("speedup" in s for s in summaries):
        rows["speedup_rollout"] = [s["speedup"]["rollout"] for s in summaries]
        rows["baseline_rollout_time_s"] = [s["baseline"]["rollout_time_s"] for s in summaries]
    return rows


def _rl_rows(summaries: list[dict]) -> dict[str, list]:
    rows = {"spec_step_time_s": [s["spec"]["step_time_s"] for s in summaries]}
    if "baseline" in summaries[0]:
        rows["baseline_step_time_s"] = [s["baseline"]["step_time_s"] for s in summaries]
    for k in summaries[0]["speedup"]:
        rows[f"speedup_{k}"] = [s["speedup"][k] for s in summaries]
    return rows


def _serving_rows(summaries: list[dict]) -> dict[str, list]:
    keys = ["duration", "output_throughput", "mean_ttft_ms", "median_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
            "p99_itl_ms", "mean_e2el_ms"]
    return {k: [s[k] for s in summaries] for k in keys}


def seed_statistics(summaries: list[dict]) -> dict:
    """Mean and two-sided 95 % Student-t interval over seeds of the headline numbers (rollout,
    RL or serving summaries)."""
    first = summaries[0]
    rows = _rl_rows(summaries) if "spec" in first else _serving_rows(summaries) if "mean_tpot_ms" in first \
        else _rollout_rows(summaries)
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
