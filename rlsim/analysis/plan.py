"""Capacity planning (``rlsim plan``): the cluster that reaches a target RL step time, by an
objective (``--objective``: the fewest GPUs by default; rlsim.analysis.plan_search).

1. **screen** (no simulation; :func:`rlsim.analysis.plan_search.screen_kind`) -- per GPU kind,
   the rollout layouts (TP, EP) and trainer layouts (TP, PP, EP) that fit memory, the feasible
   cluster sizes down to the smallest, and the constraint that excludes each smaller size;
2. **search** -- per kind, the largest feasible size, then a bisection over the feasible sizes
   for the smallest that meets the target (``fastest``: the largest only), assuming the step
   time falls as GPUs are added; each size at the rollout / training split that balances the
   pools' work (generation GPU-seconds vs logprob + training GPU-seconds) of the kind's last
   simulated point, with the scenario's k;
3. **refine** -- around each kind's best point: the split one and two rollout engines either
   way, rollout TP halved and doubled, every other ``k``; at the next smaller size (can another
   layout get there?) the split one engine either way and rollout TP halved / doubled; where
   that meets the target, the next smaller feasible sizes (at most twice); then each kind's
   best with speculation toggled;
4. **confirm** -- the search simulates a short window (warm-up + one dispatch cycle, as
   ``--sensitivity``) unless ``rl.num_steps`` is set; the best three points by the objective
   are re-simulated on the steady-state window (rlsim.rl.steady) and the first that still meets
   the target is recommended.

Cost = GPUs x the profile's ``price_per_gpu_hour_usd`` x step time (a run: plus the warm-up's
extra time, ``--run-steps`` steps).  Points are simulated with the sweep machinery
(:func:`rlsim.sweep`, resumable: ``DIR/points.parquet``, ``DIR/confirm.parquet``).
``plan.md`` names the binding stage's inputs as measured / fitted / assumed
(rlsim.analysis.provenance).
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


def pareto_mask(cost: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """True where no other point is at most as costly and as slow (one strictly better)."""
    cost, time_s = np.asarray(cost, float), np.asarray(time_s, float)
    out = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        dom = (cost <= cost[i]) & (time_s <= time_s[i]) & ((cost < cost[i]) | (time_s < time_s[i]))
        out[i] = not dom.any()
    return out


def _point(kind: str, n: int, r: int, t: int | None, roll: dict, k: int | None, layout: dict | None,
           pipeline: str, stage: str) -> dict:
    p = {"cluster.hardware": kind, "cluster.num_gpus": n, "rollout.num_gpus": r,
         "rollout.engine.tensor_parallel_size": roll["tensor_parallel_size"],
         "rollout.engine.enable_expert_parallel": roll["enable_expert_parallel"]}
    if pipeline != "sync_colocated":
        p["rl.training.num_gpus"] = t
    for key, v in (layout or {}).items():
        p[f"rl.training.{key}"] = v
    if k is None:
        p["rollout.engine.speculative_config"] = None
    else:
        p["rollout.engine.speculative_config.num_speculative_tokens"] = k
    return {"point": p, "stage": stage}


def _short_window(sc) -> list[str]:
    """``rl.num_steps`` = warm-up + one dispatch cycle (rlsim.analysis.sensitivity's window) unless
    the scenario or ``--set`` fixes it."""
    from rlsim.rl.steady import warmup_steps

    rl = sc.rl
    if rl.num_steps is not None:
        return []
    lag = rl.max_trajectory_age_steps if rl.pipeline == "async" else 0
    return [f"rl.num_steps={warmup_steps(rl, lag, None, rl.pipeline) + lag + 1}"]


def run_plan(scenario: str | Path, target_step_time_s: float, gpus: list[str] | None = None,
             max_gpus: int | None = None, out: str | Path = "plan", overrides: list[str] | tuple = (),
             workers: int | None = None, k_values: list[int] | None = None, progress=None,
             backend: str = "local", address: str | None = None, objective: str = "fewest-gpus",
             run_steps: int = 1000) -> PlanResult:
    """Screen, search, simulate; write ``plan.md``, ``pareto.png``, ``points.csv``,
    ``layouts.csv`` into ``out`` (module docstring)."""
    import time

    from rlsim.analysis.plan_search import check_objective, screen_kind
    from rlsim.config import load_scenario
    from rlsim.hardware import list_profiles, load_profile

    t0 = time.perf_counter()
    scenario = Path(scenario)
    overrides = list(overrides)
    check_objective(objective)
    if not (target_step_time_s > 0 and math.isfinite(target_step_time_s)):
        raise ConfigError(f"--target-step-time-s = {target_step_time_s} must be a positive number")
    if run_steps < 1:
        raise ConfigError(f"--run-steps = {run_steps} must be >= 1")
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
    colocated = pipeline == "sync_colocated"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    screens = {g: screen_kind(scenario, overrides, g, max_gpus) for g in gpus}
    short = _short_window(sc)
    search = _Search(scenario, overrides + short, out / "points.parquet", screens, colocated, pipeline, k0, ks,
                     target_step_time_s, objective, run_steps, dict(workers=workers, backend=backend, address=address,
                                                                     progress=progress))
    search.run()
    df = search.frame()
    rec = None
    if short:  # the search ran on a short window: confirm the best points on the steady-state window
        rec, confirmed = _confirm(search, overrides, out, df)
        df = pd.concat([df, confirmed], ignore_index=True) if confirmed is not None else df
    else:
        rec = _best(df, target_step_time_s, objective, run_steps)
        rec = None if rec is None or not rec["meets_target"] else rec
    ok = df["status"] == "ok"
    df["pareto"] = False
    if ok.any():
        df.loc[ok, "pareto"] = pareto_mask(df.loc[ok, "cost_per_step_usd"].to_numpy(), df.loc[ok, "step_time_s"].to_numpy())
    rob = None
    if rec is not None:
        from rlsim.analysis.robustness import plan_robustness

        rob = plan_robustness(scenario, overrides + short, df[df["stage"] != "confirm"], rec, target_step_time_s, out,
                              workers=workers, progress=progress, backend=backend, address=address)
    wall = time.perf_counter() - t0
    profiles = {g: load_profile(g) for g in gpus}
    info = _PlanInfo(objective, run_steps, short, screens, _binding_inputs(scenario, overrides, rec))
    paths = _write(df, rec, out, scenario, sc, target_step_time_s, max_gpus, overrides, ks, profiles, wall, rob, info)
    head = _headline(df, rec, target_step_time_s, rob, objective)
    return PlanResult(df, None if rec is None else rec.to_dict(), head, paths, rob)


def _binding_inputs(scenario: Path, overrides: list[str], rec) -> tuple[str, list[list[str]]]:
    """(binding stage, its inputs with measured / fitted / assumed) of the recommendation."""
    from rlsim.analysis.provenance import binding_stage, stage_inputs

    if rec is None:
        return "", []
    stage = binding_stage(rec)
    try:
        return stage, stage_inputs(scenario, overrides, json.loads(rec["params"]), stage)
    except RlsimError as err:  # pragma: no cover - the point simulated, so it resolves
        return stage, [["(could not resolve)", str(err), "-", "-"]]


@dataclass
class _PlanInfo:
    objective: str
    run_steps: int
    short: list[str]
    screens: dict
    binding: tuple[str, list[list[str]]]


class _Search:
    """Per GPU kind: the largest feasible cluster, then a bisection over the feasible sizes for
    the smallest one that meets the target (``fastest``: the largest only), each size at the
    split that balances the pools' work of the kind's last simulated point; then a refinement
    around each kind's best point and at the next smaller size (module docstring)."""

    def __init__(self, scenario, overrides, store, screens, colocated, pipeline, k0, ks, target, objective, run_steps,
                 sweep_kw):
        self.scenario, self.overrides, self.store, self.screens = scenario, overrides, store, screens
        self.colocated, self.pipeline, self.k0, self.ks = colocated, pipeline, k0, ks
        self.target, self.objective, self.run_steps, self.kw = target, objective, run_steps, sweep_kw
        self.cands: list[dict] = []
        self.df = pd.DataFrame()

    # -- candidates
    def _cand(self, kind: str, n: int, roll: dict, r: int | None, k, stage: str, frac: float = 0.5) -> dict | None:
        s = self.screens[kind]
        splits = s.splits(n, roll["tensor_parallel_size"], self.colocated)
        if not splits:
            return None
        if r is None or r not in splits:
            r = min(splits, key=lambda x: (abs(x - n * frac), x))
        t = None if self.colocated else n - r
        return _point(kind, n, r, t, roll, k, s.trainer_for(n if self.colocated else t), self.pipeline, stage)

    def _balanced(self, kind: str, n: int, stage: str) -> dict | None:
        """A candidate at size ``n``: the kind's preferred rollout layout with a split, the rollout
        share from the last simulated point's pool work (generation GPU-seconds vs training)."""
        frac = 0.5
        last = self._last_ok(kind)
        if last is not None and not self.colocated:
            gen = float(last["generation_makespan_s"] or 0.0) * float(last["rollout_gpus"])
            train = float((last["train_time_s"] or 0.0) + (last["logprob_time_s"] or 0.0)) * float(last["training_gpus"])
            if gen + train > 0:
                frac = gen / (gen + train)
        for roll in self.screens[kind].rollout:
            c = self._cand(kind, n, roll, None, self.k0, stage, frac)
            if c is not None:
                return c
        return None

    def _last_ok(self, kind: str):
        if not len(self.df):
            return None
        g = self.df[(self.df["hardware_kind"] == kind) & (self.df["status"] == "ok")]
        return None if not len(g) else g.iloc[-1]

    def evaluate(self, cands: list) -> None:
        from rlsim.analysis.sweep import sweep

        new = [c for c in cands if c is not None]
        if not new:
            return
        seen = {json.dumps(c["point"], sort_keys=True) for c in self.cands}
        for c in new:
            key = json.dumps(c["point"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                self.cands.append(c)
        stages = {json.dumps(c["point"], sort_keys=True): c["stage"] for c in self.cands}
        df = sweep(self.scenario, points=[c["point"] for c in self.cands], overrides=self.overrides, out=self.store,
                   baseline=False, **self.kw)
        df["stage"] = [stages[json.dumps(json.loads(p), sort_keys=True)] for p in df["params"]]
        self.df = _with_cost(df, self.target, self.run_steps)

    def _row(self, c):
        key = json.dumps(c["point"], sort_keys=True)
        m = self.df[[json.dumps(json.loads(p), sort_keys=True) == key for p in self.df["params"]]]
        return None if not len(m) else m.iloc[0]

    def _meets(self, c) -> bool:
        r = None if c is None else self._row(c)
        return r is not None and bool(r["meets_target"])

    # -- the search
    def run(self) -> None:
        state = {}
        first = {}
        for kind, s in self.screens.items():
            if s.feasible_sizes:
                first[kind] = self._balanced(kind, s.feasible_sizes[-1], "search: largest feasible")
        self.evaluate(list(first.values()))
        for kind, c in first.items():
            sizes = self.screens[kind].feasible_sizes
            if self.objective != "fastest" and self._meets(c):
                state[kind] = [-1, len(sizes) - 1]
        while True:  # bisection, all kinds in one sweep per round
            mids = {}
            for kind, (lo, hi) in state.items():
                if hi - lo > 1:
                    mid = (lo + hi) // 2
                    mids[kind] = (mid, self._balanced(kind, self.screens[kind].feasible_sizes[mid], "search: bisection"))
            if not mids:
                break
            self.evaluate([c for _, c in mids.values()])
            for kind, (mid, c) in mids.items():
                if self._meets(c):
                    state[kind][1] = mid
                else:
                    state[kind][0] = mid
        self._refine(state)

    def _refine(self, state: dict) -> None:
        cands = []
        for kind, s in self.screens.items():
            g = self.df[self.df["hardware_kind"] == kind] if len(self.df) else self.df
            best = _best(g, self.target, self.objective, self.run_steps) if len(g) else None
            if best is None:
                continue
            anchors = [best]
            lo = state.get(kind, [-1])[0]
            if lo >= 0 and self.objective != "fastest":  # the next smaller size: can another layout get it there?
                c = self._balanced(kind, s.feasible_sizes[lo], "refine: smaller size")
                r = None if c is None else self._row(c)
                if r is not None:
                    anchors.append(r)
            cands += self._around(kind, anchors[0])
            if len(anchors) > 1:
                cands += self._around(kind, anchors[1], smaller=True)
        self.evaluate(cands)
        if self.objective != "fastest":
            self._descend()
        if self.ks or self.k0:  # what speculation buys at each kind's best point
            twins = []
            for kind in self.screens:
                g = self.df[self.df["hardware_kind"] == kind]
                best = _best(g, self.target, self.objective, self.run_steps) if len(g) else None
                if best is not None:
                    d = json.loads(best["params"])
                    roll = {"tensor_parallel_size": int(best["rollout_tp"]),
                            "enable_expert_parallel": bool(d["rollout.engine.enable_expert_parallel"])}
                    k = None if best["k"] else self.k0
                    twins.append(self._cand(kind, int(best["total_gpus"]), roll, int(best["rollout_gpus"]), k,
                                            "twin: speculation toggled"))
            self.evaluate(twins)

    def _descend(self, rounds: int = 2) -> None:
        """Where the refinement met the target below the bisection's answer, try the next smaller
        feasible sizes too (balanced split, every rollout TP), at most ``rounds`` times."""
        for _ in range(rounds):
            cands = []
            for kind, s in self.screens.items():
                g = self.df[(self.df["hardware_kind"] == kind) & self.df["meets_target"]]
                if not len(g):
                    continue
                n = int(g["total_gpus"].min())
                tried = set(self.df[self.df["hardware_kind"] == kind]["total_gpus"].astype(int))
                below = [m for m in s.feasible_sizes if m < n]
                if not below or below[-1] in tried and not self._untried_tp(kind, below[-1]):
                    continue
                c = self._balanced(kind, below[-1], "refine: smaller size")
                if c is not None:
                    cands.append(c)
                    cands += self._tp_variants(kind, below[-1], c, "refine: smaller size")
            if not cands:
                return
            self.evaluate(cands)

    def _untried_tp(self, kind: str, n: int) -> bool:
        g = self.df[(self.df["hardware_kind"] == kind) & (self.df["total_gpus"] == n)]
        return len(set(int(t) for t in g["rollout_tp"])) < len(self.screens[kind].rollout)

    def _tp_variants(self, kind: str, n: int, c: dict, stage: str) -> list:
        p = c["point"]
        roll = {"tensor_parallel_size": p["rollout.engine.tensor_parallel_size"],
                "enable_expert_parallel": p["rollout.engine.enable_expert_parallel"]}
        k = p.get("rollout.engine.speculative_config.num_speculative_tokens")
        tp = roll["tensor_parallel_size"]
        return [self._cand(kind, n, o, None, k, stage, p["rollout.num_gpus"] / n) for o in self.screens[kind].rollout
                if o["enable_expert_parallel"] == roll["enable_expert_parallel"] and o["tensor_parallel_size"] in (tp // 2, tp * 2)]

    def _around(self, kind: str, a, smaller: bool = False) -> list:
        n, r, k = int(a["total_gpus"]), int(a["rollout_gpus"]), (int(a["k"]) or None)
        d = json.loads(a["params"])
        roll = {"tensor_parallel_size": int(a["rollout_tp"]), "enable_expert_parallel": bool(d["rollout.engine.enable_expert_parallel"])}
        out = []
        if not self.colocated:
            splits = self.screens[kind].splits(n, roll["tensor_parallel_size"], False)
            if r in splits:
                i = splits.index(r)
                for j in ((i - 1, i + 1) if smaller else (i - 2, i - 1, i + 1, i + 2)):
                    if 0 <= j < len(splits):
                        out.append(self._cand(kind, n, roll, splits[j], k, "refine: split"))
        tp = roll["tensor_parallel_size"]
        for other in self.screens[kind].rollout:  # rollout TP halved / doubled (the same expert-parallel setting)
            if other["enable_expert_parallel"] == roll["enable_expert_parallel"] and \
                    other["tensor_parallel_size"] in (tp // 2, tp * 2):
                out.append(self._cand(kind, n, other, None, k, "refine: rollout TP", r / n))
        for k2 in ([] if smaller else self.ks):
            if k2 != k:
                out.append(self._cand(kind, n, roll, r, k2, "refine: k"))
        return out

    def frame(self) -> pd.DataFrame:
        return self.df


def _confirm(search: _Search, overrides: list[str], out: Path, df: pd.DataFrame):
    """The best points by the objective (up to three) re-simulated on the steady-state window;
    the recommendation is the first that still meets the target there."""
    from rlsim.analysis.sweep import sweep

    ok = df[(df["status"] == "ok") & df["meets_target"]]
    if not len(ok):
        return None, None
    from rlsim.analysis.plan_search import rank_key

    top = ok.sort_values(rank_key(search.objective), kind="stable").head(3)
    pts = [json.loads(p) for p in top["params"]]
    conf = sweep(search.scenario, points=pts, overrides=overrides, out=out / "confirm.parquet", baseline=False, **search.kw)
    conf["stage"] = "confirm"
    conf = _with_cost(conf, search.target, search.run_steps)
    conf["point"] = top["point"].to_numpy()  # the search's numbers: the same configuration
    rec = _best(conf, search.target, search.objective, search.run_steps)
    return (rec if rec is not None and rec["meets_target"] else None), conf


def _with_cost(df: pd.DataFrame, target: float, run_steps: int = 1000) -> pd.DataFrame:
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
    # a run of run_steps steps: the warm-up's extra time (the simulated run's total minus its
    # steps at the steady-state step time) plus run_steps steady-state steps
    if "total_time_s" in df.columns and "num_steps" in df.columns:
        extra = (df["total_time_s"] - df["num_steps"] * step).clip(lower=0.0).fillna(0.0)
    else:
        extra = pd.Series(0.0, index=df.index)
    df["cost_per_run_usd"] = df["total_gpus"] * df["price_per_gpu_hour_usd"] * (extra + run_steps * step) / 3600.0
    df["meets_target"] = (df["status"] == "ok") & (step <= target)
    return df


def _best(df: pd.DataFrame, target: float, objective: str = "fewest-gpus", run_steps: int = 1000):
    """The best point by ``objective`` among those meeting the target, else the fastest."""
    from rlsim.analysis.plan_search import rank_key

    ok = df[df["status"] == "ok"] if len(df) else df
    if not len(ok):
        return None
    meet = ok[ok["step_time_s"] <= target]
    if len(meet):
        return meet.sort_values(rank_key(objective), kind="stable").iloc[0]
    return ok.sort_values(["step_time_s", "cost_per_step_usd", "point"], kind="stable").iloc[0]


def _desc(r) -> str:
    pools = (f"{int(r['rollout_gpus'])} rollout + {int(r['training_gpus'])} training" if not bool(r.get("colocated"))
             else f"all {int(r['total_gpus'])} colocated")
    spec = f"speculative k={int(r['k'])}" if r["k"] else "no speculation"
    return (f"{int(r['total_gpus'])} x {r['hardware_kind']} ({pools}), rollout TP{int(r['rollout_tp'])}, {spec}, "
            f"trainer {r['training_layout']}")


def _headline(df: pd.DataFrame, rec, target: float, rob=None, objective: str = "fewest-gpus") -> str:
    from rlsim.analysis.robustness import robustness_summary

    n_ok = int((df["status"] == "ok").sum())
    lines = [f"plan: {len(df)} points simulated ({n_ok} feasible, {len(df) - n_ok} infeasible); objective {objective}"]
    if rec is not None:
        lines.append(f"recommended ({objective}): {_desc(rec)}: step {rec['step_time_s']:.1f} s <= {target:g} s, "
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
        for _, r in front.iterrows():  # the front's points name their cluster
            ax.annotate(f"{int(r['total_gpus'])} x {r['hardware_kind']}" if "total_gpus" in r.index else str(r["hardware_kind"]),
                        (r["step_time_s"], r["cost_per_step_usd"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
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


def _write(df, rec, out: Path, scenario: Path, sc, target, max_gpus, overrides, ks, profiles, wall, rob=None,
           info: _PlanInfo | None = None) -> list[Path]:
    paths = []
    cols = ["point", "stage", "status", "hardware_kind", "total_gpus", "rollout_gpus", "training_gpus", "rollout_tp",
            "training_layout", "k", "step_time_s", "generation_time_s", "train_time_s", "logprob_time_s",
            "weight_sync_time_s", "generation_makespan_s", "mean_acceptance_length", "cost_per_step_usd",
            "cost_per_1000_steps_usd", "cost_per_run_usd", "meets_target", "pareto", "price_per_gpu_hour_usd", "calibration_status",
            "error", "point_id", "params"]
    csv = df[[c for c in cols if c in df.columns]]
    (out / "points.csv").write_text(csv.to_csv(index=False), encoding="utf-8")
    paths.append(out / "points.csv")
    fig = pareto_figure(df, target, rec)
    fig.savefig(out / "pareto.png", dpi=120)
    paths.append(out / "pareto.png")
    md = _markdown(df, rec, scenario, sc, target, max_gpus, overrides, ks, profiles, wall, info)
    if rec is not None:
        md += _robustness_md(rob, float(rec["step_time_s"]))
    if info is not None:
        md += _layouts_md(info, max_gpus)
        lay = pd.DataFrame([t.__dict__ for s in info.screens.values() for t in s.tried])
        (out / "layouts.csv").write_text(lay.to_csv(index=False), encoding="utf-8")
        paths.append(out / "layouts.csv")
    (out / "plan.md").write_text(md, encoding="utf-8")
    paths.insert(0, out / "plan.md")
    if rec is not None:  # the point's overrides (rlsim export --plan DIR)
        (out / "recommended.json").write_text(json.dumps(json.loads(rec["params"]), indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
        paths.append(out / "recommended.json")
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


_QUESTION = {"fewest-gpus": "the fewest GPUs", "cheapest-step": "the cheapest cluster per step",
             "cheapest-run": "the cheapest run", "fastest": "the fastest step (target reported, not ranked on)"}


def _layouts_md(info: _PlanInfo, max_gpus: int) -> str:
    """Per GPU kind: the smallest feasible cluster, the layouts tried and, per excluded size, why."""
    from rlsim.analysis.plan_search import cluster_sizes

    L = ["", "## Layouts tried (memory screen, before simulating)", "",
         f"Cluster sizes screened: {', '.join(map(str, cluster_sizes(max_gpus)))} and each kind's smallest feasible "
         "size. Every layout tried, with its reason: "
         "[layouts.csv](layouts.csv).", ""]
    for kind, s in info.screens.items():
        roll = [t for t in s.tried if t.pool == "rollout"]
        fits = sorted(t for t, v in s.trainer.items() if v is not None)
        L += [f"### {kind}", "",
              f"- smallest feasible cluster: **{s.feasible_sizes[0]} GPUs**" if s.feasible_sizes else
              "- **no feasible cluster size** up to --max-gpus",
              "- rollout engine layouts: " + ("; ".join(f"{t.layout} {'fits' if t.ok else 'no: ' + t.reason}" for t in roll)
                                               or "-"),
              f"- trainer: smallest pool with a fitting layout {fits[0]} GPUs ({_lay(s.trainer[fits[0]])}); "
              f"{sum(1 for t in s.tried if t.pool == 'training' and not t.ok)} pool sizes where the first layout tried does not fit"
              if fits else "- trainer: no layout fits any pool up to --max-gpus", ""]
        if s.excluded:
            L += [_md_table([[n, why] for n, why in s.excluded.items()], ["excluded size", "constraint"]), ""]
    return "\n".join(L) + "\n"


def _lay(d: dict) -> str:
    from rlsim.analysis.plan_search import layout_label

    return layout_label(d)


def _binding_md(info: _PlanInfo) -> list[str]:
    stage, rows = info.binding
    if not rows:
        return []
    n = {k: sum(1 for r in rows if r[2] == k) for k in ("measured", "fitted", "derived", "assumed")}
    return ["## Inputs of the binding stage", "",
            f"The recommendation's step is bound by **{stage}**; its inputs are {n['measured']} measured, "
            f"{n['fitted']} fitted, {n['derived']} derived and {n['assumed']} assumed (rlsim.analysis.provenance). Assumed inputs are what to "
            "measure before committing to the cluster.", "",
            _md_table(rows, ["input", "value", "kind", "source"]), ""]


def _markdown(df, rec, scenario, sc, target, max_gpus, overrides, ks, profiles, wall, info: _PlanInfo | None = None) -> str:
    objective = info.objective if info is not None else "cheapest-step"
    search = df[df["stage"] != "confirm"]
    ok = search[search["status"] == "ok"]
    L = [f"# Capacity plan: {sc.name}", "",
         f"Question ({objective}): {_QUESTION[objective]} whose steady-state RL step takes at most **{target:g} s** "
         f"(`{scenario}`: {sc.model.name}, {sc.rl.pipeline} pipeline, "
         f"{sc.workload.num_prompts_per_step} prompts x {sc.workload.num_generations_per_prompt} samples per step).", ""]
    L += ["## Recommendation", ""]
    if rec is not None:
        L += [f"**{_desc(rec)}**", "",
              _md_table([[f"{rec['step_time_s']:.1f} s", _money(rec["cost_per_step_usd"]),
                          _money(rec["cost_per_1000_steps_usd"]), f"${rec['price_per_gpu_hour_usd']:g}",
                          rec["calibration_status"]]],
                        ["step time", "cost per step", "cost per 1,000 steps", "price per GPU-hour", "profile calibration"]), ""]
        if info is not None and info.short:
            L += [f"Step time on the steady-state window (re-simulated); the search ranked on a short window "
                  f"(`{' '.join(info.short)}`: warm-up + one dispatch cycle, as `--sensitivity`).", ""]
        if info is not None:
            L += _binding_md(info)
    else:
        best = None if not len(ok) else ok.sort_values("step_time_s").iloc[0]
        L += [f"**No evaluated point reaches {target:g} s.**" + (
            f" The fastest is {_desc(best)} at {best['step_time_s']:.1f} s "
            f"({_money(best['cost_per_step_usd'])} per step). Raise `--max-gpus`, add GPU kinds, or relax the target."
            if best is not None else " No point was feasible (see below)."), ""]
    L += ["## Why", ""]
    L += _why(search, _search_row(search, rec), target)
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
        g = search[search["hardware_kind"] == kind]
        b = _best(g, target, objective)
        if b is None:
            reasons = g["error"].dropna().unique()
            rows.append([kind, "no feasible point", "-", "-", "-", (reasons[0][:160] + "...") if len(reasons) else "-"])
        else:
            rows.append([kind, _desc(b), f"{b['step_time_s']:.1f}", _money(b["cost_per_step_usd"]),
                         "yes" if b["meets_target"] else "no", f"{int((g['status'] == 'ok').sum())}/{len(g)} feasible"])
    L += [_md_table(rows, ["GPU", "best point", "step (s)", "per step", "meets target", "notes"]), ""]
    L += ["## Assumptions", ""]
    L += [f"- **Search** ({len(df)} points simulated in {wall:.0f} s): per GPU kind ({', '.join(profiles)}), a memory "
          f"screen of cluster sizes up to --max-gpus = {max_gpus} and of rollout / trainer layouts (section 'Layouts "
          "tried'); then the largest feasible size and a bisection over the feasible sizes for the smallest that meets "
          "the target (step time assumed to fall as GPUs are added), each size at the split that balances the pools' work "
          "of the last simulated point; then around each kind's best point: the split one and two rollout engines either "
          f"way, rollout TP halved / doubled, k = {', '.join(map(str, ks)) or '-'}, speculation toggled; at the "
          "next smaller size the split one engine either way and rollout TP halved / doubled; where that meets the "
          "target, the next smaller sizes too (twice at most). Other settings are the scenario's: a point outside this search may be better.",
          f"- **Step time**: steady-state window mean after the warm-up (`rl.num_steps` = "
          f"{sc.rl.num_steps or 'until converged'}, `rl.warmup_steps` = {sc.rl.warmup_steps or 'lag + 1'})"
          + (f"; overrides: `{' '.join(overrides)}`" if overrides else "") + ".",
          "- **Trainer layout**: the scenario's; where it does not fit a pool's memory, the first that fits with the least "
          "pipeline, then tensor, then expert parallelism (rlsim.analysis.plan_search; column `training_layout`).",
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
    bad = search[search["status"] != "ok"]
    L += [f"## Infeasible simulated points ({len(bad)})", ""]
    if len(bad):
        L += [_md_table([[_short_desc(r), r["error"]] for _, r in bad.iterrows()], ["point", "reason"]), ""]
    else:
        L += ["None.", ""]
    L += ["Every evaluated point, with its costs and reasons: [points.csv](points.csv).", ""]
    return "\n".join(L)


def _search_row(search: pd.DataFrame, rec):
    """The search's row of the recommended configuration (like-for-like comparisons)."""
    if rec is None:
        return None
    m = search[search["params"] == rec["params"]]
    return rec if not len(m) else m.iloc[0]


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
