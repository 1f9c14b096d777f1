"""Capacity planning (``rlsim plan``): the cheapest cluster that reaches a target RL step time.

The search is bounded so that a 235B async scenario plans in a few minutes on two cores
(every candidate is a full pipeline simulation):

1. **coarse** -- per GPU kind: cluster sizes of 1/4, 1/2, 3/4 and all of ``max_gpus`` (rounded
   down to a multiple of 16), the rollout pool half of the cluster (disaggregated / async; a
   colocated pipeline uses every GPU for both), the scenario's rollout TP/EP, each with the
   scenario's k and without speculation;
2. **refine** -- around the best coarse point of each kind (the cheapest meeting the target,
   else the fastest) and the fastest point of the next smaller cluster size: the rollout share at 3/8 and 5/8, rollout TP halved and doubled (expert
   parallel as the scenario), and every other ``k``; one dimension at a time;
3. **twin** -- each kind's best point with speculation toggled (what speculation buys there).

Rollout pools are multiples of the rollout TP; the split keeps the training pool a multiple of
the trainer's TP x PP and EP where it can.

The trainer layout follows the scenario; where it does not fit a GPU kind's memory or the pool,
the first layout that does from a short ladder (expert parallel x2, x4, pipeline parallel x2,
tensor parallel x2) is used and recorded in the ``training_layout`` column.  Step time is
the steady-state window mean (rlsim.rl.steady: after the warm-up, until it converges) -- pass
``--set rl.num_steps=N`` to fix the step count and trade fidelity for time.  Cost = GPUs x the profile's
``price_per_gpu_hour_usd`` x step time.  Points are simulated with the sweep machinery
(:func:`rlsim.sweep`, resumable: ``DIR/points.parquet``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlsim.errors import ConfigError, RlsimError

__all__ = ["run_plan", "PlanResult", "pareto_mask", "pareto_figure"]

_TRAIN_KEYS = ("tensor_parallel_size", "pipeline_parallel_size", "expert_parallel_size")


@dataclass
class PlanResult:
    """What ``rlsim plan`` wrote, the evaluated points and the recommended one (or None)."""

    points: pd.DataFrame
    recommendation: dict | None
    headline: str
    paths: list[Path] = field(default_factory=list)
    #: the recommendation and the runner-up under each varied assumption (rlsim.analysis.robustness)
    robustness: pd.DataFrame | None = None


def _round16(n: float) -> int:
    return int(n // 16 * 16)


def _counts(max_gpus: int) -> list[int]:
    c = sorted({_round16(max_gpus * f) for f in (0.25, 0.5, 0.75)} | {max_gpus})
    return [n for n in c if n >= 8]


def _split(n: int, frac: float, tp: int, train_unit: int = 1) -> int:
    """Rollout GPUs: a multiple of the rollout TP near ``n * frac`` leaving a training pool that
    is a multiple of ``train_unit`` (the trainer's TP x PP and EP) where one exists."""
    cands = [r for r in range(tp, n, tp)]
    if not cands:
        return tp
    good = [r for r in cands if (n - r) % train_unit == 0] or cands
    return min(good, key=lambda r: (abs(r - n * frac), r))


def _layout_ladder(cfg: dict, moe: bool) -> list[dict]:
    tp, pp, ep = (cfg.get(k, 1) or 1 for k in _TRAIN_KEYS)
    lad = [(tp, pp, ep)]
    if moe:
        lad += [(tp, pp, ep * 2), (tp, pp, ep * 4), (tp, pp * 2, ep), (tp, pp * 2, ep * 2)]
        if ep > 1:
            lad.append((tp, pp, ep // 2))
    lad += [(tp * 2, pp, ep), (tp, pp * 2, ep), (tp * 2, pp * 2, ep)]
    out = []
    for t in lad:
        d = dict(zip(_TRAIN_KEYS, t))
        if d not in out:
            out.append(d)
    return out


def _train_layout(scenario: Path, overrides: list[str], pipeline: str, kind: str, n: int, r: int, t: int) -> dict:
    """The scenario's trainer layout if it fits ``t`` GPUs of ``kind``, else the first that does
    on the ladder (see the module docstring); ``{}`` when nothing can be checked."""
    from rlsim.config import load_scenario
    from rlsim.hardware import load_profile
    from rlsim.models import load_model
    from rlsim.training.layout import validate_layout

    try:
        loaded = load_scenario(scenario, overrides + [f"cluster.hardware={kind}", f"cluster.num_gpus={n}"])
        sc = loaded.scenario
        arch, hw = load_model(sc.model.name), load_profile(kind)
    except RlsimError:
        return {}
    from rlsim.sim.build import _max_model_len  # the engine's length cap sizes the activations

    try:
        max_len = _max_model_len(sc, arch, loaded.source, loaded.base_dir)
    except RlsimError:
        max_len = None
    cfg = sc.rl.training
    for cand in _layout_ladder(cfg.model_dump(), arch.is_moe):
        try:
            validate_layout(arch, cfg.model_copy(update=cand), t, hw, None, max_sequence_tokens=max_len)
            return cand
        except RlsimError:
            continue
    return {}


def _point(kind: str, n: int, r: int, t: int | None, tp: int, k: int | None, layout: dict, pipeline: str,
           stage: str) -> dict:
    p = {"cluster.hardware": kind, "cluster.num_gpus": n, "rollout.num_gpus": r,
         "rollout.engine.tensor_parallel_size": tp}
    if pipeline != "sync_colocated":
        p["rl.training.num_gpus"] = t
    for key, v in layout.items():
        p[f"rl.training.{key}"] = v
    if k is None:
        p["rollout.engine.speculative_config"] = None
    else:
        p["rollout.engine.speculative_config.num_speculative_tokens"] = k
    return {"point": p, "stage": stage}


def pareto_mask(cost: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """True where no other point is at most as costly and as slow (one strictly better)."""
    cost, time_s = np.asarray(cost, float), np.asarray(time_s, float)
    out = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        dom = (cost <= cost[i]) & (time_s <= time_s[i]) & ((cost < cost[i]) | (time_s < time_s[i]))
        out[i] = not dom.any()
    return out


def run_plan(scenario: str | Path, target_step_time_s: float, gpus: list[str] | None = None,
             max_gpus: int | None = None, out: str | Path = "plan", overrides: list[str] | tuple = (),
             workers: int | None = None, k_values: list[int] | None = None, progress=None,
             backend: str = "local", address: str | None = None) -> PlanResult:
    """Search, simulate, write ``plan.md``, ``pareto.png``, ``points.csv`` into ``out``."""
    import time

    from rlsim.analysis.sweep import sweep
    from rlsim.config import load_scenario
    from rlsim.hardware import list_profiles, load_profile

    t0 = time.perf_counter()
    scenario = Path(scenario)
    overrides = list(overrides)
    if not (target_step_time_s > 0 and math.isfinite(target_step_time_s)):
        raise ConfigError(f"--target-step-time-s = {target_step_time_s} must be a positive number")
    base = load_scenario(scenario, overrides)
    sc = base.scenario
    if sc.rl is None:
        raise ConfigError(f"{scenario}: rlsim plan needs an RL scenario (an rl: section); this one is a single rollout")
    gpus = gpus or ["h100_sxm", "b200_sxm", "gb200"]
    known = list_profiles()
    for g in gpus:
        if g not in known:
            raise ConfigError(f"--gpus: {g!r} is not a hardware profile (profiles: {', '.join(known)})")
    max_gpus = max_gpus or sc.cluster.num_gpus
    spec = sc.rollout.engine.speculative_config
    k0 = spec.num_speculative_tokens if spec is not None else None
    ks = sorted(set(k_values or [2, 3, 4]) | ({k0} if k0 else set())) if spec is not None else []
    pipeline = sc.rl.pipeline
    tp0 = sc.rollout.engine.tensor_parallel_size
    tcfg = sc.rl.training
    train_unit = math.lcm(tcfg.tensor_parallel_size * tcfg.pipeline_parallel_size, tcfg.expert_parallel_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "points.parquet"
    layouts: dict = {}

    def layout(kind, n, r, t):
        key = (kind, n, r, t)
        if key not in layouts:
            layouts[key] = _train_layout(scenario, overrides, pipeline, kind, n, r, t if t else n)
        return layouts[key]

    def candidates_for(kind, n, frac, tp, k, stage):
        if pipeline == "sync_colocated":
            r, t = n - n % tp, None
            if r < tp:
                return None
        else:
            if n < 2 * tp:
                return None
            r = _split(n, frac, tp, train_unit)
            t = n - r
        return _point(kind, n, r, t, tp, k, layout(kind, n, r, t), pipeline, stage)

    def evaluate(cands: list[dict]) -> pd.DataFrame:
        seen, pts, stages = set(), [], {}
        for c in cands:
            if c is None:
                continue
            key = json.dumps(c["point"], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            pts.append(c["point"])
            stages[key] = c["stage"]
        df = sweep(scenario, points=pts, overrides=overrides, out=store, workers=workers, baseline=False,
                   backend=backend, address=address, progress=progress)
        df["stage"] = [stages[json.dumps(json.loads(p), sort_keys=True)] for p in df["params"]]
        return df

    # ---- stage 1: coarse
    coarse = []
    for kind in gpus:
        for n in _counts(max_gpus):
            for k in ([None, k0] if k0 else [None]):
                coarse.append(candidates_for(kind, n, 0.5, tp0, k, "coarse"))
    d1 = _with_cost(evaluate(coarse), target_step_time_s)

    # ---- stage 2: refine around each kind's best
    refine = []
    anchors = []
    for kind in gpus:
        g = d1[d1["hardware_kind"] == kind]
        best = _best(g, target_step_time_s)
        if best is None:
            continue
        anchors.append(best)
        # and the fastest point of the next smaller cluster: a better split / TP / k may get it there
        ok = g[(g["status"] == "ok") & (g["total_gpus"] < best["total_gpus"])]
        if best["meets_target"] and len(ok):
            smaller = ok[ok["total_gpus"] == ok["total_gpus"].max()]
            anchors.append(smaller.sort_values(["step_time_s", "point"], kind="stable").iloc[0])
    for best in anchors:
        kind = best["hardware_kind"]
        n, tp, k = int(best["total_gpus"]), int(best["rollout_tp"]), (int(best["k"]) or None)
        if pipeline != "sync_colocated":
            for frac in (0.375, 0.625):
                refine.append(candidates_for(kind, n, frac, tp, k, "refine: split"))
        frac = best["rollout_gpus"] / n if pipeline != "sync_colocated" else 1.0
        for tp2 in (tp // 2, tp * 2):
            if tp2 >= 1 and tp2 != tp:
                refine.append(candidates_for(kind, n, frac, tp2, k, "refine: rollout TP"))
        for k2 in ks:
            if k2 != k:
                refine.append(candidates_for(kind, n, frac, tp, k2, "refine: k"))
    d2 = _with_cost(evaluate(coarse + refine), target_step_time_s) if refine else d1
    # ---- stage 3: each kind's best with speculation toggled, so the report can say what it buys
    twins = []
    for kind in gpus:
        best = _best(d2[d2["hardware_kind"] == kind], target_step_time_s)
        if best is None or (not best["k"] and not k0):
            continue
        n, tp = int(best["total_gpus"]), int(best["rollout_tp"])
        frac = best["rollout_gpus"] / n if pipeline != "sync_colocated" else 1.0
        twins.append(candidates_for(kind, n, frac, tp, None if best["k"] else k0, "twin: speculation toggled"))
    if twins:
        refine += twins
        d2 = _with_cost(evaluate(coarse + refine), target_step_time_s)
    stage_of = dict(zip(d1["point_id"], d1["stage"]))
    d2["stage"] = [stage_of.get(pid, s) for pid, s in zip(d2["point_id"], d2["stage"])]
    df = d2
    ok = df["status"] == "ok"
    df["pareto"] = False
    if ok.any():
        df.loc[ok, "pareto"] = pareto_mask(df.loc[ok, "cost_per_step_usd"].to_numpy(), df.loc[ok, "step_time_s"].to_numpy())
    rec = _best(df, target_step_time_s)
    rec = None if rec is None or not rec["meets_target"] else rec
    rob = None
    if rec is not None:
        from rlsim.analysis.robustness import plan_robustness

        rob = plan_robustness(scenario, overrides, df, rec, target_step_time_s, out, workers=workers, progress=progress,
                              backend=backend, address=address)
    wall = time.perf_counter() - t0
    profiles = {g: load_profile(g) for g in gpus}
    paths = _write(df, rec, out, scenario, sc, target_step_time_s, max_gpus, overrides, ks, profiles, wall, rob)
    head = _headline(df, rec, target_step_time_s, rob)
    return PlanResult(df, None if rec is None else rec.to_dict(), head, paths, rob)


def _with_cost(df: pd.DataFrame, target: float) -> pd.DataFrame:
    df = df.copy()
    df["hardware_kind"] = df["cluster.hardware"]
    df["total_gpus"] = df["cluster.num_gpus"].astype("int64")
    if "rl.training.num_gpus" in df.columns:
        df["training_gpus_planned"] = df["rl.training.num_gpus"]
    if "k" not in df.columns:
        df["k"] = np.nan
    kcol = "rollout.engine.speculative_config.num_speculative_tokens"
    df["k"] = df["k"].fillna(df[kcol] if kcol in df.columns else 0).fillna(0)
    df["speculation"] = df["k"] > 0
    df["rollout_tp"] = df["rollout.engine.tensor_parallel_size"]
    lay = []
    for p in df["params"]:
        d = json.loads(p)
        lay.append("TP{} PP{} EP{}".format(*(d.get(f"rl.training.{k}", "-") for k in _TRAIN_KEYS))
                   if any(f"rl.training.{k}" in d for k in _TRAIN_KEYS) else "scenario")
    df["training_layout"] = lay
    from rlsim.hardware import load_profile

    price = {g: load_profile(g).price_per_gpu_hour_usd for g in df["hardware_kind"].unique()}
    df["price_per_gpu_hour_usd"] = df["hardware_kind"].map(price)
    step = df["step_time_s"] if "step_time_s" in df.columns else pd.Series(np.nan, index=df.index)
    df["cost_per_step_usd"] = df["total_gpus"] * df["price_per_gpu_hour_usd"] * step / 3600.0
    df["cost_per_1000_steps_usd"] = 1000.0 * df["cost_per_step_usd"]
    df["meets_target"] = (df["status"] == "ok") & (step <= target)
    return df


def _best(df: pd.DataFrame, target: float):
    ok = df[df["status"] == "ok"]
    if not len(ok):
        return None
    meet = ok[ok["step_time_s"] <= target]
    if len(meet):
        return meet.sort_values(["cost_per_step_usd", "step_time_s", "point"], kind="stable").iloc[0]
    return ok.sort_values(["step_time_s", "cost_per_step_usd", "point"], kind="stable").iloc[0]


def _desc(r) -> str:
    pools = (f"{int(r['rollout_gpus'])} rollout + {int(r['training_gpus'])} training" if not bool(r.get("colocated"))
             else f"all {int(r['total_gpus'])} colocated")
    spec = f"speculative k={int(r['k'])}" if r["k"] else "no speculation"
    return (f"{int(r['total_gpus'])} x {r['hardware_kind']} ({pools}), rollout TP{int(r['rollout_tp'])}, {spec}, "
            f"trainer {r['training_layout']}")


def _headline(df: pd.DataFrame, rec, target: float, rob=None) -> str:
    from rlsim.analysis.robustness import robustness_summary

    n_ok = int((df["status"] == "ok").sum())
    lines = [f"plan: {len(df)} points ({n_ok} feasible, {len(df) - n_ok} infeasible)"]
    if rec is not None:
        lines.append(f"recommended: {_desc(rec)}: step {rec['step_time_s']:.1f} s <= {target:g} s, "
                     f"${rec['cost_per_step_usd']:.2f} per step, ${rec['cost_per_1000_steps_usd']:,.0f} per 1,000 steps")
        lines.append(robustness_summary(rob, float(rec["step_time_s"])))
    else:
        best = _best(df, target)
        lines.append(f"no evaluated point reaches {target:g} s" + (
            f"; fastest: {_desc(best)} at {best['step_time_s']:.1f} s" if best is not None else ""))
    return "\n".join(lines)


def pareto_figure(df: pd.DataFrame, target: float, rec=None):
    """Cost per step vs step time of every feasible point, by GPU kind (marker: with / without
    speculation), the Pareto front, the target and the recommendation."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.2), layout="constrained")
    ax = fig.subplots()
    ok = df[df["status"] == "ok"]
    colors = {"h100_sxm": "#4c72b0", "h200_sxm": "#8172b3", "b200_sxm": "#dd8452", "gb200": "#55a868"}
    for kind, g in ok.groupby("hardware_kind"):
        for spec, mk in ((True, "o"), (False, "x")):
            s = g[g["speculation"] == spec]
            if len(s):
                ax.scatter(s["step_time_s"], s["cost_per_step_usd"], marker=mk, s=36, color=colors.get(kind, None),
                           label=f"{kind}, {'speculation' if spec else 'no speculation'}", alpha=0.85)
    front = ok[ok["pareto"]].sort_values("step_time_s")
    if len(front):
        ax.step(front["step_time_s"], front["cost_per_step_usd"], where="post", color="black", linewidth=1,
                label="Pareto front")
    ax.axvline(target, color="red", linestyle="--", linewidth=1, label=f"target {target:g} s")
    if rec is not None:
        ax.scatter([rec["step_time_s"]], [rec["cost_per_step_usd"]], s=220, facecolors="none", edgecolors="red",
                   linewidths=2, label="recommended")
    ax.set_xlabel("steady-state step time (s)")
    ax.set_ylabel("cost per step (USD)")
    ax.set_title("cost vs step time of every feasible point")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def _md_table(rows: list[list], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _write(df, rec, out: Path, scenario: Path, sc, target, max_gpus, overrides, ks, profiles, wall, rob=None) -> list[Path]:
    paths = []
    cols = ["point", "stage", "status", "hardware_kind", "total_gpus", "rollout_gpus", "training_gpus", "rollout_tp",
            "training_layout", "k", "step_time_s", "generation_time_s", "train_time_s", "logprob_time_s",
            "weight_sync_time_s", "generation_makespan_s", "mean_acceptance_length", "cost_per_step_usd",
            "cost_per_1000_steps_usd", "meets_target", "pareto", "price_per_gpu_hour_usd", "calibration_status",
            "error", "point_id", "params"]
    csv = df[[c for c in cols if c in df.columns]]
    (out / "points.csv").write_text(csv.to_csv(index=False), encoding="utf-8")
    paths.append(out / "points.csv")
    fig = pareto_figure(df, target, rec)
    fig.savefig(out / "pareto.png", dpi=120)
    paths.append(out / "pareto.png")
    md = _markdown(df, rec, scenario, sc, target, max_gpus, overrides, ks, profiles, wall)
    if rec is not None:
        md += _robustness_md(rob, float(rec["step_time_s"]))
    (out / "plan.md").write_text(md, encoding="utf-8")
    paths.insert(0, out / "plan.md")
    if rob is not None and len(rob):
        rob.to_csv(out / "robustness.csv", index=False)
        paths.append(out / "robustness.csv")
    return paths


def _robustness_md(rob, rec_step: float) -> str:
    from rlsim.analysis.robustness import robustness_summary

    lines = ["", "## Robustness", "", robustness_summary(rob, rec_step) + ".", ""]
    if rob is not None and len(rob):
        rows = [[r.candidate, r.assumption, r.value, f"{r.step_time_s:.1f}" if r.step_time_s == r.step_time_s else r.status,
                 _money(r.cost_per_step_usd) if r.cost_per_step_usd == r.cost_per_step_usd else "-",
                 "yes" if r.meets_target else "no"] for r in rob.itertuples(index=False)]
        lines.append(_md_table(rows, ["candidate", "assumption", "value", "step (s)", "cost / step", "meets target"]))
    return "\n".join(lines) + "\n"


def _money(x) -> str:
    return f"${x:,.2f}" if x < 100 else f"${x:,.0f}"


def _markdown(df, rec, scenario, sc, target, max_gpus, overrides, ks, profiles, wall) -> str:
    ok = df[df["status"] == "ok"]
    L = [f"# Capacity plan: {sc.name}", "",
         f"Question: the cheapest cluster whose steady-state RL step takes at most **{target:g} s** "
         f"(`{scenario}`: {sc.model.name}, {sc.rl.pipeline} pipeline, "
         f"{sc.workload.num_prompts_per_step} prompts x {sc.workload.num_generations_per_prompt} samples per step).", ""]
    L += ["## Recommendation", ""]
    if rec is not None:
        L += [f"**{_desc(rec)}**", "",
              _md_table([[f"{rec['step_time_s']:.1f} s", _money(rec["cost_per_step_usd"]),
                          _money(rec["cost_per_1000_steps_usd"]), f"${rec['price_per_gpu_hour_usd']:g}",
                          rec["calibration_status"]]],
                        ["step time", "cost per step", "cost per 1,000 steps", "price per GPU-hour", "profile calibration"]), ""]
    else:
        best = None if not len(ok) else ok.sort_values("step_time_s").iloc[0]
        L += [f"**No evaluated point reaches {target:g} s.**" + (
            f" The fastest is {_desc(best)} at {best['step_time_s']:.1f} s "
            f"({_money(best['cost_per_step_usd'])} per step). Raise `--max-gpus`, add GPU kinds, or relax the target."
            if best is not None else " No point was feasible (see below)."), ""]
    L += ["## Why", ""]
    L += _why(df, rec, target)
    L += ["", "## Cost vs step time", "", "![cost per step vs step time, Pareto front](pareto.png)", "",
          "Circles speculate, crosses do not; the black staircase is the Pareto front (nothing both cheaper and faster).", ""]
    front = ok[ok["pareto"]].sort_values("step_time_s")
    L += [_md_table([[_desc(r), f"{r['step_time_s']:.1f}", _money(r["cost_per_step_usd"]),
                      _money(r["cost_per_1000_steps_usd"]), "yes" if r["meets_target"] else "no"]
                     for _, r in front.iterrows()],
                    ["Pareto point", "step (s)", "per step", "per 1,000 steps", "meets target"]), ""]
    L += ["## Best point per GPU kind", ""]
    rows = []
    for kind in profiles:
        g = df[df["hardware_kind"] == kind]
        b = _best(g, target)
        if b is None:
            reasons = g["error"].dropna().unique()
            rows.append([kind, "no feasible point", "-", "-", "-", (reasons[0][:160] + "...") if len(reasons) else "-"])
        else:
            rows.append([kind, _desc(b), f"{b['step_time_s']:.1f}", _money(b["cost_per_step_usd"]),
                         "yes" if b["meets_target"] else "no", f"{int((g['status'] == 'ok').sum())}/{len(g)} feasible"])
    L += [_md_table(rows, ["GPU", "best point", "step (s)", "per step", "meets target", "notes"]), ""]
    L += ["## Assumptions", ""]
    L += [f"- **Search** (bounded, coarse to fine; {len(df)} points simulated in {wall:.0f} s): GPU kinds "
          f"{', '.join(profiles)}; cluster sizes {', '.join(str(n) for n in _counts(max_gpus))} (1/4 .. all of "
          f"--max-gpus = {max_gpus}, multiples of 16); rollout pool half the cluster, then 3/8 and 5/8 around each "
          f"kind's best and its next smaller cluster's fastest (training pool a multiple of the trainer's TP x PP and EP); rollout TP {sc.rollout.engine.tensor_parallel_size} (expert parallel "
          f"{'on' if sc.rollout.engine.enable_expert_parallel else 'off'}), then halved / doubled; speculation off and "
          f"k = {', '.join(map(str, ks)) or '-'}. Other settings are the scenario's: a point outside this grid may be cheaper.",
          f"- **Step time**: steady-state window mean after the warm-up (`rl.num_steps` = "
          f"{sc.rl.num_steps or 'until converged'}, `rl.warmup_steps` = {sc.rl.warmup_steps or 'lag + 1'})"
          + (f"; overrides: `{' '.join(overrides)}`" if overrides else "") + ".",
          "- **Trainer layout**: the scenario's; where it does not fit a kind's memory or pool, the first that fits on "
          "the ladder expert parallel x2, x4, pipeline parallel x2, tensor parallel x2 (column `training_layout`).",
          "- **Cost** = GPUs in the cluster (rollout + training pools; colocated: the one pool) x list price per GPU-hour x "
          "step time; idle GPUs, storage, network and failures are not counted.",
          "- **Acceptance**: the scenario's acceptance model for every GPU kind and k (it depends on the drafter and the "
          "data, not the hardware).", ""]
    L += [_md_table([[g, p.display_name, f"${p.price_per_gpu_hour_usd:g}", p.calibration.status,
                      p.calibration.source[:140] + ("..." if len(p.calibration.source) > 140 else "")]
                     for g, p in profiles.items()],
                    ["profile", "system", "price per GPU-hour", "calibration", "source"]), ""]
    unc = [g for g, p in profiles.items() if p.calibration.status != "calibrated"]
    if unc:
        L += [f"Profiles not calibrated against measured kernels ({', '.join(unc)}) carry larger errors: "
              "treat their step times as estimates to validate before buying.", ""]
    bad = df[df["status"] != "ok"]
    L += [f"## Infeasible points ({len(bad)})", ""]
    if len(bad):
        L += [_md_table([[_short_desc(r), r["error"]] for _, r in bad.iterrows()], ["point", "reason"]), ""]
    else:
        L += ["None.", ""]
    L += ["Every evaluated point, with its costs and reasons: [points.csv](points.csv).", ""]
    return "\n".join(L)


def _short_desc(r) -> str:
    d = json.loads(r["params"])
    k = d.get("rollout.engine.speculative_config.num_speculative_tokens")
    t = d.get("rl.training.num_gpus")
    return (f"{d['cluster.num_gpus']} x {d['cluster.hardware']}, rollout {d['rollout.num_gpus']}"
            + (f" + training {t}" if t else "") + f", TP{d['rollout.engine.tensor_parallel_size']}, "
            + (f"k={k}" if k else "no spec"))


def _why(df, rec, target) -> list[str]:
    ok = df[df["status"] == "ok"]
    if rec is None or not len(ok):
        return ["- Nothing meets the target; the table below shows how close each GPU kind gets."]
    out = []
    gen, tr, lp, sync = (rec.get(c, 0.0) or 0.0 for c in ("generation_time_s", "train_time_s", "logprob_time_s",
                                                            "weight_sync_time_s"))
    parts = {"exposed generation": gen, "training": tr, "logprob": lp, "weight sync": sync}
    top = max(parts, key=parts.get)
    out.append(f"- Its {rec['step_time_s']:.1f} s step is {gen:.1f} s exposed generation + {lp:.1f} s logprob + "
               f"{tr:.1f} s training + {sync:.1f} s weight sync: **{top}** bounds it"
               + (" (generation overlaps training in the async pipeline)." if rec.get("pipeline") == "async" else "."))
    # the same cluster without / with speculation
    same = ok[(ok["hardware_kind"] == rec["hardware_kind"]) & (ok["total_gpus"] == rec["total_gpus"])
              & (ok["rollout_gpus"] == rec["rollout_gpus"]) & (ok["rollout_tp"] == rec["rollout_tp"])]
    if rec["k"]:
        nospec = same[same["k"] == 0]
        if len(nospec):
            n = nospec.iloc[0]
            out.append(f"- Speculation (k = {int(rec['k'])}, acceptance length {rec['mean_acceptance_length']:.2f}) "
                       f"takes this cluster from {n['step_time_s']:.1f} s to {rec['step_time_s']:.1f} s per step "
                       f"({n['step_time_s'] / rec['step_time_s']:.2f}x), saving "
                       f"{_money(n['cost_per_1000_steps_usd'] - rec['cost_per_1000_steps_usd'])} per 1,000 steps.")
    else:
        spec = same[same["k"] > 0]
        if len(spec):
            s = spec.sort_values("step_time_s").iloc[0]
            out.append(f"- Speculation does not pay here: the best k ({int(s['k'])}) gives {s['step_time_s']:.1f} s "
                       f"vs {rec['step_time_s']:.1f} s without.")
    meet = ok[ok["meets_target"]].sort_values("cost_per_step_usd")
    others = meet[meet["hardware_kind"] != rec["hardware_kind"]].drop_duplicates("hardware_kind")
    for _, o in others.iterrows():
        out.append(f"- The cheapest {o['hardware_kind']} option meeting the target ({_desc(o)}, "
                   f"{o['step_time_s']:.1f} s) costs {_money(o['cost_per_1000_steps_usd'])} per 1,000 steps "
                   f"({o['cost_per_step_usd'] / rec['cost_per_step_usd']:.2f}x).")
    kinds_meeting = set(meet["hardware_kind"])
    for kind in df["hardware_kind"].unique():
        if kind in kinds_meeting:
            continue
        g = ok[ok["hardware_kind"] == kind]
        if len(g):
            f = g.sort_values("step_time_s").iloc[0]
            out.append(f"- No {kind} point meets the target: its fastest is {f['step_time_s']:.1f} s ({_desc(f)}).")
        else:
            out.append(f"- No {kind} point is feasible (see the infeasible points).")
    smaller = ok[(ok["hardware_kind"] == rec["hardware_kind"]) & (ok["total_gpus"] < rec["total_gpus"])]
    if len(smaller):
        f = smaller.sort_values("step_time_s").iloc[0]
        out.append(f"- The best smaller {rec['hardware_kind']} cluster evaluated ({int(f['total_gpus'])} GPUs) "
                   f"reaches {f['step_time_s']:.1f} s.")
    return out
