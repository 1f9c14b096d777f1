"""How robust a capacity plan's recommendation is to the scenario's assumptions (``rlsim plan``).

The recommended point and the runner-up (the next cheapest point that meets the target) are
re-simulated with each of the first :data:`MAX_ASSUMPTIONS` assumptions of
:func:`rlsim.analysis.sensitivity.assumptions` that the plan itself does not choose (it chooses
the GPU kind and count, the pool split, the rollout TP and k) at its low and high values.  The
report says in how many of those cases the recommendation still meets the target, its worst
step time, and in how many it stays cheaper per step than the runner-up (when the runner-up
also meets the target, or the recommendation is the only one that does).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["MAX_ASSUMPTIONS", "plan_robustness", "robustness_summary"]

#: Assumptions varied per candidate (x 2 values).
MAX_ASSUMPTIONS = 4
_PLANNED = ("cluster.", "rollout.num_gpus", "rl.training.num_gpus", "rollout.engine.tensor_parallel_size",
            "num_speculative_tokens", "rl.training.tensor_parallel_size", "rl.training.pipeline_parallel_size",
            "rl.training.expert_parallel_size")


def _value(text: str):
    import yaml

    return yaml.safe_load(text)


def _perturbations(scenario: Path, overrides: list[str], point: dict) -> list[tuple[str, str, dict]]:
    """(assumption, end, overrides) for the candidate ``point``."""
    from rlsim.analysis.sensitivity import assumptions
    from rlsim.config import load_scenario
    from rlsim.sim import resolve

    res = resolve(load_scenario(scenario, overrides + [f"{k}={json.dumps(v)}" for k, v in point.items()]))
    out, used = [], 0
    for a in assumptions(res):
        sets = [s for s in (a.low or ()) + (a.high or ())]
        if any(s.split("=", 1)[0].startswith(_PLANNED) or any(p in s for p in _PLANNED) for s in sets):
            continue
        if a.spec_only and res.speculative is None:
            continue
        for end, ov in (("low", a.low), ("high", a.high)):
            if ov is not None:
                out.append((a.name, f"{end} ({a.low_label if end == 'low' else a.high_label})",
                            {s.split("=", 1)[0]: _value(s.split("=", 1)[1]) for s in ov}))
        used += 1
        if used == MAX_ASSUMPTIONS:
            break
    return out


def plan_robustness(scenario: Path, overrides: list[str], df: pd.DataFrame, rec, target: float, out: Path,
                    workers=None, progress=None, backend: str = "local", address=None) -> pd.DataFrame:
    """One row per (candidate, perturbation): step time, cost per step, meets target."""
    from rlsim.analysis.sweep import sweep

    ok = df[(df["status"] == "ok") & df["meets_target"]].sort_values(["cost_per_step_usd", "step_time_s", "point"],
                                                                    kind="stable")
    cands = [("recommended", rec)]
    runner = ok[ok["point_id"] != rec["point_id"]]
    if len(runner):
        cands.append(("runner-up", runner.iloc[0]))
    pts, meta = [], []
    for role, r in cands:
        point = json.loads(r["params"])
        for name, end, ov in _perturbations(scenario, overrides, point):
            pts.append({**point, **ov})
            meta.append((role, r["point"], name, end, float(r["total_gpus"]) * float(r["price_per_gpu_hour_usd"])))
    if not pts:
        return pd.DataFrame()
    res = sweep(scenario, points=pts, overrides=overrides, out=out / "robustness.parquet", workers=workers, baseline=False,
                backend=backend, address=address, progress=progress)
    rows = []
    for (role, point, name, end, gpu_hour), r in zip(meta, res.itertuples(index=False)):
        step = getattr(r, "step_time_s", float("nan")) if r.status == "ok" else float("nan")
        rows.append({"candidate": role, "point": point, "assumption": name, "value": end, "status": r.status,
                     "step_time_s": step, "cost_per_step_usd": gpu_hour * step / 3600.0, "meets_target": step <= target,
                     "error": getattr(r, "error", "") if r.status != "ok" else ""})
    return pd.DataFrame(rows)


def robustness_summary(rob: pd.DataFrame, rec_step: float) -> str:
    """One paragraph: cases meeting the target, the worst case, cheaper than the runner-up."""
    if rob is None or not len(rob):
        return "robustness: not evaluated (no assumption to vary)"
    failed = int((rob["status"] != "ok").sum())
    rob = rob[rob["status"] == "ok"]
    r = rob[rob["candidate"] == "recommended"].reset_index(drop=True)
    if not len(r):
        return f"robustness: none of the {failed} perturbed cases could be simulated (see robustness.csv)"
    worst = r.loc[r["step_time_s"].idxmax()]
    text = (f"robustness: the recommendation meets the target in {int(r['meets_target'].sum())} of {len(r)} cases with "
            f"one assumption at its low / high value")
    text += f"; worst {worst['step_time_s']:.1f} s (vs {rec_step:.1f} s) with {worst['assumption']} {worst['value']}"
    u = rob[rob["candidate"] == "runner-up"].reset_index(drop=True)
    if len(u):
        both = r.merge(u, on=["assumption", "value"], suffixes=("", "_u"))
        cheaper = ((both["cost_per_step_usd"] <= both["cost_per_step_usd_u"]) | ~both["meets_target_u"]) & both["meets_target"]
        text += (f"; it stays the better choice (meets the target and is cheaper per step, or the runner-up misses) "
                 f"in {int(cheaper.sum())} of {len(both)}")
    if failed:
        text += f"; {failed} perturbed case(s) could not be simulated (robustness.csv has the errors)"
    return text
