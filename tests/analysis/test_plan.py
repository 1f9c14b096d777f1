"""rlsim plan on a tiny async scenario: the report, the Pareto image, every point in the CSV."""

from __future__ import annotations

import pandas as pd
from sweep_settings import REPO

from rlsim.analysis.plan import pareto_mask, run_plan

ASYNC = REPO / "scenarios" / "qwen8b_async.yaml"
TINY = ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=4", "rl.num_steps=3",
        "workload.response_length.mean_tokens=600"]


def test_pareto_mask():
    assert pareto_mask([1, 2, 3, 1.5], [3, 2, 1, 3]).tolist() == [True, True, True, False]


def test_plan_tiny_async(tmp_path):
    res = run_plan(ASYNC, 60.0, gpus=["h100_sxm", "gb200"], max_gpus=16, out=tmp_path, overrides=TINY, workers=2,
                   k_values=[2])
    for name in ("plan.md", "pareto.png", "points.csv"):
        assert (tmp_path / name).stat().st_size > 500
    csv = pd.read_csv(tmp_path / "points.csv")
    assert len(csv) == len(res.points) >= 6
    assert set(csv["hardware_kind"]) == {"h100_sxm", "gb200"}
    assert {"coarse"} < set(csv["stage"]) and csv["stage"].str.startswith("refine").any()
    assert (csv["k"] == 0).any() and (csv["k"] > 0).any()
    ok = csv[csv["status"] == "ok"]
    assert (ok["cost_per_step_usd"] > 0).all() and ok["pareto"].any()
    # robustness: the recommendation (and the runner-up) under each varied assumption
    rob = pd.read_csv(tmp_path / "robustness.csv")
    assert set(rob["candidate"]) == {"recommended", "runner-up"} and "acceptance rate" in set(rob["assumption"])
    assert "robustness: the recommendation meets the target in" in res.headline
    assert "## Robustness" in (tmp_path / "plan.md").read_text()
    assert (ok["cost_per_1000_steps_usd"] - 1000 * ok["cost_per_step_usd"]).abs().max() < 1e-6
    md = (tmp_path / "plan.md").read_text()
    for section in ("## Recommendation", "## Why", "![cost per step vs step time, Pareto front](pareto.png)",
                    "## Assumptions", "## Infeasible points", "calibrat", "per 1,000 steps"):
        assert section in md
    if res.recommendation is not None:
        rec = res.recommendation
        assert rec["step_time_s"] <= 60.0
        assert rec["cost_per_step_usd"] == ok[ok["meets_target"]]["cost_per_step_usd"].min()
    # rerun: every point resumes from DIR/points.parquet
    again = run_plan(ASYNC, 60.0, gpus=["h100_sxm", "gb200"], max_gpus=16, out=tmp_path, overrides=TINY, workers=2,
                     k_values=[2])
    assert again.points["step_time_s"].equals(res.points["step_time_s"])
