"""rlsim.config.work: the work estimate and its limits (exact messages)."""

from __future__ import annotations

import pytest

from rlsim.config import load_scenario
from rlsim.config.work import HARD_LIMIT, SOFT_LIMIT, check_work, estimate
from rlsim.errors import ConfigError

TINY = ["workload.num_prompts_per_step=1", "workload.num_generations_per_prompt=2", "workload.max_new_tokens=64"]


def test_estimate_counts_sequences_steps_runs_seeds(repo):
    sc = load_scenario(repo / "scenarios" / "qwen8b_sync.yaml", TINY + ["rl.num_steps=5"]).scenario
    est = estimate(sc, seeds=3)
    assert (est.sequences, est.batches, est.runs, est.seeds, est.engines) == (2, 5, 2, 3, 32)
    assert est.units == pytest.approx((2 * 5000 + est.tokens + 32 * 2600) * 5 * 2 * 3)
    assert estimate(sc, seeds=3, baseline=False).runs == 1


def test_soft_warning_and_hard_refusal(repo):
    sc = load_scenario(repo / "scenarios" / "qwen8b_rollout.yaml", ["workload.num_prompts_per_step=100000"]).scenario
    est = estimate(sc)
    assert SOFT_LIMIT < est.units < HARD_LIMIT
    line = check_work(est, "s.yaml")
    assert line == ("s.yaml: large run: 1,600,000 sequences x 4,775 tokens on 32 engines (work 1.6e+10 "
                    "token-equivalents, ~26 min on one core)")
    with pytest.raises(ConfigError) as e:
        check_work(est, "s.yaml", hard_limit=1e9)
    assert str(e.value) == ("s.yaml: the run asks for 1,600,000 sequences x 4,775 tokens on 32 engines (work 1.6e+10 "
                            "token-equivalents, ~26 min), above the limit of 1e+09 (shrink it, or raise the limit with "
                            "--work-limit)")
    assert check_work(est, "s.yaml", hard_limit=0) == line  # 0: no hard limit, the warning stays
    small = load_scenario(repo / "scenarios" / "qwen8b_rollout.yaml", TINY).scenario
    assert check_work(estimate(small), "s.yaml") is None
