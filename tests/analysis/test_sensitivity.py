"""rlsim run --sensitivity: every assumption with a range and a source, paired re-simulation,
the tornado PNG and table, deterministic."""

from __future__ import annotations

import pandas as pd
from sweep_settings import REPO
from typer.testing import CliRunner

from rlsim.analysis.sensitivity import assumptions, probe_factor, run_sensitivity
from rlsim.cli import app
from rlsim.config import load_scenario
from rlsim.sim import resolve

ASYNC = REPO / "scenarios" / "qwen8b_async.yaml"
TINY = ["workload.num_prompts_per_step=8", "workload.num_generations_per_prompt=2",
        "workload.response_length.mean_tokens=500", "workload.max_new_tokens=2000"]


def test_every_assumption_has_a_range_a_source_and_valid_overrides():
    res = resolve(load_scenario(ASYNC, TINY))
    items = assumptions(res)
    names = [a.name for a in items]
    for must in ("acceptance rate", "response length mean", "response length sigma", "policy lag",
                 "GPU split (rollout / training)", "weight-sync transport", "attention backward ratio", "reward time"):
        assert must in names
    for a in items:
        assert a.source and (a.low or a.high)
        for ov in (a.low, a.high):
            if ov is not None:
                resolve(load_scenario(ASYNC, TINY + list(ov)))  # every end is a valid scenario
    assert probe_factor(res) == 4  # 16 engines, 8 prompts: a quarter of each


def test_tornado_table_and_png(tmp_path):
    r = run_sensitivity(ASYNC, TINY, out=tmp_path)
    t = r.table
    assert (tmp_path / "sensitivity.png").stat().st_size > 10_000
    csv = pd.read_csv(tmp_path / "sensitivity.csv")
    assert len(csv) == len(t) == len(assumptions(resolve(load_scenario(ASYNC, TINY))))
    assert (t["end_to_end_swing"].diff().dropna() <= 1e-12).all()  # largest swing first
    acc = t[t["assumption"] == "acceptance rate"].iloc[0]
    assert acc["end_to_end_low"] < r.base["end_to_end"] < acc["end_to_end_high"]
    assert acc["generation_low"] < r.base["generation"] < acc["generation_high"]
    assert (t["error"] == "").all()
    again = run_sensitivity(ASYNC, TINY)
    pd.testing.assert_frame_equal(again.table, t)  # same seed, same numbers


def test_cli_sensitivity_needs_speculation(tmp_path):
    res = CliRunner().invoke(app, ["run", str(ASYNC), "--sensitivity", "--out", str(tmp_path),
                                   "--set", "rollout.engine.speculative_config=null"])
    assert res.exit_code == 2
    assert "needs an rl: section and a speculative_config" in res.stderr


def test_cli_sensitivity_writes_the_tornado_and_the_run(tmp_path):
    args = ["run", str(ASYNC), "--sensitivity", "--out", str(tmp_path)]
    for o in TINY:
        args += ["--set", o]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "sensitivity.png").is_file() and (tmp_path / "sensitivity.csv").is_file()
