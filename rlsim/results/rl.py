"""Output files of an RL run: summary.json, per-step tables, breakdown / Gantt / running-batch PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlsim.results.atomic import atomic_path
from rlsim.results.trace import rl_trace, write_trace
from rlsim.results.writers import write_running_batch_png, write_summary_json

__all__ = ["write_rl_outputs", "breakdown_figure", "gantt_figure"]

_PARTS = [("weight_sync_time_s", "weight sync"), ("generation_time_s", "generation (exposed)"),
          ("reward_time_s", "reward"), ("logprob_time_s", "logprob"), ("train_time_s", "train"),
          ("drafter_train_time_s", "drafter training")]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_breakdown_png(result, path: Path) -> None:
    """Stacked per-step breakdown of the trainer's critical path, one group of bars per run."""
    fig = breakdown_figure(result)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, metadata={"Software": None})
    _plt().close(fig)


def breakdown_figure(result):
    """The figure of :func:`write_breakdown_png` (``RunResult.plot_breakdown``)."""
    plt = _plt()
    runs = list(result.runs.items())
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    width = 0.8 / len(runs)
    top = 0.0
    for i, (name, run) in enumerate(runs):
        df = run.steps
        x = df["step"].to_numpy() + i * width
        bottom = np.zeros(len(df))
        for j, (key, label) in enumerate(_PARTS):
            ax.bar(x, df[key], width, bottom=bottom, color=f"C{j}", label=label if i == 0 else None,
                   edgecolor="k", linewidth=0.3, hatch="//" if i else None)
            bottom += df[key].to_numpy()
        for xi, b in zip(x, bottom):
            ax.text(xi, b, f" {name}", ha="center", va="bottom", fontsize=6, rotation=90)
        top = max(top, float(bottom.max()) if len(bottom) else 0.0)
    steps = runs[0][1].steps["step"].to_numpy()
    ax.set_xticks(steps + width * (len(runs) - 1) / 2, [str(int(t)) for t in steps])
    ax.set_xlabel("RL step")
    ax.set_ylabel("seconds per step")
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)  # head room for the run labels above the bars
    ax.set_title(f"{result.summary['scenario']}: step time breakdown per run")
    ax.legend(fontsize=7, loc="upper left", ncols=3)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def write_gantt_png(result, path: Path) -> None:
    """Rollout and training pools over time, one pair of lanes per run."""
    fig = gantt_figure(result)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, metadata={"Software": None})
    _plt().close(fig)


def gantt_figure(result):
    """The figure of :func:`write_gantt_png` (``RunResult.plot_gantt``)."""
    plt = _plt()
    runs = list(result.runs.items())
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.9 * len(runs)), dpi=110)
    colors = {"generation": "C1", "logprob + train": "C4", "weight sync": "C0"}
    ticks, labels = [], []
    span = max((float(r.gantt["end_s"].max()) for _, r in runs if len(r.gantt)), default=1.0)
    for i, (name, run) in enumerate(runs):
        for lane, pool in enumerate(("rollout", "training")):
            y = 2 * i + lane
            ticks.append(y)
            labels.append(f"{name}: {pool}")
            g = run.gantt[run.gantt["pool"] == pool]
            for r in g.itertuples(index=False):
                ax.barh(y, r.end_s - r.start_s, left=r.start_s, color=colors[r.what], edgecolor="k", linewidth=0.3)
                if r.end_s - r.start_s >= 0.02 * span:  # a step label only where it fits
                    ax.text((r.start_s + r.end_s) / 2, y, str(r.step), ha="center", va="center", fontsize=6)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, list(colors), fontsize=7, loc="upper right")
    ax.set_title(f"{result.summary['scenario']}: pools over time (bars labelled with their RL step)")
    fig.tight_layout()
    return fig


def write_rl_outputs(result, out_dir: Path) -> list[Path]:
    """summary.json, steps_<run>.parquet/.csv, breakdown.png, gantt.png, running_batch.png, trace.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "summary.json"]
    write_summary_json(result.summary, paths[0])
    for name, run in result.runs.items():
        for ext in ("parquet", "csv"):
            p = out_dir / f"steps_{name}.{ext}"
            with atomic_path(p) as tmp:
                (run.steps.to_parquet(tmp, index=False) if ext == "parquet" else run.steps.to_csv(tmp, index=False))
            paths.append(p)
    for fname, writer in (("breakdown.png", write_breakdown_png), ("gantt.png", write_gantt_png)):
        writer(result, out_dir / fname)
        paths.append(out_dir / fname)
    spec = result.runs["spec"]
    if len(spec.segments):
        write_running_batch_png(spec.segments, out_dir / "running_batch.png", f"{result.summary['scenario']} (spec run)")
        paths.append(out_dir / "running_batch.png")
    write_trace(rl_trace(result), out_dir / "trace.json")  # every run, every pool (rlsim.results.trace)
    paths.append(out_dir / "trace.json")
    return paths
