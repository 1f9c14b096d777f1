"""Evaluate one sweep task in a worker process (local pool or Ray): pure, picklable, seeded.

A task is a plain dict, so the same function runs unchanged in a ``ProcessPoolExecutor`` or as
a Ray remote function, and returns a plain dict of JSON-able values (the row fragment).  Two
kinds of task:

* ``point`` -- the scenario with the point's overrides, as configured (speculation on if the
  scenario has a ``speculative_config``), without its baseline;
* ``baseline`` -- the same scenario with ``rollout.engine.speculative_config`` removed: the
  no-speculation run that every point sharing its :func:`baseline key <rlsim.analysis.points>`
  reuses (it depends on neither k nor the acceptance model), plus, for a disaggregated / async
  pipeline, the synchronous colocated twin (``sync_*`` columns), as ``rlsim run`` does.

A user-fixable failure (:class:`rlsim.errors.RlsimError`: a point that does not fit in memory,
a layout that does not divide) is ``status = "infeasible"`` with its one-line message; any
other exception is ``status = "error"`` with ``Type: message`` (rerunning retries those), and so
is a result with a non-finite number (never an answer: the row says which metric).
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["run_task", "load_text", "RL_METRICS", "ROLLOUT_METRICS"]

#: Columns of an RL point (mean over the steady-state steps, as ``rlsim run``).
RL_METRICS = ("step_time_s", "generation_time_s", "logprob_time_s", "train_time_s", "weight_sync_time_s",
              "reward_time_s", "drafter_train_time_s", "generation_makespan_s", "rollout_tokens_per_s",
              "mean_acceptance_length", "draft_acceptance_rate", "preemptions", "total_time_s",
              "steps_per_hour", "num_steps", "converged")
#: Columns of a rollout-only point (one batch).
ROLLOUT_METRICS = ("rollout_time_s", "output_tokens_per_s", "generated_tokens", "mean_running_batch",
                   "peak_running_batch", "preemptions", "tail_time_s", "engine_iterations",
                   "mean_acceptance_length", "draft_acceptance_rate")


def load_text(text: str, source: str, base_dir: str, overrides: list[str], seed: int | None):
    """``rlsim.config.load_scenario`` from the file's text (workers may not share the disk)."""
    from rlsim.config import LoadedScenario
    from rlsim.config.loader import apply_overrides, scenario_from_dict
    from rlsim.errors import ConfigError

    from rlsim._yaml import parse_yaml_value

    raw = parse_yaml_value(text, source, strict=True)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of keys")
    data = apply_overrides(raw, list(overrides))
    if seed is not None:
        data["seed"] = seed
    return LoadedScenario(scenario=scenario_from_dict(data, source), source=source, base_dir=Path(base_dir), raw=data)


def _num(v):
    """Plain Python numbers (NaN and inf kept: :func:`run_task` turns them into an error row)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v) if isinstance(v, int) else float(v)
    return v


def _non_finite(values: dict) -> str | None:
    """The first non-finite number of a result, as ``name = value``, or None."""
    for k, v in values.items():
        if isinstance(v, float) and not math.isfinite(v):
            return f"{k} = {v}"
    return None


def _pipeline(res, seed: int, speculative: bool, mode: str):
    from rlsim.rl.run import run_pipeline

    out, plan = run_pipeline(res, seed, speculative, mode)
    return out, plan.pools


def _describe(res) -> dict:
    sc = res.scenario
    spec = res.speculative
    mem = res.spec_memory if spec is not None else res.memory
    return {
        "hardware": res.hw.name, "calibration_status": res.hw.calibration.status,
        "price_per_gpu_hour_usd": _num(getattr(res.hw, "price_per_gpu_hour_usd", None)),
        "cluster_gpus": sc.cluster.num_gpus, "rollout_gpus": res.rollout_gpus, "rollout_tp": res.tp,
        "num_engines": res.num_engines, "k": spec.num_speculative_tokens if spec is not None else 0,
        "kv_capacity_tokens_per_engine": int(mem.kv_capacity_tokens),
    }


def _point(res, seed: int) -> dict:
    out = _describe(res)
    if res.scenario.rl is not None:
        run, pl = _pipeline(res, seed, res.speculative is not None, res.scenario.rl.pipeline)
        out.update({m: _num(run.summary.get(m)) for m in RL_METRICS})
        out["training_gpus"] = pl.training_gpus
        out["colocated"] = pl.colocated
        out["pipeline"] = res.scenario.rl.pipeline
    else:
        from rlsim.sim import simulate_rollout

        s = simulate_rollout(res, seed, speculative=True, paired=False).summary
        out.update({m: _num(s.get(m)) for m in ROLLOUT_METRICS})
        for k, v in sorted(s.get("time_breakdown_frac", {}).items()):
            out[f"frac_{k}"] = _num(v)
    return out


def _baseline(res, seed: int) -> dict:
    sc = res.scenario
    if sc.rl is None:
        from rlsim.sim import simulate_rollout

        s = simulate_rollout(res, seed, speculative=False, paired=False).summary
        return {f"baseline_{m}": _num(s.get(m)) for m in ROLLOUT_METRICS if "accept" not in m}
    run, _ = _pipeline(res, seed, False, sc.rl.pipeline)
    out = {f"baseline_{m}": _num(run.summary.get(m)) for m in RL_METRICS if "accept" not in m}
    if sc.rl.pipeline != "sync_colocated":
        from rlsim.rl.run import sync_twin

        twin, _ = _pipeline(sync_twin(res), seed, False, "sync_colocated")
        out["sync_step_time_s"] = _num(twin.summary["step_time_s"])
        out["sync_generation_makespan_s"] = _num(twin.summary["generation_makespan_s"])
    return out


def run_task(task: dict) -> dict:
    """Evaluate one task (see the module docstring); never raises for a point's own failure."""
    from rlsim.errors import RlsimError
    from rlsim.sim import resolve

    try:
        loaded = load_text(task["scenario_text"], task["source"], task["base_dir"], task["overrides"], task["seed"])
        res = resolve(loaded)
        seed = loaded.scenario.seed
        values = _baseline(res, seed) if task["kind"] == "baseline" else _point(res, seed)
        bad = _non_finite(values)
        if bad is not None:
            return {"status": "error", "error": f"the simulation gave a non-finite result ({bad})"}
        return {"status": "ok", "error": None, **values}
    except RlsimError as err:
        return {"status": "infeasible", "error": str(err)}
    except Exception as err:  # noqa: BLE001 - a crashing point must not end the sweep
        return {"status": "error", "error": f"{type(err).__name__}: {err}"}
