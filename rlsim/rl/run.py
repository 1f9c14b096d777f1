"""Run an RL scenario: the speculative pipeline, its baseline(s), and the speedups."""

from __future__ import annotations

from rlsim.results.result import RunResult
from rlsim.rl.pipeline import PipelineResult, horizon, simulate_pipeline, step_batches
from rlsim.rl.plan import cost_plan
from rlsim.rl.policies.run import policy_resolved, policy_trained
from rlsim.rl.warnings import rl_warnings
from rlsim.sim.build import Resolved
from rlsim.sim.warnings import model_warnings

__all__ = ["RLResult", "simulate_rl", "run_pipeline", "SUMMARY_KEYS"]

#: Keys of the ``spec`` / ``baseline`` objects of an RL summary (steady-state window values;
#: ``rollout_tokens_per_s`` is the rollout pool's output over the window's wall time).
SUMMARY_KEYS = ("step_time_s", "generation_time_s", "logprob_time_s", "train_time_s", "weight_sync_time_s",
                "reward_time_s", "drafter_train_time_s", "generation_makespan_s", "rollout_tokens_per_s",
                "mean_acceptance_length", "draft_acceptance_rate", "preemptions", "pipeline", "warmup", "total_time_s",
                "steps_per_hour", "step_time_std_s", "step_time_min_s", "step_time_max_s", "window_steps", "num_steps",
                "warmup_steps", "converged", "convergence_last_change", "rollout_busy_tokens_per_s", "rollout_busy_frac",
                "rollout_idle_frac", "rollout_weight_update_frac", "trainer_idle_frac", "trainer_weight_sync_frac",
                "policy_lag", "trainer", "weight_sync")


#: An RL scenario's result is the common :class:`~rlsim.results.RunResult` (``kind="rl"``):
#: ``runs`` holds every pipeline run, ``steps`` / ``sequences`` / ``segments`` are the main
#: (``spec``) run's, ``baseline`` the baseline run's.
RLResult = RunResult


def run_pipeline(res: Resolved, seed: int, speculative: bool, mode: str, probe: int = 1) -> tuple[PipelineResult, object]:
    """One pipeline run (costs for every batch of its horizon, then the simpy run) and its
    :class:`~rlsim.rl.plan.CostPlan`; the summary carries the pools and the run's warnings.
    ``probe``: see :func:`rlsim.rl.plan.cost_plan`."""
    # the engine settings a rollout policy owns (rlsim.rl.policies) all act on speculation (draft
    # sizing, budgets, the drafter pool, its training): a run without speculation keeps the scenario's
    if speculative:
        res = policy_resolved(res)
    batches = policy_trained(res, step_batches(res, seed, horizon(res, mode, seed)[2]), seed)
    plan = cost_plan(res, batches, mode, speculative, probe)
    out = simulate_pipeline(res, plan, seed, speculative, mode)
    out.summary["pools"] = {"rollout_gpus": plan.pools.rollout_gpus, "training_gpus": plan.pools.training_gpus,
                            "colocated": plan.pools.colocated}
    warnings = rl_warnings(res, plan, out.summary)
    out.summary["warnings"] = warnings + [w for w in model_warnings(res) if w not in warnings]
    return out, plan


def _pipeline(res: Resolved, seed: int, speculative: bool, mode: str) -> PipelineResult:
    return run_pipeline(res, seed, speculative, mode)[0]


def sync_twin(res: Resolved) -> Resolved:
    """The synchronous colocated twin of a scenario: every GPU of both pools generates and
    trains, speculation as configured, weight sync resharding + sleep/wake."""
    from rlsim.config import LoadedScenario
    from rlsim.rl.plan import pools
    from rlsim.sim import resolve

    sc = res.scenario
    rl = sc.rl
    if rl.pipeline == "sync_colocated":
        return res
    pl = pools(res, rl.pipeline)
    twin_rl = rl.model_copy(update={
        "pipeline": "sync_colocated",
        "training": rl.training.model_copy(update={"num_gpus": None}),
        "weight_sync": rl.weight_sync.model_copy(update={"mode": "auto"}),
    })
    twin = sc.model_copy(update={"rl": twin_rl, "rollout": sc.rollout.model_copy(
        update={"num_gpus": pl.rollout_gpus + pl.training_gpus})})
    return resolve(LoadedScenario(twin, res.source, res.base_dir, {}))


def simulate_rl(res: Resolved, seed: int | None = None, baseline_mode: str = "no-spec",
                baselines: bool = True, workers: int = 1) -> RunResult:
    """Simulate the scenario's RL pipeline with speculation (if configured) and its baselines.

    ``baseline``: the same pipeline without speculation (``baseline_mode="no-spec"``) or the
    synchronous colocated twin without speculation (``"sync"``).  An async scenario also gets
    ``sync_baseline`` (the sync twin without speculation) and ``speedup.end_to_end_vs_sync``.
    ``baselines=False`` runs the scenario's own pipeline only.  ``workers`` > 1 simulates the
    runs in that many forked processes (:func:`rlsim._fork.fork_map`; each run is seeded on its
    own, so the results are identical).
    """
    from rlsim._fork import fork_map

    rl = res.scenario.rl
    seed = res.scenario.seed if seed is None else seed
    spec_on = res.speculative is not None
    todo = {"spec": (res, spec_on, rl.pipeline)}
    if baselines and baseline_mode == "sync":
        todo["baseline"] = (sync_twin(res), False, "sync_colocated")
    elif baselines and spec_on:
        todo["baseline"] = (res, False, rl.pipeline)
    if baselines and rl.pipeline != "sync_colocated" and baseline_mode != "sync":
        todo["sync_baseline"] = (sync_twin(res), False, "sync_colocated")
    # the longest run first, so that two workers overlap it with the others
    order = sorted(todo, key=lambda k: (k != "baseline", k != "spec"))
    done = dict(zip(order, fork_map(lambda k: _pipeline(todo[k][0], seed, todo[k][1], todo[k][2]), order, workers)))
    runs = {k: done[k] for k in todo}
    return _result(_summary(res, seed, runs, baseline_mode), runs)


def _as_result(summary: dict, run: PipelineResult) -> RunResult:
    return RunResult(summary, run.sequences, run.segments, steps=run.steps, kind="rl")


def _result(summary: dict, runs: dict[str, PipelineResult]) -> RunResult:
    main = _as_result(summary, runs["spec"])
    if "baseline" in runs:
        main.baseline = _as_result(runs["baseline"].summary, runs["baseline"])
    main.runs = runs
    return main


def _pick(s: dict) -> dict:
    out = {k: s.get(k) for k in SUMMARY_KEYS} | {"pools": s.get("pools"), "warnings": s.get("warnings", [])}
    if s.get("policy") is not None:  # rl.policy's side effects (rlsim.rl.policies); absent without one
        out["policy"] = s["policy"]
    return out


def _summary(res: Resolved, seed: int, runs: dict, baseline_mode: str) -> dict:
    spec = runs["spec"].summary
    out = {"scenario": res.scenario.name, "seed": seed, "pipeline": res.scenario.rl.pipeline,
           "speculative": res.speculative is not None, "baseline_mode": baseline_mode, "spec": _pick(spec)}
    speedup = {}
    if "baseline" in runs:
        b = runs["baseline"].summary
        out["baseline"] = _pick(b)
        speedup = {"end_to_end": b["step_time_s"] / spec["step_time_s"],
                   "generation": b["generation_makespan_s"] / spec["generation_makespan_s"],
                   "rollout_throughput": spec["rollout_tokens_per_s"] / b["rollout_tokens_per_s"]}
    if "sync_baseline" in runs:
        sb = runs["sync_baseline"].summary
        out["sync_baseline"] = _pick(sb)
        speedup["end_to_end_vs_sync"] = sb["step_time_s"] / spec["step_time_s"]
    out["speedup"] = speedup
    out["warnings"] = _all_warnings(runs)
    out["hardware"] = res.hw.calibration_summary()
    out["model"] = {"name": res.arch.name, "weight_dtype": res.weight_dtype}
    return out


def _all_warnings(runs: dict) -> list[str]:
    """Every run's warnings, once each; prefixed with the runs that have it unless all do."""
    names = list(runs)
    order: list[str] = []
    who: dict[str, list[str]] = {}
    for name in names:
        for w in runs[name].summary.get("warnings", []):
            if w not in who:
                order.append(w)
                who[w] = []
            who[w].append(name)
    return [w if len(who[w]) == len(names) else f"{', '.join(who[w])}: {w}" for w in order]
