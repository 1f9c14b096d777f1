"""One entry point: rlsim.simulate dispatches on the scenario and returns one result type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rlsim
from rlsim.config import load_scenario
from rlsim.rl.run import simulate_rl
from rlsim.sim import resolve

SMALL_RL = ["workload.num_prompts_per_step=8", "workload.num_generations_per_prompt=4", "rl.num_steps=2"]


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rl_result():
    return rlsim.simulate(REPO / "scenarios" / "qwen8b_sync.yaml", overrides=SMALL_RL), REPO


def test_simulate_runs_an_rl_scenario_and_returns_the_rl_result(rl_result):
    r, repo = rl_result
    assert isinstance(r, rlsim.RunResult) and r.kind == "rl"
    direct = simulate_rl(resolve(load_scenario(repo / "scenarios" / "qwen8b_sync.yaml", SMALL_RL)))
    assert r.summary == direct.summary
    assert set(r.runs) == {"spec", "baseline"}
    assert len(r.steps) == 2 and r.steps.equals(r.runs["spec"].steps)
    assert r.baseline.summary == r.runs["baseline"].summary and r.baseline.kind == "rl"
    assert r.summary["speedup"]["end_to_end"] == pytest.approx(r.baseline.steps["step_time_s"].iloc[1:].mean()
                                                                / r.steps["step_time_s"].iloc[1:].mean())


def test_rl_sequences_table_covers_every_step(rl_result):
    r, _ = rl_result
    seqs = r.sequences
    assert len(seqs) == 2 * 8 * 4
    assert seqs["step"].tolist() == [0] * 32 + [1] * 32
    np.testing.assert_array_equal(seqs["generated"], seqs["response_len"])
    assert (seqs["finish_s"] >= seqs["first_token_s"]).all()
    assert (seqs.groupby("group_id")["prompt_len"].nunique() == 1).all()


def test_simulate_a_rollout_scenario_returns_the_same_type(small_scenario):
    r = rlsim.simulate(small_scenario)
    assert isinstance(r, rlsim.RunResult) and r.kind == "rollout" and r.steps is None and r.runs == {}


def test_rl_baselines_can_be_skipped(rl_result):
    _, repo = rl_result
    r = rlsim.simulate(repo / "scenarios" / "qwen8b_sync.yaml", overrides=SMALL_RL, baseline=False)
    assert set(r.runs) == {"spec"} and r.baseline is None and r.summary["speedup"] == {}


def test_unknown_baseline_mode_is_refused_for_any_scenario(small_scenario):
    with pytest.raises(rlsim.ConfigError) as err:
        rlsim.simulate(small_scenario, baseline_mode="bogus")
    assert str(err.value) == "--baseline-mode = 'bogus' must be one of: no-spec, sync"
