"""The policy seam: config (discriminated union, strict), identity without a policy, re-striding."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rl_policy_scenario

from rlsim.errors import ConfigError
from rlsim.rl.policies import NAMED, PartialRollout, seam_for
from rlsim.rl.policies.run import policy_plan, policy_resolved, policy_trained
from rlsim.rl.policies.seam import DATA_COLUMNS, PolicySeam, no_side_effects, restride
from rlsim.rl.pipeline import step_batches
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve


@pytest.mark.parametrize("policy, message", [
    ({"kind": "magic"}, "rl.yaml: rl.policy.kind = 'magic' must be one of: dynamic_sampling, partial_rollout, "
                        "history_drafter, concurrency_draft, drafter_tail_training, multi_turn, tail_migration, "
                        "length_aware_draft, decoupled_draft"),
    ({"kind": "partial_rollout", "segment": 3}, "rl.yaml: rl.policy.segment = 3 is not a known key "
                                                "(did you mean 'segment_tokens'?)"),
    ({"kind": "partial_rollout", "segment_tokens": 2},
     "rl.yaml: rl.policy.segment_tokens = 2 input should be greater than or equal to 16"),
    ({"kind": "dynamic_sampling", "oversample_factor": 0.5},
     "rl.yaml: rl.policy.oversample_factor = 0.5 input should be greater than or equal to 1"),
    ({"kind": "length_aware_draft", "long_draft_tokens": 0},
     "rl.yaml: rl.policy.long_draft_tokens = 0 input should be greater than or equal to 1"),
    ({"kind": "length_aware_draft", "short_draft_tokens": -1},
     "rl.yaml: rl.policy.short_draft_tokens = -1 input should be greater than or equal to 0"),
    ({"kind": "length_aware_draft", "long_fraction": 0}, "rl.yaml: rl.policy.long_fraction = 0 input should be greater than 0"),
    ({"kind": "length_aware_draft", "long_fraction": 1.5},
     "rl.yaml: rl.policy.long_fraction = 1.5 input should be less than or equal to 1"),
    ({"kind": "length_aware_draft", "short_draft_tokens": 4, "long_draft_tokens": 3},
     "rl.yaml: rl.policy.short_draft_tokens = 4 must be <= long_draft_tokens = 3"),
])
def test_bad_policy_is_one_line(policy, message):
    with pytest.raises(ConfigError) as e:
        rl_policy_scenario(policy)
    assert str(e.value) == message


@pytest.mark.parametrize("kind", ["history_drafter", "concurrency_draft", "drafter_tail_training", "length_aware_draft",
                                  "decoupled_draft"])
def test_drafting_policies_need_speculation(kind):
    with pytest.raises(ConfigError) as e:
        rl_policy_scenario({"kind": kind}, spec=False)
    assert str(e.value) == f"rl.yaml: rl.policy.kind = '{kind}' needs rollout.engine.speculative_config (it drafts)"


def test_policies_are_frozen_and_named():
    p = PartialRollout()
    with pytest.raises(Exception):
        p.segment_tokens = 8
    assert set(NAMED) == {"none", "no_spec", "dynamic_sampling", "partial_rollout", "active_partial_rollout", "history_drafter",
                          "concurrency_draft", "drafter_tail_training", "multi_turn", "multi_turn_evict", "tail_migration",
                          "length_aware_draft", "decoupled_draft"}
    assert seam_for(None) is None


def test_without_a_policy_every_hook_is_the_identity():
    res = resolve(rl_policy_scenario(None))
    base = step_batches(res, 1, 3)
    assert policy_plan(res, base, 1) is None
    assert policy_trained(res, base, 1) is base
    assert policy_resolved(res) is res


def test_the_default_seam_plans_the_base_batches_as_they_are():
    res = resolve(rl_policy_scenario(None))
    base = step_batches(res, 1, 3)
    p = PolicySeam().plan(res, base, 1)
    assert p.generate is base and p.train is base and p.stride == 16
    assert list(p.data.columns) == list(DATA_COLUMNS)
    assert p.data["trained_tokens"].tolist() == [16 * 600] * 3
    assert no_side_effects(base)["over_generation_factor"].tolist() == [1.0] * 3


def test_restride_gives_run_unique_ids_and_groups():
    parts = [(np.array([5, 5, 9]), np.array([1, 1, 2]), np.array([10, 10, 20])),
             (np.array([3]), np.array([4]), np.array([7]))]
    out, stride = restride(parts)
    assert stride == 3
    assert out[0].seq_id.tolist() == [0, 1, 2] and out[1].seq_id.tolist() == [3]
    assert out[0].group_id.tolist() == [0, 0, 1] and out[1].group_id.tolist() == [2]  # group stride 2
    assert out[1].prompt.tolist() == [4] and out[1].response.tolist() == [7]


def test_a_policy_run_reports_its_side_effects_and_is_deterministic():
    res = resolve(rl_policy_scenario({"kind": "partial_rollout", "segment_tokens": 1024}, fixed=False, steps=5))
    a, _ = run_pipeline(res, 1, True, "sync_colocated")
    b, _ = run_pipeline(res, 1, True, "sync_colocated")
    assert a.summary == b.summary
    assert a.summary["policy"]["name"] == "partial_rollout"
    assert set(DATA_COLUMNS) <= set(a.steps.columns)


def test_the_rl_summary_carries_the_policy_only_when_there_is_one():
    from rlsim.rl.run import simulate_rl

    with_policy = simulate_rl(resolve(rl_policy_scenario({"kind": "dynamic_sampling"})))
    assert with_policy.summary["spec"]["policy"]["name"] == "dynamic_sampling"
    assert with_policy.summary["baseline"]["policy"]["over_generation_factor"] >= 3.0  # paired baseline, same policy
    without = simulate_rl(resolve(rl_policy_scenario(None)), baselines=False)
    assert "policy" not in without.summary["spec"]
