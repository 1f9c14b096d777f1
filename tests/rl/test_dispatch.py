"""Dealing GRPO groups to engines: round-robin, least outstanding tokens, length-aware."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.rl.dispatch import Outstanding, assign_groups
from rlsim.sim import resolve, simulate_rollout
from tests.helpers import scenario


def _groups(n_groups=8, n=4, prompts=None, responses=None):
    g = np.repeat(np.arange(n_groups), n)
    p = np.repeat(prompts if prompts is not None else np.full(n_groups, 100), n)
    r = np.asarray(responses if responses is not None else np.full(n_groups * n, 500))
    return g, p, r


def test_round_robin_is_group_mod_engines():
    g, p, r = _groups()
    owner, est = assign_groups("round_robin", g, p, r, np.zeros(3), 500.0)
    np.testing.assert_array_equal(owner, g % 3)
    np.testing.assert_array_equal(est, p + 500.0)


def test_least_outstanding_tokens_fills_the_emptiest_engine():
    g, p, r = _groups(4, 2, prompts=np.array([1000, 10, 10, 10]))
    owner, _ = assign_groups("least_outstanding_tokens", g, p, r, np.array([0.0, 5000.0]), 100.0)
    # engine 1 already holds 5,000 outstanding tokens: every group goes to engine 0 until it has more
    assert owner.tolist() == [0, 0, 0, 0, 0, 0, 0, 0]
    owner, _ = assign_groups("least_outstanding_tokens", g, p, r, np.zeros(2), 100.0)
    assert owner.tolist() == [0, 0, 1, 1, 1, 1, 1, 1]  # the 1,000-token group balances three short ones


def test_length_aware_oracle_balances_predicted_work():
    resp = np.array([4000] * 4 + [100] * 28)  # one long group, seven short ones
    g, p, r = _groups(8, 4, responses=resp)
    owner, est = assign_groups("length_aware", g, p, r, np.zeros(2), 500.0, noise=0.0)
    long_engine = owner[0]
    assert (owner[:4] == long_engine).all() and (owner[4:] != long_engine).all()  # LPT: the long group alone
    np.testing.assert_array_equal(est, p + r)
    noisy, _ = assign_groups("length_aware", g, p, r, np.zeros(2), 500.0, noise=0.5, rng=np.random.default_rng(1))
    assert len(set(noisy.tolist())) == 2
    with pytest.raises(ValueError, match="dispatch"):
        assign_groups("random", g, p, r, np.zeros(2), 1.0)


def test_outstanding_tokens_follow_finishes():
    o = Outstanding(2)
    o.add(np.array([5, 6]), np.array([0, 1]), np.array([100.0, 50.0]))
    o.finish(5)
    o.finish(99)  # unknown ids are ignored
    assert o.tokens.tolist() == [0.0, 50.0]


def test_length_aware_shortens_a_skewed_rollout():
    """Two engines, groups with very different lengths: the longest-first deal finishes sooner."""
    dist = {"kind": "lognormal", "mean_tokens": 800, "sigma": 1.2}
    base = dict(prompts=16, samples=2, gpus=2, response_tokens=6000, response_dist=dist, max_num_seqs=8)
    rr = simulate_rollout(resolve(scenario(**base))).summary["rollout_time_s"]
    la = scenario(**base)
    la = la.__class__(la.scenario.model_copy(update={"rollout": la.scenario.rollout.model_copy(
        update={"dispatch": "length_aware", "dispatch_length_noise": 0.0})}), la.source, la.base_dir, la.raw)
    assert simulate_rollout(resolve(la)).summary["rollout_time_s"] < rr
