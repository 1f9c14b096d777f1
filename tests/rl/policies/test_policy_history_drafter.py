"""History drafter: acceptance by hand, the hybrid multiplier, and the engine's measured AL."""

from __future__ import annotations

import math

import pytest
from helpers import rl_policy_scenario

from rlsim.rl.policies.history_drafter import HistoryDrafter, history_acceptance, history_scale
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve

POLICY = {"kind": "history_drafter", "dataset_prompts": 40, "epoch": 2, "history_scale_rollouts": 2.0}


def test_acceptance_grows_with_history_and_falls_with_drift():
    cfg = HistoryDrafter(max_acceptance=0.9, history_scale_rollouts=10.0, drift_per_step=0.01)
    assert history_acceptance(cfg, 0, 0) == 0.0
    assert history_acceptance(cfg, 10, 0) == pytest.approx(0.9 * (1 - math.exp(-1)))
    assert history_acceptance(cfg, 10, 5) == pytest.approx(0.9 * (1 - math.exp(-1)) * 0.99 ** 5)
    assert history_acceptance(cfg, 40, 0) > history_acceptance(cfg, 20, 0) > history_acceptance(cfg, 20, 3)


def test_hybrid_multiplier_never_lowers_acceptance():
    cfg = HistoryDrafter(**{k: v for k, v in POLICY.items() if k != "kind"})
    # 40 prompts / 4 per step: the prompt was last seen 10 versions ago, with 2 x 4 earlier rollouts
    a = 0.95 * (1 - math.exp(-8 / 2)) * 0.998 ** 10
    assert history_scale(cfg, 0.6, 4, 4) == pytest.approx(a / 0.6)
    assert history_scale(cfg.model_copy(update={"epoch": 0}), 0.6, 4, 4) == 1.0


def test_engine_acceptance_length_follows_the_scaled_rate():
    plain, _ = run_pipeline(resolve(rl_policy_scenario(None, response=2000)), 1, True, "sync_colocated")
    hist, _ = run_pipeline(resolve(rl_policy_scenario(POLICY, response=2000)), 1, True, "sync_colocated")
    a = 0.95 * (1 - math.exp(-4)) * 0.998 ** 10
    closed = (1 - a ** 4) / (1 - a)  # AL at k = 3, i.i.d. acceptance a (Leviathan et al.)
    assert hist.summary["mean_acceptance_length"] == pytest.approx(closed, rel=0.03)
    assert plain.summary["mean_acceptance_length"] == pytest.approx((1 - 0.6 ** 4) / 0.4, rel=0.03)
    assert hist.summary["generation_makespan_s"] < plain.summary["generation_makespan_s"]
