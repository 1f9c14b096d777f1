"""rlsim plan on a tiny async scenario: the report, the Pareto image, every point in the CSV."""

from __future__ import annotations

import pandas as pd
from sweep_settings import REPO

from rlsim.analysis.plan import _best, pareto_mask, run_plan

ASYNC = REPO / "scenarios" / "qwen8b_async.yaml"
TINY = ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=4", "rl.num_steps=3",
        "workload.response_length.mean_tokens=600"]


def test_objectives_rank_points():
    df = pd.DataFrame({"status": "ok", "point": [0, 1, 2, 3], "total_gpus": [8, 16, 32, 8],
                       "step_time_s": [90.0, 50.0, 30.0, 70.0], "cost_per_step_usd": [2.0, 1.8, 2.5, 1.9],
                       "cost_per_run_usd": [2100.0, 1700.0, 2600.0, 1950.0]})
    picks = {o: int(_best(df, 80.0, o)["point"]) for o in ("fewest-gpus", "cheapest-step", "cheapest-run", "fastest")}
    assert picks == {"fewest-gpus": 3, "cheapest-step": 1, "cheapest-run": 1, "fastest": 2}
    assert int(_best(df, 10.0, "fewest-gpus")["point"]) == 2  # nothing meets: the fastest


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
    assert {"search: largest feasible", "search: bisection"} <= set(csv["stage"])
    assert csv["stage"].str.startswith("refine").any()
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
                    "## Assumptions", "## Infeasible simulated points", "calibrat", "per 1,000 steps"):
        assert section in md
    for section in ("## Layouts tried", "### h100_sxm\n\n- smallest feasible cluster: **3 GPUs**", "## Inputs of the binding stage",
                    "| acceptance (per draft token) | constant 0.68 | assumed |"):
        assert section in md
    from rlsim.results.html_report import plan_report

    page = plan_report(tmp_path / "plan.md", {"name": "x"}, tmp_path / "plan.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1 and "<h3>Layouts tried" in page
    assert "<h3>Inputs of the binding stage</h3>" in page and "<td>assumed</td>" in page and "name: x" in page
    lay = pd.read_csv(tmp_path / "layouts.csv")
    assert set(lay["pool"]) == {"rollout", "training"} and (~lay["ok"]).any()
    # the default objective: the fewest GPUs meeting the target, ties by cost per step
    rec = res.recommendation
    meet = ok[ok["meets_target"]]
    assert rec["step_time_s"] <= 60.0 and rec["total_gpus"] == meet["total_gpus"].min() == 2
    assert rec["cost_per_step_usd"] == meet[meet["total_gpus"] == 2]["cost_per_step_usd"].min()
    # rerun: every point resumes from DIR/points.parquet
    again = run_plan(ASYNC, 60.0, gpus=["h100_sxm", "gb200"], max_gpus=16, out=tmp_path, overrides=TINY, workers=2,
                     k_values=[2])
    assert again.points["step_time_s"].equals(res.points["step_time_s"])
