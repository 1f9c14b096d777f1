"""Plots of sweep results (pandas DataFrames from :func:`rlsim.sweep`); each returns a
matplotlib Figure (no pyplot state is left behind: ``fig.savefig(...)`` or show it in a notebook).

Column arguments default to what a draft-length sweep produces: ``k`` (the effective number of
speculative tokens), the acceptance axis (the swept column ending in ``acceptance.rate``, else
any swept column containing ``acceptance``), and the batch axis (the first other swept column).
Several seeds of a point are averaged.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

__all__ = ["speedup_heatmap", "speedup_vs_batch", "best_k_vs_batch", "step_breakdown", "default_metric"]

_STEP_PARTS = (("weight_sync_time_s", "weight sync"), ("generation_time_s", "generation (exposed)"),
               ("reward_time_s", "reward"), ("logprob_time_s", "logprob"), ("train_time_s", "train"),
               ("drafter_train_time_s", "drafter training"))


def _params(df: pd.DataFrame) -> list[str]:
    if "params" not in df.columns or not len(df):
        return []
    keys: list[str] = []
    for p in df["params"].dropna().unique():
        keys += [k for k in json.loads(p) if k not in keys]
    return [k for k in keys if k in df.columns]


def _short(col: str) -> str:
    names = {"workload.num_prompts_per_step": "prompts per step", "rollout.engine.max_num_seqs": "max_num_seqs",
             "rollout.engine.speculative_config.acceptance.rate": "acceptance rate",
             "rollout.engine.speculative_config.num_speculative_tokens": "k", "k": "k (draft length)"}
    return names.get(col, col.split(".")[-1])


def default_metric(df: pd.DataFrame) -> str:
    """``speedup_end_to_end`` for RL sweeps, ``speedup_rollout`` for rollout sweeps."""
    for c in ("speedup_end_to_end", "speedup_rollout"):
        if c in df.columns and df[c].notna().any():
            return c
    raise ValueError("no speedup column with values: sweep a scenario with a speculative_config (and its baseline)")


def _axes_cols(df: pd.DataFrame, k: str | None, acceptance: str | None, batch: str | None):
    params = _params(df)
    k = k or "k"
    if acceptance is None:
        acceptance = next((c for c in params if c.endswith("acceptance.rate")), None) or \
            next((c for c in params if "acceptance" in c), None)
    if batch is None:
        batch = next((c for c in params if c != acceptance and not c.endswith("num_speculative_tokens")), None)
    return k, acceptance, batch


def _ok(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    d = df.assign(**{metric: pd.to_numeric(df[metric], errors="coerce")})
    return d[(d["status"] == "ok") & d[metric].notna()] if "status" in d.columns else d[d[metric].notna()]


def speedup_heatmap(df: pd.DataFrame, metric: str | None = None, k: str | None = None, acceptance: str | None = None,
                    batch: str | None = None, max_panels: int = 6) -> Figure:
    """Speedup over k (x) x acceptance (y), one panel per batch setting; 1.0 is white, green
    pays, red loses; the best k of each acceptance row is boxed."""
    metric = metric or default_metric(df)
    k, acceptance, batch = _axes_cols(df, k, acceptance, batch)
    d = _ok(df, metric)
    if acceptance is None:
        raise ValueError("no acceptance column: pass acceptance=<column>")
    batches = sorted(d[batch].unique()) if batch else [None]
    batches = batches[:max_panels]
    vmin, vmax = float(d[metric].min()), float(d[metric].max())
    norm = TwoSlopeNorm(vcenter=1.0, vmin=min(vmin, 0.99), vmax=max(vmax, 1.01))
    ncol = min(3, len(batches))
    nrow = int(np.ceil(len(batches) / ncol))
    fig = Figure(figsize=(4.6 * ncol + 0.8, 3.6 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    im = None
    for ax, b in zip(axes, batches):
        sub = d if b is None else d[d[batch] == b]
        tab = sub.pivot_table(index=acceptance, columns=k, values=metric, aggfunc="mean").sort_index()
        im = ax.imshow(tab.to_numpy(), origin="lower", aspect="auto", cmap="RdYlGn", norm=norm)
        ax.set_xticks(range(tab.shape[1]), [f"{c:g}" for c in tab.columns])
        ax.set_yticks(range(tab.shape[0]), [f"{r:g}" for r in tab.index])
        for i in range(tab.shape[0]):
            row = tab.to_numpy()[i]
            best = int(np.nanargmax(row)) if np.isfinite(row).any() else -1
            for j, v in enumerate(row):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            fontweight="bold" if j == best else "normal")
            if best >= 0:
                ax.add_patch(_box(ax, best, i))
        ax.set_xlabel(_short(k))
        ax.set_ylabel(_short(acceptance))
        ax.set_title(f"{_short(batch)} = {b}" if b is not None else metric)
    for ax in axes[len(batches):]:
        ax.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=axes[: len(batches)].tolist(), label=f"{metric} (x)")
    fig.suptitle(f"where speculation pays: {metric}")
    return fig


def _box(ax, x, y):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5)


def _best(d: pd.DataFrame, metric: str, k: str, acceptance: str, batch: str) -> pd.DataFrame:
    m = d.groupby([batch, acceptance, k], as_index=False)[metric].mean()
    idx = m.groupby([batch, acceptance])[metric].idxmax()
    return m.loc[idx].sort_values([acceptance, batch])


def speedup_vs_batch(df: pd.DataFrame, metric: str | None = None, k: str | None = None, acceptance: str | None = None,
                     batch: str | None = None, fixed_k: int | None = None) -> Figure:
    """Speedup at the best k (solid) -- and at ``fixed_k`` (dashed) -- against the batch
    setting, one line per acceptance level."""
    metric = metric or default_metric(df)
    k, acceptance, batch = _axes_cols(df, k, acceptance, batch)
    d = _ok(df, metric)
    best = _best(d, metric, k, acceptance, batch)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    colors = _colors(best[acceptance].unique())
    for a, g in best.groupby(acceptance):
        ax.plot(g[batch], g[metric], "o-", color=colors[a], label=f"{_short(acceptance)} {a:g}")
        if fixed_k is not None:
            f = d[(d[acceptance] == a) & (d[k] == fixed_k)].groupby(batch)[metric].mean()
            ax.plot(f.index, f.to_numpy(), "--", color=colors[a], alpha=0.7)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    _batch_axis(ax, sorted(best[batch].unique()))
    ax.set_xlabel(_short(batch))
    ax.set_ylabel(f"{metric} (x)")
    ax.set_title("speedup at the best k" + (f" (dashed: k = {fixed_k})" if fixed_k is not None else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def best_k_vs_batch(df: pd.DataFrame, metric: str | None = None, k: str | None = None, acceptance: str | None = None,
                    batch: str | None = None) -> Figure:
    """The k with the highest speedup against the batch setting, one line per acceptance level."""
    metric = metric or default_metric(df)
    k, acceptance, batch = _axes_cols(df, k, acceptance, batch)
    best = _best(_ok(df, metric), metric, k, acceptance, batch)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    colors = _colors(best[acceptance].unique())
    n = max(1, best[acceptance].nunique())
    numeric = all(isinstance(v, (int, float, np.number)) and v > 0 for v in best[batch].unique())
    for i, (a, g) in enumerate(best.groupby(acceptance)):
        # k stays an integer; overlapping lines are set apart along the (log) batch axis instead
        dodge = 2.0 ** ((i - (n - 1) / 2) * 0.08) if numeric else 1.0
        x = g[batch] * dodge if numeric else g[batch]
        ax.plot(x, g[k], "o-", drawstyle="steps-mid", color=colors[a], label=f"{_short(acceptance)} {a:g}")
    _batch_axis(ax, sorted(best[batch].unique()))
    ax.set_xlabel(_short(batch))
    ax.set_ylabel(f"best {_short(k)} (by {metric})")
    ax.set_yticks(sorted(_ok(df, metric)[k].unique()))
    ax.set_title("best draft length vs batch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def step_breakdown(df: pd.DataFrame, rows: pd.DataFrame | None = None, label: str | list[str] | None = None,
                   with_baseline: bool = True, max_rows: int = 16) -> Figure:
    """Stacked step time (weight sync, exposed generation, reward, logprob, train, drafter
    training) of RL points (default: the best point per batch setting), each with its
    no-speculation baseline below it."""
    d = df[(df["status"] == "ok")] if "status" in df.columns else df
    if "step_time_s" not in d.columns:
        raise ValueError("step_breakdown needs an RL sweep (step_time_s column)")
    title_note = ""
    if rows is None:
        metric = next((c for c in ("speedup_end_to_end",) if c in d.columns and d[c].notna().any()), None)
        _, acceptance, batch = _axes_cols(d, None, None, None)
        if metric and batch:
            pool = d
            if acceptance in d.columns and d[acceptance].nunique() > 1:
                # acceptance is an input, not a choice: the best k per batch at the middle acceptance level
                levels = sorted(d[acceptance].unique())
                level = levels[(len(levels) - 1) // 2]
                pool = d[d[acceptance] == level]
                title_note = f" (best k per {_short(batch)} at {_short(acceptance)} {level:g})"
            rows = pool.loc[pool.groupby(batch)[metric].idxmax()]
        else:
            rows = d.head(max_rows)
    rows = rows.head(max_rows)
    params = _params(df)
    label = label or params
    labels = [label] if isinstance(label, str) else list(label)
    bars, names = [], []
    for _, r in rows.iterrows():
        name = ", ".join(f"{_short(c)}={r[c]:g}" if isinstance(r[c], (int, float, np.number)) else f"{_short(c)}={r[c]}"
                         for c in labels if c in r.index)
        if with_baseline and "baseline_step_time_s" in r.index and pd.notna(r.get("baseline_step_time_s")):
            base = ", ".join(f"{_short(c)}={r[c]}" for c in labels if c in r.index and "speculative_config" not in c)
            bars.append([r.get(f"baseline_{c}", 0.0) or 0.0 for c, _ in _STEP_PARTS])
            names.append(f"{base}  [no speculation]".strip())
        bars.append([r.get(c, 0.0) or 0.0 for c, _ in _STEP_PARTS])
        names.append(f"{name}  [k={int(r['k'])}]" if "k" in r.index else name)
    arr = np.asarray(bars, dtype=float)
    fig = Figure(figsize=(8.5, 0.38 * len(names) + 2.0), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(len(names))
    cmap = ["#8c8c8c", "#4c72b0", "#c4ad66", "#55a868", "#dd8452", "#8172b3"]
    for j, (_, nice) in enumerate(_STEP_PARTS):
        ax.barh(range(len(names)), arr[:, j], left=left, color=cmap[j], label=nice)
        left += arr[:, j]
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("steady-state step time (s)")
    ax.set_title("step-time breakdown" + title_note)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, ncol=6, loc="outside lower center")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _batch_axis(ax, values) -> None:
    """Log-2 x axis labelled with the swept values themselves."""
    if all(isinstance(v, (int, float, np.number)) and v > 0 for v in values):
        ax.set_xscale("log", base=2)
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()


def _colors(values) -> dict:
    from matplotlib import colormaps

    vals = sorted(values)
    cm = colormaps["viridis"]
    return {v: cm(i / max(1, len(vals) - 1) * 0.9) for i, v in enumerate(vals)}
