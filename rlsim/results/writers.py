"""Output files of ``rlsim run --out DIR``.

* ``summary.json`` -- the contract scripts rely on; keys sorted, floats as Python repr, so the
  same scenario and seed give byte-identical files;
* ``sequences.parquet`` -- one row per sequence (lengths, engine, admit / first-token /
  finish times, preemptions);
* ``segments.parquet`` -- the engines' timelines (one row per fast-path jump or iteration);
* ``running_batch.png`` -- running batch size per engine over time (the long tail made visible);
* ``trace.json`` -- Chrome trace-event JSON (opens in Perfetto / chrome://tracing): one track
  per engine, a slice per segment, and a counter of the running batch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rlsim.results.atomic import atomic_path, write_text_atomic

__all__ = ["write_outputs", "write_summary_json", "write_chrome_trace", "write_running_batch_png"]


def _clean(obj):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_summary_json(summary: dict, path: Path) -> None:
    """Write ``summary`` deterministically (sorted keys, 2-space indent, trailing newline)."""
    write_text_atomic(path, json.dumps(_clean(summary), indent=2, sort_keys=True) + "\n")


def write_chrome_trace(segments: pd.DataFrame, path: Path, max_events: int = 400_000) -> None:
    """Chrome trace-event JSON of a rollout's engines (rlsim.results.trace: ``X`` slices per
    segment, a ``running`` counter per engine, no overlaps, decimated above ``max_events``)."""
    from rlsim.results.trace import rollout_trace, write_trace

    write_trace(rollout_trace(segments, max_events), path)


def write_running_batch_png(segments: pd.DataFrame, path: Path, title: str = "") -> None:
    """Step plot of running sequences per engine over time."""
    import matplotlib.pyplot as plt

    fig = running_batch_figure(segments, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)


def running_batch_figure(segments: pd.DataFrame, title: str = ""):
    """The figure of :func:`write_running_batch_png` (``RunResult.plot_running_batch``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    for e, df in segments.groupby("engine", sort=True):
        t = np.append(df["t0_s"].to_numpy(), df["t1_s"].to_numpy()[-1])
        b = np.append(df["running"].to_numpy(), 0)
        ax.step(t, b, where="post", linewidth=0.8, alpha=0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("running sequences per engine")
    ax.set_title(title or "running batch per engine")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_outputs(result, out_dir: Path, title: str = "") -> list[Path]:
    """Write every output of a rollout result into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / n for n in ("summary.json", "sequences.parquet", "segments.parquet", "running_batch.png", "trace.json")]
    write_summary_json(result.summary, paths[0])
    for frame, p in ((result.sequences, paths[1]), (result.segments, paths[2])):
        with atomic_path(p) as tmp:
            frame.to_parquet(tmp, index=False)
    write_running_batch_png(result.segments, paths[3], title)
    write_chrome_trace(result.segments, paths[4])
    return paths
