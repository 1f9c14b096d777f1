"""DAPO dynamic sampling: the filtered fraction against its closed form, rounds, what trains."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import rl_policy_scenario
from scipy.stats import binom

from rlsim.rl.pipeline import step_batches
from rlsim.rl.policies.dynamic_sampling import (DynamicSampling, DynamicSamplingSeam, expected_rounds_one_suffices,
                                                filtered_probability)
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve


def test_uniform_pass_rate_filters_two_in_n_plus_one():
    # E[p^n] = 1 / (n + 1) for p ~ U(0, 1): all-correct and all-wrong each
    assert filtered_probability(1.0, 1.0, 16) == pytest.approx(2 / 17, rel=1e-12)
    # a point mass-like Beta near p = 1/2 (large alpha = beta): 2 * 2^-n
    assert filtered_probability(1e6, 1e6, 4) == pytest.approx(2 * 0.5 ** 4, rel=1e-4)


def test_one_round_suffices_is_the_binomial_tail():
    q = filtered_probability(0.5, 0.5, 16)
    assert expected_rounds_one_suffices(0.5, 0.5, 16, 4, 12) == pytest.approx(binom.sf(3, 12, 1 - q), rel=1e-12)


def test_sampled_rewards_filter_at_the_closed_form_rate():
    seam = DynamicSamplingSeam(DynamicSampling())
    kept = np.concatenate([seam._kept(7, t, 5000, 16) for t in range(4)])
    q = filtered_probability(0.5, 0.5, 16)
    sd = math.sqrt(q * (1 - q) / kept.size)
    assert abs((1 - kept.mean()) - q) < 4 * sd


def test_rounds_until_the_batch_is_full_and_only_kept_groups_train():
    res = resolve(rl_policy_scenario({"kind": "dynamic_sampling", "oversample_factor": 1.5}, prompts=4,
                                     fixed=False))
    cfg = res.scenario.rl.policy
    base = step_batches(res, 1, 3)
    plan = DynamicSamplingSeam(cfg).plan(res, base, 1)
    M = 6  # ceil(1.5 x 4) groups per round
    for t in range(3):
        kept = DynamicSamplingSeam(cfg)._kept(1, t, M * cfg.max_rounds, 4)
        rounds = next(r for r in range(1, cfg.max_rounds + 1) if kept[: r * M].sum() >= 4 or r == cfg.max_rounds)
        row = plan.data.iloc[t]
        assert row["generated_requests"] == rounds * M * 4 == len(plan.generate[t].seq_id)
        assert row["filtered_groups"] == rounds * M - kept[: rounds * M].sum()
        assert row["trained_trajectories"] == 4 * min(4, kept[: rounds * M].sum()) == len(plan.train[t].seq_id)
        # round 0 starts with the base batch's groups (paired with every other policy)
        assert plan.generate[t].response[:16].tolist() == base[t].response.tolist()
        # the trained groups are the first kept ones, in generation order
        first = np.flatnonzero(kept[: rounds * M])[:4]
        gen = plan.generate[t].response.reshape(-1, 4)
        assert plan.train[t].response.reshape(-1, 4).tolist() == gen[first].tolist()


def test_over_generation_costs_rollout_time_not_training():
    plain = resolve(rl_policy_scenario(None, fixed=False))
    dapo = resolve(rl_policy_scenario({"kind": "dynamic_sampling"}, fixed=False))
    a, _ = run_pipeline(plain, 1, True, "sync_colocated")
    b, _ = run_pipeline(dapo, 1, True, "sync_colocated")
    assert b.summary["policy"]["over_generation_factor"] >= 3.0  # 12 groups per round for 4 trained
    assert b.steps["rollout_tokens"].sum() > 2 * a.steps["rollout_tokens"].sum()
    assert b.summary["generation_time_s"] > a.summary["generation_time_s"]
