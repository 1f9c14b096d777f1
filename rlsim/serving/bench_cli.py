"""``rlsim bench``: flags and/or a scenario -> a serving benchmark -> vLLM's report and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rlsim.config import LoadedScenario, apply_overrides, read_yaml, scenario_from_dict
from rlsim.errors import ConfigError
from rlsim.serving.flags import BENCH_FLAGS, ENGINE_FLAGS, render_report, scenario_from_flags

__all__ = ["run_bench", "FLAGS_SOURCE"]

#: What error messages name as the source when the scenario comes from flags alone.
FLAGS_SOURCE = "rlsim bench"


def _percentiles(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--metric-percentiles = {text!r} must be comma-separated numbers") from None
    if not vals or any(not 0 < v < 100 for v in vals):
        raise ConfigError(f"--metric-percentiles = {text!r} must list numbers in (0, 100)")
    return vals


def _flag_names(err: ConfigError, source: str) -> ConfigError:
    """Name the flag instead of the scenario field when the value came from a flag."""
    msg = str(err)
    for flag, path in {**ENGINE_FLAGS, **BENCH_FLAGS}.items():
        prefix = f"{source}: {path} "
        if msg.startswith(prefix):
            return ConfigError(f"--{flag.replace('_', '-')} " + msg[len(prefix):])
    return err


def _load(scenario: Path | None, flags: dict, overrides: list[str]) -> LoadedScenario:
    base = read_yaml(scenario) if scenario is not None else None
    source = str(scenario) if scenario is not None else FLAGS_SOURCE
    data = apply_overrides(scenario_from_flags(base, flags), overrides)
    try:
        sc = scenario_from_dict(data, source)
    except ConfigError as err:
        raise _flag_names(err, source) from None
    base_dir = scenario.resolve().parent if scenario is not None else Path(".").resolve()
    return LoadedScenario(sc, source, base_dir, data)


def _check_writable(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"--save-result = {str(path)!r}: cannot write ({exc.strerror})") from None


def run_bench(scenario: Path | None, flags: dict, overrides: list[str], percentiles: str = "99",
              save_result: Path | None = None, work_limit: float | None = None, progress=None) -> tuple[dict, str]:
    """Load, simulate and render; returns the result dict (vLLM's keys) and the report
    (``progress(done, total)``: finished requests, see :func:`rlsim.serving.bench.simulate_bench`).
    A benchmark asking for more work than ``work_limit`` (default :data:`rlsim.config.work.HARD_LIMIT`;
    0: none) is refused before it runs."""
    from rlsim.config.work import HARD_LIMIT, check_work, estimate
    from rlsim.serving.bench import simulate_bench
    from rlsim.sim import resolve

    pcts = _percentiles(percentiles)
    loaded = _load(scenario, flags, overrides)
    check_work(estimate(loaded.scenario, loaded.base_dir, source=loaded.source), loaded.source,
               HARD_LIMIT if work_limit is None else work_limit)
    if save_result is not None:
        _check_writable(save_result)
    try:
        res = resolve(loaded)
    except ConfigError as err:
        raise _flag_names(err, loaded.source) from None
    result = simulate_bench(res, percentiles=pcts, progress=progress).summary
    if save_result is not None:
        from rlsim.results.writers import _clean

        save_result.write_text(json.dumps(_clean(result), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result, render_report(result)
