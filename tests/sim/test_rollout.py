"""Whole-rollout properties through the public API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rlsim
from rlsim.config import load_scenario
from rlsim.sim import resolve


def test_token_conservation_and_every_sequence_finishes(small_scenario):
    r = rlsim.simulate(small_scenario)
    seqs = r.sequences
    assert len(seqs) == 32 == r.summary["num_sequences"]
    np.testing.assert_array_equal(seqs["generated"], seqs["response_len"])
    assert r.summary["generated_tokens"] == int(seqs["response_len"].sum())
    assert (seqs["finish_s"] >= seqs["first_token_s"]).all() and (seqs["first_token_s"] > seqs["admit_s"]).all()
    assert r.summary["rollout_time_s"] == pytest.approx(seqs["finish_s"].max())
    assert r.summary["output_tokens_per_s"] == pytest.approx(r.summary["generated_tokens"] / r.summary["rollout_time_s"])


def test_kv_pressure_causes_preemptions_and_reference_mode_agrees(small_scenario):
    over = ["rollout.engine.gpu_memory_utilization=0.02", "rollout.engine.activation_reserve_gib=0.1"]
    fast = rlsim.simulate(small_scenario, overrides=over)
    ref = rlsim.simulate(small_scenario, overrides=over + ["simulation.mode=reference"])
    assert fast.summary["preemptions"] > 0
    assert fast.summary["preemptions"] == ref.summary["preemptions"]
    assert fast.summary["engine_iterations"] == ref.summary["engine_iterations"]
    np.testing.assert_allclose(fast.sequences["finish_s"], ref.sequences["finish_s"], rtol=1e-9)
    assert fast.summary["memory"]["peak_kv_blocks_used_frac"] <= 1.0


def test_groups_stay_on_one_engine_and_are_dealt_round_robin(small_scenario):
    r = rlsim.simulate(small_scenario)
    per_group = r.sequences.groupby("group_id")["engine"].nunique()
    assert (per_group == 1).all()
    first = r.sequences.groupby("group_id")["engine"].first()
    assert first.tolist() == [g % 2 for g in first.index]


def test_tail_time_is_after_ninety_percent_finished(small_scenario):
    r = rlsim.simulate(small_scenario)
    finish = np.sort(r.sequences["finish_s"].to_numpy())
    assert r.summary["time_90pct_finished_s"] == finish[int(np.ceil(0.9 * len(finish))) - 1]
    assert r.summary["tail_time_s"] == pytest.approx(finish[-1] - r.summary["time_90pct_finished_s"])


def test_more_engines_finish_a_batch_sooner(small_scenario):
    one = rlsim.simulate(small_scenario, overrides=["cluster.num_gpus=1"]).summary
    two = rlsim.simulate(small_scenario, overrides=["cluster.num_gpus=2"]).summary
    assert two["rollout_time_s"] < one["rollout_time_s"]
    assert one["generated_tokens"] == two["generated_tokens"]


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml")))
def test_shipped_scenarios_resolve(repo, name):
    res = resolve(load_scenario(repo / "scenarios" / name))
    assert res.num_engines >= 1 and res.memory.kv_capacity_tokens >= res.max_model_len


def test_the_2048_gpu_benchmark_scenario_resolves_to_128_engines(repo):
    """benchmarks/qwen235b_async_2048.yaml (the speed issue's scale) is qwen235b_async on 2,048 GPUs."""
    res = resolve(load_scenario(repo / "benchmarks" / "qwen235b_async_2048.yaml"))
    assert (res.num_engines, res.tp, res.scenario.cluster.num_gpus) == (128, 8, 2048)


@pytest.mark.parametrize("spec", [False, True])
def test_engines_in_two_worker_processes_give_the_same_bytes(repo, spec):
    """simulate_rollout(workers=2) forks, runs half the engines in each process and copies their
    records back: summary, sequence and segment tables identical to one process (a preempting
    plain batch; an EAGLE-3 batch with its paired baseline)."""
    import json

    from rlsim.sim import simulate_rollout

    name, over = (("qwen8b_rollout_eagle3.yaml", ["workload.num_prompts_per_step=8"]) if spec else
                  ("qwen8b_rollout.yaml", ["workload.num_prompts_per_step=16", "cluster.num_gpus=2",
                                           "rollout.engine.gpu_memory_utilization=0.35"]))
    res = resolve(load_scenario(repo / "scenarios" / name, over))
    one, two = (simulate_rollout(res, workers=w) for w in (1, 2))
    assert spec or one.summary["preemptions"] > 0
    assert json.dumps(one.summary, sort_keys=True, default=str) == json.dumps(two.summary, sort_keys=True, default=str)
    assert one.sequences.equals(two.sequences) and one.segments.equals(two.segments)


def test_the_scenarios_eager_dispatch_reaches_the_target_and_the_drafter(repo):
    """``rollout.engine.cpu_overhead.eager_*`` override the profile's ``engine`` values for the
    target's forward model and the drafter's (one rule for a pass without a CUDA graph)."""
    res = resolve(load_scenario(repo / "scenarios" / "qwen8b_rollout_eagle3.yaml",
                                ["rollout.engine.cpu_overhead.eager_layer_us=123"]))
    assert res.forward_model().eager_dispatch_s == pytest.approx((123e-6, res.hw.engine.eager_moe_layer_us * 1e-6))
    assert res.drafter.fwd.eager_dispatch_s == res.forward_model().eager_dispatch_s
    default = resolve(load_scenario(repo / "scenarios" / "qwen8b_rollout_eagle3.yaml"))
    assert default.forward_model().eager_dispatch_s == pytest.approx((260e-6, 260e-6))
