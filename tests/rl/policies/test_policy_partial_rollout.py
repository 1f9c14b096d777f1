"""Partial rollouts: segments, the recycled buffer and its off-policy share by hand."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rl_policy_scenario

from rlsim.errors import ConfigError
from rlsim.rl.pipeline import StepBatch, step_batches
from rlsim.rl.policies.partial_rollout import PartialRollout, PartialRolloutSeam, segments
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve


def test_segments():
    assert segments(10000, 4096) == [4096, 4096, 1808]
    assert segments(4096, 4096) == [4096]


def test_hand_case_fixed_lengths_three_segments():
    # 16 trajectories of 2500 tokens per step, budget 1000: chunks 1000, 1000, 500
    res = resolve(rl_policy_scenario({"kind": "partial_rollout", "segment_tokens": 1000}, response=2500, steps=6))
    seam = PartialRolloutSeam(res.scenario.rl.policy)
    assert seam.warmup_steps(res, 1) == 3
    with pytest.raises(ConfigError) as e:  # nothing finishes in step 0: refused
        seam.plan(res, step_batches(res, 1, 4), 1)
    assert str(e.value) == ("rl.yaml: rl.policy.segment_tokens = 1000 leaves step 0 without a finished trajectory "
                            "to train (every response is longer)")


def test_mixed_lengths_by_hand():
    res = resolve(rl_policy_scenario(None, response=600))
    base = step_batches(res, 1, 3)
    # hand-made batches: per step two groups of one: 300 tokens and 1300 tokens, budget 1000
    hand = [StepBatch(np.array([0, 1]) + 2 * t, np.array([0, 1]) + 2 * t, np.array([200, 200]), np.array([300, 1300]))
            for t in range(len(base))]
    plan = PartialRolloutSeam(PartialRollout(segment_tokens=1000)).plan(res, hand, 1)
    # step 0: both fresh; 300 finishes, 1300 generates 1000
    assert plan.generate[0].prompt.tolist() == [200, 200] and plan.generate[0].response.tolist() == [300, 1000]
    assert plan.train[0].response.tolist() == [300]
    # step 1: the carried one first (prompt 200 + 1000 generated, 300 to go), then the fresh pair
    assert plan.generate[1].prompt.tolist() == [1200, 200, 200]
    assert plan.generate[1].response.tolist() == [300, 300, 1000]
    assert sorted(plan.train[1].response.tolist()) == [300, 1300]
    row = plan.data.iloc[1]
    assert row["off_policy_token_share"] == pytest.approx(1000 / 1600)  # 1000 old-policy tokens of 1600 trained
    assert row["off_policy_seq_share"] == 0.5 and row["mean_staleness_steps"] == 0.5
    assert row["over_generation_factor"] == 1.5 and row["trained_tokens"] == 1600
    # the continuation is its own prefix group; the fresh ones are two more
    assert len(set(plan.generate[1].group_id.tolist())) == 3


def test_bounded_step_is_shorter_than_the_tail():
    plain = resolve(rl_policy_scenario(None, fixed=False, steps=6))
    part = resolve(rl_policy_scenario({"kind": "partial_rollout", "segment_tokens": 800}, fixed=False, steps=6))
    a, _ = run_pipeline(plain, 1, True, "sync_colocated")
    b, _ = run_pipeline(part, 1, True, "sync_colocated")
    assert b.summary["generation_makespan_s"] < a.summary["generation_makespan_s"]
    assert 0 < b.summary["policy"]["off_policy_token_share"] < 1


def _hand(steps: int) -> list:
    # per step two groups of one: 300 and 1300 tokens, prompts 200
    return [StepBatch(np.array([0, 1]) + 2 * t, np.array([0, 1]) + 2 * t, np.array([200, 200]), np.array([300, 1300]))
            for t in range(steps)]


def test_count_trigger_by_hand():
    res = resolve(rl_policy_scenario(None, response=600))
    plan = PartialRolloutSeam(PartialRollout(trigger="count", over_provision=1.5)).plan(res, _hand(3), 1)
    # step 0: 1.5 x 2 = 3 requests in flight (300, 1300 and the next batch's 300); the stop comes
    # when 2 have finished: the budget is the 2nd smallest remaining, 300
    assert plan.generate[0].prompt.tolist() == [200, 200, 200] and plan.generate[0].response.tolist() == [300, 300, 300]
    assert plan.train[0].response.tolist() == [300, 300]
    # step 1: the carried 1300 (300 done, 1000 to go) and two fresh groups (1300, then 300): budget
    # = 2nd smallest of (1000, 1300, 300) = 1000
    assert plan.generate[1].prompt.tolist() == [500, 200, 200]
    assert plan.generate[1].response.tolist() == [1000, 1000, 300]
    assert sorted(plan.train[1].response.tolist()) == [300, 1300]
    row = plan.data.iloc[1]
    assert row["off_policy_token_share"] == pytest.approx(300 / 1600)  # the carried one's first 300 tokens
    assert row["off_policy_seq_share"] == 0.5 and row["mean_staleness_steps"] == 0.5
    assert row["over_generation_factor"] == 1.5 and row["generated_requests"] == 3
    assert len(set(plan.generate[1].group_id.tolist())) == 3
    # past the last batch the fresh groups come from the first batch again (step 2 needs 2)
    assert plan.generate[2].prompt.tolist() == [1200, 200, 200]
    assert plan.generate[2].response.tolist() == [300, 300, 300]
    fins = PartialRolloutSeam(PartialRollout(trigger="count", over_provision=1.5)).finishing(res, _hand(3))
    assert [f.tolist() for f in fins] == [[True, False, True], [True, False, True], [True, False, True]]


def test_count_trigger_without_over_provision_trains_the_batch_as_is():
    res = resolve(rl_policy_scenario(None, response=600))
    plan = PartialRolloutSeam(PartialRollout(trigger="count", over_provision=1.0)).plan(res, _hand(2), 1)
    for t in range(2):  # 2 requests, 2 to finish: the budget is the longest, nothing is recycled
        assert plan.generate[t].response.tolist() == [300, 1300] and plan.train[t].response.tolist() == [300, 1300]
    assert plan.data["off_policy_token_share"].tolist() == [0.0, 0.0]


def test_count_trigger_run_trains_the_batch_per_step_and_shortens_generation():
    plain = resolve(rl_policy_scenario(None, fixed=False, steps=8))
    april = resolve(rl_policy_scenario({"kind": "partial_rollout", "trigger": "count", "over_provision": 1.5},
                                       fixed=False, steps=8))
    seam = PartialRolloutSeam(april.scenario.rl.policy)
    base = step_batches(april, 1, 8)
    plan = seam.plan(april, base, 1)
    n = len(base[0].seq_id)
    assert all(len(tr.seq_id) >= n for tr in plan.train)  # ties at the budget may add some
    assert seam.warmup_steps(april, 1) >= 2
    a, _ = run_pipeline(plain, 1, True, "sync_colocated")
    b, _ = run_pipeline(april, 1, True, "sync_colocated")
    assert b.summary["generation_makespan_s"] < a.summary["generation_makespan_s"]
    assert b.summary["policy"]["over_generation_factor"] == pytest.approx(1.5, rel=0.05)


@pytest.mark.parametrize("policy, msg", [
    ({"kind": "partial_rollout", "trigger": "count", "segment_tokens": 1000},
     "rl.yaml: rl.policy.segment_tokens = 1000 does not apply with trigger 'count'"),
    ({"kind": "partial_rollout", "over_provision": 1.5},
     "rl.yaml: rl.policy.over_provision = 1.5 does not apply with trigger 'tokens'"),
    ({"kind": "partial_rollout", "trigger": "count", "over_provision": 0.5},
     "rl.yaml: rl.policy.over_provision = 0.5 input should be greater than or equal to 1"),
])
def test_bad_trigger_settings_are_refused_in_one_line(policy, msg):
    with pytest.raises(ConfigError) as e:
        rl_policy_scenario(policy)
    assert str(e.value) == msg


def test_count_trigger_warm_up_follows_the_runs_seed():
    res = resolve(rl_policy_scenario({"kind": "partial_rollout", "trigger": "count", "over_provision": 1.5},
                                     fixed=False, steps=8))
    seam = PartialRolloutSeam(res.scenario.rl.policy)
    spans = {s: seam.warmup_steps(res, s) for s in (0, 1)}
    assert spans == {0: 4, 1: 5}  # the longest recycled trajectory spans 4 steps with seed 0, 5 with seed 1
    for s in (0, 1):
        out, _ = run_pipeline(res, s, True, "sync_colocated")
        assert out.summary["warmup_steps"] == spans[s]
