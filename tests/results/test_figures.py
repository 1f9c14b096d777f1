"""Every PNG rlsim writes is readable: labels, a title, data, no clipped text, nothing over the
title (rlsim.results.figcheck, run on the figure as it is saved)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from rlsim.results.figcheck import figure_problems

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def checked(monkeypatch):
    """Patch Figure.savefig: record each saved figure's problems."""
    seen: dict[str, list[str]] = {}
    orig = Figure.savefig

    def savefig(self, fname, *a, **k):
        name = re.sub(r"^\.(.*)\.tmp\d+(\.\w+)$", r"\1\2", Path(str(fname)).name)  # rlsim.results.atomic's temp name
        seen[name] = figure_problems(self)
        return orig(self, fname, *a, **k)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


def test_figcheck_finds_problems():
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    fig.text(0.9, 0.5, "far right, over the edge")
    assert figure_problems(fig) == ["axes 0: no x label", "axes 0: no y label", "axes 0: no title",
                                    "text 'far right, over the edge' is clipped by the figure edge"]
    fig2 = Figure(figsize=(4, 3), layout="constrained")
    ax2 = fig2.subplots()
    ax2.bar([0], [1.0])
    ax2.set(xlabel="x (s)", ylabel="y (s)", title="a title")
    ax2.text(0.5, 1.03, "bar label", transform=ax2.transAxes, ha="center")
    assert figure_problems(fig2) == ["axes 0: text 'bar label' overlaps the title"]


def test_rollout_and_rl_figures_are_readable(checked, small_scenario, tmp_path):
    from rlsim.api import simulate
    from rlsim.results import write_outputs
    from rlsim.results.rl import write_rl_outputs

    write_outputs(simulate(small_scenario), tmp_path / "r", title="small")
    rl = simulate(REPO / "scenarios" / "qwen8b_async.yaml",
                  overrides=["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2", "rl.num_steps=6",
                             "workload.response_length.mean_tokens=300"])
    write_rl_outputs(rl, tmp_path / "rl")
    assert set(checked) == {"running_batch.png", "breakdown.png", "gantt.png"}
    assert checked == {k: [] for k in checked}


def test_pareto_figure_is_readable(checked, tmp_path):
    from rlsim.analysis.plan import pareto_figure, pareto_mask

    df = pd.DataFrame({"status": "ok", "hardware_kind": ["h100_sxm", "gb200", "gb200"], "speculation": [True, False, True],
                       "step_time_s": [50.0, 40.0, 30.0], "cost_per_step_usd": [1.0, 2.0, 2.5],
                       "total_gpus": [8, 16, 32], "k": [3, 0, 3]})
    df["pareto"] = pareto_mask(df["cost_per_step_usd"].to_numpy(), df["step_time_s"].to_numpy())
    fig = pareto_figure(df, 45.0, df.iloc[2])
    fig.savefig(tmp_path / "pareto.png")
    assert checked == {"pareto.png": []} and np.isfinite(df["step_time_s"]).all()


def test_pareto_points_are_labelled_with_their_cluster():
    from rlsim.analysis.plan import pareto_figure, pareto_mask

    df = pd.DataFrame({"status": "ok", "hardware_kind": ["h100_sxm", "gb200", "gb200"], "speculation": [True, False, True],
                       "step_time_s": [50.0, 40.0, 30.0], "cost_per_step_usd": [1.0, 2.0, 2.5],
                       "total_gpus": [8, 16, 32], "k": [3, 0, 3]})
    df["pareto"] = pareto_mask(df["cost_per_step_usd"].to_numpy(), df["step_time_s"].to_numpy())
    texts = {t.get_text() for t in pareto_figure(df, 45.0).axes[0].texts}
    assert texts == {f"{n} x {k}" for n, k in zip(df["total_gpus"][df["pareto"]], df["hardware_kind"][df["pareto"]])}
