"""RL pipelines: Amdahl for sync, async steady state, lag 0 == sync disaggregated, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlsim.config import LoadedScenario, scenario_from_dict
from rlsim.errors import ConfigError
from rlsim.rl.run import simulate_rl
from rlsim.sim import resolve


def rl_scenario(pipeline="sync_colocated", steps=3, lag=1, gpus=8, rollout_gpus=None, training_gpus=None,
                spec=True, prompts=16, response=600, reward=0.5, fixed=False, max_num_seqs=64, **rl_extra) -> LoadedScenario:
    eng = {"max_num_seqs": max_num_seqs, "max_num_batched_tokens": 4096, "gpu_memory_utilization": 0.6}
    if spec:
        eng["speculative_config"] = {"method": "eagle3", "model": "EAGLE3-Qwen3-8B", "num_speculative_tokens": 3,
                                     "acceptance": {"kind": "constant", "rate": 0.7}}
    rollout = {"engine": eng}
    if rollout_gpus:
        rollout["num_gpus"] = rollout_gpus
    training = {"activation_checkpointing": True}
    if training_gpus:
        training["num_gpus"] = training_gpus
    rl = {"pipeline": pipeline, "num_steps": steps, "max_trajectory_age_steps": lag,
          "reward_time_s": reward, "training": training} | rl_extra
    lengths = ({"prompt_length": {"kind": "fixed", "tokens": 200}, "response_length": {"kind": "fixed", "tokens": response},
                "max_new_tokens": response} if fixed else
               {"prompt_length": {"kind": "lognormal", "mean_tokens": 200, "sigma": 0.3, "max_tokens": 500},
                "response_length": {"kind": "lognormal", "mean_tokens": response, "sigma": 0.8},
                "max_new_tokens": 4 * response})
    data = {"name": "rl", "seed": 1, "cluster": {"hardware": "h100_sxm", "num_gpus": gpus},
            "model": {"name": "Qwen3-1.7B"}, "rollout": rollout,
            "workload": {"num_prompts_per_step": prompts, "num_generations_per_prompt": 4, **lengths},
            "rl": rl}
    return LoadedScenario(scenario_from_dict(data, "rl.yaml"), "rl.yaml", Path("."), data)


def test_sync_step_is_the_sum_of_its_stages_amdahl():
    r = simulate_rl(resolve(rl_scenario()))
    for run in r.runs.values():
        df = run.steps
        parts = df[["weight_sync_time_s", "generation_time_s", "reward_time_s", "logprob_time_s", "train_time_s",
                    "drafter_train_time_s"]].sum(axis=1)
        np.testing.assert_allclose(parts, df["step_time_s"], rtol=1e-9)
        # sync: the whole batch makespan is exposed, and the trainer sees the full reward time
        np.testing.assert_allclose(df["generation_time_s"], df["generation_makespan_s"], rtol=1e-9)
        np.testing.assert_allclose(df["reward_time_s"], 0.5)
    spec, base = r.runs["spec"].steps, r.runs["baseline"].steps
    # speculation changes generation only: the other stages are identical (Amdahl)
    for col in ("logprob_time_s", "train_time_s", "weight_sync_time_s"):
        np.testing.assert_allclose(spec[col], base[col], rtol=1e-12)
    assert r.summary["speedup"]["generation"] > r.summary["speedup"]["end_to_end"] > 1.0


def test_async_lag_zero_equals_sync_disaggregated():
    a = simulate_rl(resolve(rl_scenario("async", lag=0, gpus=8, rollout_gpus=4, training_gpus=4)))
    s = simulate_rl(resolve(rl_scenario("sync_disaggregated", gpus=8, rollout_gpus=4, training_gpus=4)))
    for key in ("spec", "baseline"):
        pd_a, pd_s = a.runs[key].steps, s.runs[key].steps
        np.testing.assert_allclose(pd_a["train_end_s"], pd_s["train_end_s"], rtol=1e-12)
        np.testing.assert_allclose(pd_a["step_time_s"], pd_s["step_time_s"], rtol=1e-12)


def _async_case(bound: str, steps=None):
    """Fixed lengths, lag 2, in-flight updates, no reward.  ``training``: short responses and one
    training GPU; ``generation``: long responses, each engine's share of a batch exactly
    max_num_seqs (one cohort per batch) and a fast trainer."""
    if bound == "training":
        kw = dict(response=200, training_gpus=1, prompts=16)
    else:
        kw = dict(response=3000, training_gpus=4, prompts=32, max_num_seqs=32)
    return rl_scenario("async", steps=steps, lag=2, gpus=8, rollout_gpus=4, spec=False, reward=0.0, fixed=True,
                       in_flight_weight_updates=True, **kw)


def _analytic(bound: str, res, run) -> float:
    """The analytical steady state: the trainer's own cycle (train + sync), or the pool's time per
    batch -- one batch's makespan in a standalone rollout (the same engines, sequences and cost
    model) plus the in-flight weight-update pause of every step."""
    from rlsim.sim import simulate_rollout

    steady = run.steps[~run.steps["warmup"]]
    sync = float(steady["weight_sync_time_s"].mean())
    if bound == "training":
        return float((steady["logprob_time_s"] + steady["train_time_s"]).mean()) + sync
    g = simulate_rollout(res, speculative=False).summary["rollout_time_s"]
    return g + float(run.summary["weight_sync"]["total_s"])


@pytest.mark.parametrize("bound", ["training", "generation"])
def test_async_steady_state_equals_the_analytical_one_whatever_the_length(bound):
    """Converged (default) and a fixed run twice as long both report the analytical steady state
    within 2 %; the warm-up is lag + 1 steps and the window has no wind-down."""
    res = resolve(_async_case(bound))
    conv = simulate_rl(res).runs["spec"]
    assert conv.summary["converged"] and conv.summary["warmup_steps"] == 3
    expected = _analytic(bound, res, conv)
    assert conv.summary["step_time_s"] == pytest.approx(expected, rel=0.02)
    longer = simulate_rl(resolve(_async_case(bound, steps=2 * conv.summary["num_steps"]))).runs["spec"]
    assert longer.summary["step_time_s"] == pytest.approx(expected, rel=0.02)
    assert longer.summary["step_time_s"] == pytest.approx(conv.summary["step_time_s"], rel=0.02)
    # a shorter run is an exact prefix of a longer one
    n = conv.summary["num_steps"]
    np.testing.assert_allclose(longer.steps["train_end_s"].to_numpy()[:n], conv.steps["train_end_s"].to_numpy(), rtol=1e-12)
    # the last window step still has the next batches in flight: no wind-down
    last = longer.steps.iloc[-1]
    assert last["step_time_s"] == pytest.approx(expected, rel=0.05 if bound == "generation" else 0.02)
    if bound == "training":
        assert conv.summary["trainer_idle_frac"] < 0.02 and conv.summary["rollout_idle_frac"] > 0.3
    else:
        assert conv.summary["trainer_idle_frac"] > 0.3 and conv.summary["rollout_idle_frac"] < 0.02


def test_window_throughput_and_policy_lag():
    res = resolve(_async_case("generation"))
    run = simulate_rl(res).runs["spec"]
    s = run.summary
    tokens = float(run.steps["rollout_tokens"].iloc[0])
    assert s["steps_per_hour"] == pytest.approx(3600.0 / s["step_time_s"], rel=1e-12)
    assert s["rollout_tokens_per_s"] == pytest.approx(tokens / s["step_time_s"], rel=0.03)
    assert s["rollout_busy_frac"] + s["rollout_idle_frac"] + s["rollout_weight_update_frac"] == pytest.approx(1.0)
    lag = s["policy_lag"]
    # generation-bound with a fast trainer: batch t starts when t-1 is done, by when version t-1
    # is published -- the lag seen is 1, not the 2 allowed
    assert lag["histogram_at_first_token"] == {1: 128 * s["window_steps"]}
    assert lag["mean_at_last_token"] <= lag["mean_at_first_token"]
    # training-bound: batches are generated as soon as the lag allows, on the oldest policy
    bound = simulate_rl(resolve(_async_case("training"))).runs["spec"].summary["policy_lag"]
    assert bound["max_at_first_token"] == 2 and bound["mean_at_first_token"] == pytest.approx(2.0)
    seqs = run.sequences
    assert len(seqs) == len(run.steps) * 128 and (seqs["lag_first"] <= 2).all() and (seqs["lag_first"] >= 0).all()
    assert (seqs["step"] < len(run.steps)).all() and seqs["finish_s"].notna().all()


def test_drain_mode_keeps_each_trajectory_on_one_policy():
    run = simulate_rl(resolve(rl_scenario("async", steps=5, lag=1, rollout_gpus=4, training_gpus=4, spec=False,
                                          in_flight_weight_updates=False))).runs["spec"]
    assert run.summary["policy_lag"]["multi_version_frac"] == 0.0
    assert run.summary["policy_lag"]["max_at_first_token"] <= 1


def test_convergence_rule():
    from rlsim.rl.config import ConvergenceConfig
    from rlsim.rl.steady import convergence

    cfg = ConvergenceConfig(rel_tol=0.02, min_window_steps=3)
    # lag 1 (cycles of 2), warm-up 2: steps of 10 s then alternating 6 / 14 s
    ends = np.cumsum([10, 10, 6, 14, 6, 14, 6, 14])
    assert convergence(ends[:5], 2, 1, cfg) == (False, None)   # 3 steps: not a whole cycle
    ok, change = convergence(ends[:6], 2, 1, cfg)               # 4 steps = 2 cycles, m(4) == m(2)
    assert ok and change == 0.0
    drifting = np.cumsum([10, 10, 10, 10, 12, 12, 14, 14])
    ok, change = convergence(drifting[:8], 2, 1, cfg)
    assert not ok and change == pytest.approx((12.0 - 11.0) / 12.0)  # m(6) = 12 vs m(4) = 11


@pytest.mark.parametrize("over,message", [
    ({"warmup_steps": 2}, "rl.yaml: rl.warmup_steps = 2 must be >= max_trajectory_age_steps + 1 = 3 for an async pipeline "
                          "(batches 0..lag start together at t = 0; their steps are not steady state)"),
    ({"num_steps": 3}, "rl.yaml: rl.num_steps = 3 must exceed the warm-up of 3 steps (no steady-state window left)"),
])
def test_steady_state_config_errors(over, message):
    with pytest.raises(ConfigError) as err:
        simulate_rl(resolve(rl_scenario("async", lag=2, rollout_gpus=4, training_gpus=4, **over)))
    assert str(err.value) == message


def test_async_is_faster_than_sync_on_the_same_gpus():
    r = simulate_rl(resolve(rl_scenario("async", steps=4, lag=1, gpus=8, rollout_gpus=4, training_gpus=4)))
    assert r.summary["speedup"]["end_to_end_vs_sync"] > 0.0
    assert "sync_baseline" in r.summary and r.summary["sync_baseline"]["pipeline"] == "sync_colocated"


def test_same_seed_same_bytes(tmp_path):
    from rlsim.results.writers import write_summary_json

    a = simulate_rl(resolve(rl_scenario())).summary
    b = simulate_rl(resolve(rl_scenario())).summary
    write_summary_json(a, tmp_path / "a.json")
    write_summary_json(b, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    for key in ("step_time_s", "generation_time_s", "logprob_time_s", "train_time_s", "weight_sync_time_s",
                "rollout_tokens_per_s", "mean_acceptance_length"):
        assert key in a["spec"] and key in a["baseline"]
    assert set(a["speedup"]) >= {"end_to_end", "generation", "rollout_throughput"}


def test_drafter_drift_lowers_acceptance_and_online_training_restores_it():
    frozen = simulate_rl(resolve(rl_scenario(steps=4, drafter={"acceptance_drift_per_step": 0.1})))
    online = simulate_rl(resolve(rl_scenario(steps=4, drafter={"acceptance_drift_per_step": 0.1,
                                                             "online_training_every_steps": 1})))
    none = simulate_rl(resolve(rl_scenario(steps=4)))
    al = lambda r: r.runs["spec"].summary["mean_acceptance_length"]  # noqa: E731
    assert al(frozen) < al(online) <= al(none) + 1e-9
    assert online.runs["spec"].steps["drafter_train_time_s"].sum() > 0


@pytest.mark.parametrize("over,message", [
    ({"max_trajectory_age_steps": -1},
     "rl.yaml: rl.max_trajectory_age_steps = -1 input should be greater than or equal to 0"),
])
def test_bad_rl_values(over, message):
    with pytest.raises(ConfigError) as err:
        rl_scenario("async", rollout_gpus=4, training_gpus=4, **over)
    assert str(err.value) == message


def test_more_gpus_than_the_cluster():
    with pytest.raises(ConfigError) as err:
        simulate_rl(resolve(rl_scenario("async", gpus=8, rollout_gpus=4, training_gpus=8)))
    assert str(err.value) == "rl.yaml: rl.training.num_gpus = 8 + rollout GPUs 4 exceeds cluster.num_gpus = 8"


def test_layout_not_dividing_the_gpus():
    with pytest.raises(ConfigError) as err:
        simulate_rl(resolve(rl_scenario("async", gpus=8, rollout_gpus=4,
                                        training={"num_gpus": 3, "tensor_parallel_size": 2})))
    assert str(err.value).startswith("rl.yaml: rl.training")
    assert "does not divide" in str(err.value) and "3" in str(err.value)


def test_summary_carries_the_trainer_breakdown_weight_sync_and_warnings():
    r = simulate_rl(resolve(rl_scenario("async", steps=5, lag=1, rollout_gpus=4, training_gpus=4)))
    run = r.runs["spec"]
    tr = run.summary["trainer"]
    assert tr["cost_model"] == "per_op" and 0 < tr["mfu"] < 1 and tr["hfu"] >= tr["mfu"]
    assert sum(tr["breakdown_frac"].values()) == pytest.approx(1.0)
    assert "attention_backward_ratio" in tr["assumed"] and "moe_load_imbalance" not in tr["assumed"]  # dense model
    assert {"trainer_mfu", "trainer_gemm_s", "trainer_attention_s"} <= set(run.steps.columns)
    ws = run.summary["weight_sync"]
    assert ws["mode"] == "disaggregated" and ws["transport"] == "broadcast"
    assert ws["total_s"] == pytest.approx(sum(ws["parts_s"].values()))
    assert isinstance(r.summary["warnings"], list)
    for key in ("steps_per_hour", "rollout_idle_frac", "trainer_idle_frac", "policy_lag", "converged"):
        assert key in r.summary["spec"]
    # one assumed MFU instead: the run says so
    assumed = simulate_rl(resolve(rl_scenario("async", steps=5, lag=1, rollout_gpus=4, training_gpus=4,
                                              training={"num_gpus": 4, "mfu": 0.3})))
    assert any("assumed MFU = 0.3" in w for w in assumed.summary["warnings"])
    assert assumed.runs["spec"].summary["trainer"]["cost_model"] == "mfu"
