"""Drafter training on idle tail GPUs (TLT): the curve by hand, the harvest by hand, the feedback in a run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import rl_policy_scenario

from rlsim.rl.policies import seam_for
from rlsim.rl.policies.drafter_tail_training import (
    DrafterTailTraining,
    accumulated_gpu_s,
    idle_gpu_s,
    tail_acceptance,
)
from rlsim.rl.policies.run import policy_resolved
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve

POLICY = {"kind": "drafter_tail_training", "saturation_gpu_s": 20.0, "drift_per_step": 0.1}


def test_accumulated_training_has_the_geometric_closed_form():
    # constant harvest H: S_t = H (1 - (1 - d)^t) / d
    assert accumulated_gpu_s(np.full(7, 50.0), 0.1) == pytest.approx(50.0 * (1 - 0.9 ** 7) / 0.1)
    assert accumulated_gpu_s(np.array([10.0, 0.0, 0.0]), 0.5) == pytest.approx(2.5)  # the drift undoes it
    assert accumulated_gpu_s(np.array([]), 0.1) == 0.0
    assert accumulated_gpu_s(np.array([0.0, 0.0]), 0.1, 100.0) == pytest.approx(81.0)  # prior training decays
    assert accumulated_gpu_s(np.full(3, 50.0), 0.1, 500.0) == pytest.approx(500.0)  # H / d: the fixed point


def test_acceptance_saturates_from_a0_to_the_maximum():
    cfg = DrafterTailTraining(max_acceptance=0.9, saturation_gpu_s=100.0)
    assert tail_acceptance(cfg, 0.6, 0.0) == 0.6
    assert tail_acceptance(cfg, 0.6, 100.0) == pytest.approx(0.6 + 0.3 * (1 - math.exp(-1)))
    assert tail_acceptance(cfg, 0.6, 1e9) == pytest.approx(0.9)


def test_idle_gpu_seconds_by_hand():
    # window [10, 20]: engine 0 busy 10-14 and 16-25 (8 s inside), engine 1 busy 0-12 (2 s inside)
    busy = [np.array([[10.0, 14.0], [16.0, 25.0]]), np.array([[0.0, 12.0]])]
    assert idle_gpu_s(busy, 10.0, 20.0, 4) == pytest.approx(4 * ((10 - 8) + (10 - 2)))
    assert idle_gpu_s([np.zeros((0, 2))], 0.0, 3.0, 2) == 6.0


def test_the_policy_replaces_the_scenarios_drafter_training():
    loaded = rl_policy_scenario(POLICY)
    sc = loaded.scenario
    sc = sc.model_copy(update={"rl": sc.rl.model_copy(update={"drafter": sc.rl.drafter.model_copy(
        update={"online_training_every_steps": 2, "acceptance_drift_per_step": 0.01})})})
    d = seam_for(sc.rl.policy).scenario(sc).rl.drafter
    assert d.online_training_every_steps is None and d.acceptance_drift_per_step == 0.0
    res = resolve(loaded)
    assert policy_resolved(res) is res  # nothing to switch off: the same resolved scenario


def test_one_group_leaves_one_engine_idle_the_whole_step_and_feeds_the_next():
    # one group of 4 on a pool of 2 one-GPU engines: the other engine idles the whole generation
    res = resolve(rl_policy_scenario(POLICY, prompts=1, response=800, steps=5))
    assert res.num_engines == 2 and res.rollout_gpus == 2
    out, _ = run_pipeline(res, 1, True, "sync_colocated")
    s = out.steps
    assert s["tail_train_gpu_s"].to_numpy() == pytest.approx(s["generation_makespan_s"].to_numpy(), rel=1e-9)
    cfg = DrafterTailTraining(**{k: v for k, v in POLICY.items() if k != "kind"})
    want = [tail_acceptance(cfg, 0.6, accumulated_gpu_s(s["tail_train_gpu_s"].to_numpy()[:t], 0.1)) for t in range(len(s))]
    assert s["drafter_acceptance"].tolist() == pytest.approx(want)
    assert s["drafter_acceptance"].iloc[0] == 0.6 and np.all(np.diff(s["drafter_acceptance"]) > 0)
    assert s["generation_makespan_s"].iloc[-1] < s["generation_makespan_s"].iloc[0]  # same 800 tokens, faster
    assert out.summary["policy"]["tail_train_gpu_s"] == pytest.approx(float(s.loc[~s["warmup"], "tail_train_gpu_s"].mean()))
    again, _ = run_pipeline(res, 1, True, "sync_colocated")
    assert again.summary == out.summary  # deterministic


def test_no_gain_is_the_scenario_as_it_is_and_no_trainer_cost_is_added():
    plain, _ = run_pipeline(resolve(rl_policy_scenario(None, fixed=False, steps=5)), 1, True, "sync_colocated")
    flat = {"kind": "drafter_tail_training", "max_acceptance": 0.6}  # a_max = a0: training changes nothing
    tlt, _ = run_pipeline(resolve(rl_policy_scenario(flat, fixed=False, steps=5)), 1, True, "sync_colocated")
    assert tlt.steps["step_time_s"].tolist() == plain.steps["step_time_s"].tolist()
    assert tlt.steps["drafter_train_time_s"].tolist() == [0.0] * 5
    assert (tlt.steps["tail_train_gpu_s"] > 0).all()


def test_without_speculation_the_feedback_does_not_run():
    res = resolve(rl_policy_scenario(POLICY, steps=3))
    out, _ = run_pipeline(res, 1, False, "sync_colocated")
    assert "tail_train_gpu_s" not in out.steps and "tail_train_gpu_s" not in out.summary["policy"]
