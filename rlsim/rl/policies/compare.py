"""``rlsim compare``: rollout policies side by side on identical sequences, over seeds.

Every policy runs the scenario's own pipeline (with speculation as configured; ``no_spec``
without it) on the same seeded base batches: seed s gives every policy the same prompts and
response lengths, which a policy may extend (over-generation) or split (partial rollouts) but
never redraws -- paired like the speculation baseline.  Per policy and seed one row of
:data:`METRICS`; :func:`summarise` gives the mean over seeds with a 95 % Student-t interval,
and the step-time speed-up over the first policy, paired by seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from rlsim.errors import ConfigError

__all__ = ["METRICS", "EXTRA_PREFIX", "SCENARIO", "policy_extras", "policy_names", "compare_policies", "summarise", "render", "plot",
           "policy_scenario"]

#: Columns of one (policy, seed) row: steady-state window means.
METRICS = ("step_time_s", "generation_time_s", "rollout_tokens_per_s", "trained_tokens_per_s", "rollout_idle_frac",
           "mean_acceptance_length", "off_policy_token_share", "mean_staleness_steps", "filtered_groups",
           "over_generation_factor", "tail_time_s", "migrations")


def policy_names(text: str, loaded=None) -> list[str]:
    """The policies of ``--policies``: comma-separated names, or ``all`` for every named policy
    (rlsim.rl.policies.NAMED, ``none`` first) that the ``loaded`` scenario can run: without a
    speculative_config, not ``no_spec`` nor the drafting policies
    (rlsim.config.rules.DRAFTING_POLICIES); last :data:`SCENARIO` when the scenario sets its own
    ``rl.policy``."""
    from rlsim.config.rules import DRAFTING_POLICIES
    from rlsim.rl.policies import NAMED

    if text.strip() != "all":
        return [n.strip() for n in text.split(",") if n.strip()]
    own = [SCENARIO] if loaded is not None and loaded.scenario.rl is not None and loaded.scenario.rl.policy else []
    if loaded is None or loaded.scenario.rollout.engine.speculative_config is not None:
        return list(NAMED) + own
    return [n for n, p in NAMED.items() if n != "no_spec" and (p is None or p.kind not in DRAFTING_POLICIES)] + own


#: The ``--policies`` name of the scenario's own ``rl.policy``, as configured (its own numbers).
SCENARIO = "scenario"


def policy_scenario(loaded, name: str):
    """The loaded scenario with policy ``name`` (rlsim.rl.policies.NAMED) as its ``rl.policy``;
    :data:`SCENARIO` keeps the scenario's own ``rl.policy``."""
    from rlsim.config import LoadedScenario
    from rlsim.config.rules import check_rules
    from rlsim.rl.policies import NAMED

    sc = loaded.scenario
    if sc.rl is None:
        raise ConfigError(f"{loaded.source}: rlsim compare needs an rl: section")
    if name == SCENARIO:
        if sc.rl.policy is None:
            raise ConfigError(f"--policies: {SCENARIO!r} runs the scenario's own rl.policy, and {loaded.source} sets none")
        return loaded
    if name not in NAMED:
        raise ConfigError(f"--policies: {name!r} is not a policy; expected some of {', '.join(NAMED)}, "
                          f"or {SCENARIO} (the scenario's own rl.policy)")
    if name == "no_spec" and sc.rollout.engine.speculative_config is None:
        raise ConfigError(f"--policies: no_spec needs a speculative_config in {loaded.source} (it switches it off)")
    sc = sc.model_copy(update={"rl": sc.rl.model_copy(update={"policy": NAMED[name]})})
    check_rules(sc, loaded.source)
    return LoadedScenario(sc, loaded.source, loaded.base_dir, {})


def _row(name: str, seed: int, out, num_engines: int) -> dict:
    from rlsim.rl.policies.tail_migration import tail_times

    s, steady = out.summary, out.steps[~out.steps["warmup"]]
    pol = s.get("policy") or {}
    trained = float(steady["trained_tokens"].mean()) if "trained_tokens" in steady else float(steady["rollout_tokens"].mean())
    return {"policy": name, "seed": seed, "step_time_s": s["step_time_s"], "generation_time_s": s["generation_time_s"],
            "rollout_tokens_per_s": s["rollout_tokens_per_s"], "trained_tokens_per_s": trained / s["step_time_s"],
            "rollout_idle_frac": s["rollout_idle_frac"],
            "mean_acceptance_length": s["mean_acceptance_length"] if s["mean_acceptance_length"] is not None else 1.0,
            "off_policy_token_share": pol.get("off_policy_token_share", 0.0),
            "mean_staleness_steps": pol.get("mean_staleness_steps", 0.0),
            "filtered_groups": pol.get("filtered_groups", 0.0),
            "over_generation_factor": pol.get("over_generation_factor", 1.0),
            "tail_time_s": float(np.mean(tail_times(out.sequences, steady, num_engines))),
            "migrations": float(steady["migrations"].mean()) if "migrations" in steady else 0.0,
            **policy_extras(pol)}


#: Prefix of a policy's own steady-state figures in a compare row (``summary["policy"]`` beyond
#: :data:`METRICS`, e.g. drafter_tail_training's ``tail_train_gpu_s``, multi_turn's ``tool_wait_s``).
EXTRA_PREFIX = "policy."


def policy_extras(pol: dict) -> dict:
    """A policy summary's own numeric figures, keyed ``policy.<name>``: those beyond the
    training-data side effects every policy reports (:data:`~rlsim.rl.policies.seam.DATA_COLUMNS`)
    and :data:`METRICS`."""
    from rlsim.rl.policies.seam import DATA_COLUMNS

    return {EXTRA_PREFIX + k: float(v) for k, v in pol.items() if k not in METRICS and k not in DATA_COLUMNS
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


def compare_policies(loaded, names: list[str], seeds: int, progress=None, workers: int = 1) -> pd.DataFrame:
    """One row per (policy, seed): seeds ``scenario.seed .. scenario.seed + seeds - 1``;
    ``progress(name, seed, run)`` hears each finished run (its PipelineResult; with ``workers``
    > 1, the runs are simulated in that many forked processes -- identical rows -- and heard
    once all have finished)."""
    from rlsim._fork import fork_map

    from rlsim.rl.run import run_pipeline
    from rlsim.sim import resolve

    if not names:
        raise ConfigError("--policies: name at least one policy")
    if len(set(names)) != len(names):
        raise ConfigError(f"--policies: {','.join(names)} names a policy twice")
    own = loaded.scenario.rl.policy if loaded.scenario.rl is not None else None
    if own is not None and SCENARIO not in names:  # it would be replaced by the named policies, unseen
        raise ConfigError(f"{loaded.source}: rl.policy = {own.kind!r} is set but --policies does not name {SCENARIO!r}: "
                          f"each run takes the policy --policies names (add {SCENARIO!r} to run the configured one)")
    variants = [(n, resolve(policy_scenario(loaded, n))) for n in names]
    base_seed = loaded.scenario.seed
    todo = [(seed, name, res) for seed in range(base_seed, base_seed + seeds) for name, res in variants]

    def one(job):
        seed, name, res = job
        out, _ = run_pipeline(res, seed, name != "no_spec", res.scenario.rl.pipeline)
        if progress is not None and workers <= 1:
            progress(name, seed, out)
        engines = out.summary["pools"]["rollout_gpus"] // (res.rollout_gpus // res.num_engines)  # a policy may resize the pool
        return _row(name, seed, out, engines), (out if workers > 1 and progress is not None else None)

    done = fork_map(one, todo, workers)
    if progress is not None and workers > 1:
        for (seed, name, _), (_, out) in zip(todo, done):
            progress(name, seed, out)
    return pd.DataFrame([row for row, _ in done])


def _interval(x: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % Student-t interval (NaN for one value)."""
    m = float(np.mean(x))
    if len(x) < 2:
        return m, float("nan")
    return m, float(stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per policy (in the order given): ``<metric>`` mean and ``<metric>_ci`` 95 % half-width
    over seeds, and ``speedup`` = first policy's step time / this one's, paired by seed."""
    order = list(dict.fromkeys(rows["policy"]))
    first = rows[rows["policy"] == order[0]].set_index("seed")["step_time_s"]
    out = []
    for name in order:
        r = rows[rows["policy"] == name].set_index("seed")
        rec = {"policy": name, "seeds": len(r)}
        extras = [c for c in rows.columns if c.startswith(EXTRA_PREFIX) and r[c].notna().any()]
        for m in METRICS + tuple(extras):
            rec[m], rec[m + "_ci"] = _interval(r[m].to_numpy(dtype=float))
        rec["speedup"], rec["speedup_ci"] = _interval((first.loc[r.index] / r["step_time_s"]).to_numpy())
        out.append(rec)
    return pd.DataFrame(out)


_SHOWN = (("step s", "step_time_s", "{:.1f}"), ("speed-up", "speedup", "{:.2f}x"),
          ("rollout tok/s", "rollout_tokens_per_s", "{:,.0f}"), ("trained tok/s", "trained_tokens_per_s", "{:,.0f}"),
          ("GPU idle", "rollout_idle_frac", "{:.1%}"), ("AL", "mean_acceptance_length", "{:.2f}"),
          ("off-policy", "off_policy_token_share", "{:.1%}"), ("stale steps", "mean_staleness_steps", "{:.2f}"),
          ("filtered grp", "filtered_groups", "{:.1f}"), ("over-gen", "over_generation_factor", "{:.2f}"),
          ("tail s", "tail_time_s", "{:.1f}"), ("migrations", "migrations", "{:.1f}"))


def _cell(fmt: str, v: float, ci: float) -> str:
    s = fmt.format(v)
    if math.isfinite(ci) and ci > 0:
        s += " ±" + fmt.format(ci).rstrip("x%").lstrip("+") + ("%" if fmt.endswith("%}") else "")
    return s


def render(table: pd.DataFrame, scenario: str) -> str:
    """The comparison as a text table (mean ± 95 % half-width over seeds)."""
    head = ["policy"] + [h for h, _, _ in _SHOWN]
    body = [[r["policy"]] + [_cell(f, r[k], r[k + "_ci"]) for _, k, f in _SHOWN] for _, r in table.iterrows()]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    n = int(table["seeds"].iloc[0])
    title = (f"{scenario}: rollout policies on identical sequences, {n} seed{'s' if n > 1 else ''} "
             f"(mean ± 95 % interval; speed-up vs {table['policy'].iloc[0]}, paired by seed)")
    lines = [title, line(head)] + [line(b) for b in body]
    own = [(r["policy"], [(c[len(EXTRA_PREFIX):], r[c], r[c + "_ci"]) for c in table.columns
                          if c.startswith(EXTRA_PREFIX) and not c.endswith("_ci") and pd.notna(r[c])])
           for _, r in table.iterrows()]
    if any(figs for _, figs in own):
        lines.append("policy-specific figures (steady-state means):")
        lines += [f"  {name}: " + ", ".join(f"{k} {_cell('{:,.0f}' if abs(v) >= 1000 else '{:.4g}', v, ci)}"
                                            for k, v, ci in figs)
                  for name, figs in own if figs]
    return "\n".join(lines)


def plot(table: pd.DataFrame, path, scenario: str):
    """Bars with 95 % intervals: step time, rollout throughput, GPU idle, and the training-data
    side effects (off-policy share, staleness, filtered groups)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlsim.results.atomic import atomic_path

    panels = (("step time (s)", "step_time_s", 1.0), ("rollout throughput (k tok/s)", "rollout_tokens_per_s", 1e-3),
              ("rollout GPU idle (%)", "rollout_idle_frac", 100.0), ("off-policy tokens (%)", "off_policy_token_share", 100.0),
              ("staleness (policy versions)", "mean_staleness_steps", 1.0), ("filtered groups per step", "filtered_groups", 1.0))
    fig, axes = plt.subplots(2, 3, figsize=(4.2 * 3, 3.4 * 2 + 0.6))
    x = np.arange(len(table))
    for ax, (title, key, scale) in zip(axes.ravel(), panels):
        ci = np.nan_to_num(table[key + "_ci"].to_numpy(dtype=float)) * scale
        ax.bar(x, table[key].to_numpy(dtype=float) * scale, yerr=ci, capsize=3, color="#4c72b0")
        ax.set_xticks(x, table["policy"], rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{scenario}: rollout policies (mean, 95 % interval over {int(table['seeds'].iloc[0])} seeds)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
