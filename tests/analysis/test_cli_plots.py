"""rlsim sweep / plan on the command line, and the plot helpers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sweep_settings import ACC, BATCH, K, REPO, SYNC, TINY
from matplotlib.figure import Figure

from rlsim.analysis import plots


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-c", "from rlsim.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_sweep_writes_resumes_and_summarizes(tmp_path):
    out = tmp_path / "r.parquet"
    args = ["sweep", str(SYNC), "--grid", f"{K}=1,2", "--zip", f"{BATCH}=2", "--out", str(out), "--workers", "1"]
    for s in TINY:
        args += ["--set", s]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert "sweep: 2 rows: 2 ok, 0 infeasible, 0 error" in r.stdout and "best 2 by speedup_end_to_end" in r.stdout
    assert "2/2" not in r.stderr and "sweep" not in r.stderr  # no progress bar when stderr is not a terminal
    assert len(pd.read_parquet(out)) == 2
    r2 = _cli(*args)
    assert r2.returncode == 0 and "computed 0 points and 0 baselines, resumed 2" in r2.stdout


@pytest.mark.parametrize("args, msg", [
    (["--grid", "rollout.engine.max_num_seq=1,2"], "'max_num_seq' is not a field of rollout.engine"),
    (["--grid", "k"], "must look like path.to.field=v1,v2"),
    ([], "give at least one --grid or --zip"),
    (["--grid", f"{K}=1", "--backend", "spark"], "--backend = 'spark' must be local or ray"),
])
def test_cli_sweep_user_errors_are_one_line(tmp_path, args, msg):
    r = _cli("sweep", str(SYNC), "--out", str(tmp_path / "x.parquet"), *args)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: ") and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_plan_errors(tmp_path):
    r = _cli("plan", str(REPO / "scenarios" / "qwen8b_rollout.yaml"), "--target-step-time-s", "10", "--out", str(tmp_path))
    assert r.returncode == 2 and "needs an RL scenario" in r.stderr
    r = _cli("plan", str(SYNC), "--target-step-time-s", "10", "--gpus", "tpu_v5", "--out", str(tmp_path))
    assert r.returncode == 2 and "'tpu_v5' is not a hardware profile" in r.stderr


def test_plots_return_figures(tiny_sweep, tmp_path):
    df, _ = tiny_sweep
    figs = [plots.speedup_heatmap(df), plots.speedup_vs_batch(df, fixed_k=3), plots.best_k_vs_batch(df),
            plots.step_breakdown(df)]
    for i, f in enumerate(figs):
        assert isinstance(f, Figure)
        f.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 5000
    heat = figs[0]
    assert len([a for a in heat.axes if a.get_visible() and a.get_label() != "<colorbar>"]) >= 2
    assert plots.default_metric(df) == "speedup_end_to_end"
    # failed rows are ignored
    bad = pd.concat([df, df.head(1).assign(status="infeasible", speedup_end_to_end=None)], ignore_index=True)
    assert isinstance(plots.speedup_heatmap(bad, acceptance=ACC, batch=BATCH), Figure)


def test_best_k_is_drawn_at_integer_k(tiny_sweep):
    df, _ = tiny_sweep
    fig = plots.best_k_vs_batch(df)
    for line in fig.axes[0].get_lines():
        y = np.asarray(line.get_ydata(), dtype=float)
        assert np.allclose(y, np.round(y)), y


def test_step_breakdown_picks_k_at_one_acceptance_level(tiny_sweep):
    df, _ = tiny_sweep
    levels = sorted(df[ACC].unique())
    fig = plots.step_breakdown(df)
    title = fig.axes[0].get_title()
    if len(levels) > 1:
        assert f"{levels[(len(levels) - 1) // 2]:g}" in title and "best k per" in title
