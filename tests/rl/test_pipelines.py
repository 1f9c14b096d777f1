"""RL pipelines: Amdahl for sync, async steady state, lag 0 == sync disaggregated, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlsim.config import LoadedScenario, scenario_from_dict
from rlsim.errors import ConfigError
from rlsim.rl.run import simulate_rl
from rlsim.sim import resolve


def rl_scenario(pipeline="sync_colocated", steps=3, lag=1, gpus=8, rollout_gpus=None, training_gpus=None,
                spec=True, prompts=16, response=600, reward=0.5, **rl_extra) -> LoadedScenario:
    eng = {"max_num_seqs": 64, "max_num_batched_tokens": 4096, "gpu_memory_utilization": 0.6}
    if spec:
        eng["speculative_config"] = {"method": "eagle3", "model": "EAGLE3-Qwen3-8B", "num_speculative_tokens": 3,
                                     "acceptance": {"kind": "constant", "rate": 0.7}}
    rollout = {"engine": eng}
    if rollout_gpus:
        rollout["num_gpus"] = rollout_gpus
    training = {"activation_checkpointing": True}
    if training_gpus:
        training["num_gpus"] = training_gpus
    rl = {"pipeline": pipeline, "num_steps": steps, "warmup_steps": 1, "max_trajectory_age_steps": lag,
          "reward_time_s": reward, "training": training} | rl_extra
    data = {"name": "rl", "seed": 1, "cluster": {"hardware": "h100_sxm", "num_gpus": gpus},
            "model": {"name": "Qwen3-1.7B"}, "rollout": rollout,
            "workload": {"num_prompts_per_step": prompts, "num_generations_per_prompt": 4,
                         "prompt_length": {"kind": "lognormal", "mean_tokens": 200, "sigma": 0.3, "max_tokens": 500},
                         "response_length": {"kind": "lognormal", "mean_tokens": response, "sigma": 0.8},
                         "max_new_tokens": 4 * response},
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


def _async(response: int, training_gpus: int):
    r = simulate_rl(resolve(rl_scenario("async", steps=7, lag=2, gpus=8, rollout_gpus=4, training_gpus=training_gpus,
                                        response=response, reward=0.0, spec=False, in_flight_weight_updates=True)))
    df = r.runs["spec"].steps
    return df, df[df["step"] >= 3]


def test_async_steady_state_is_training_bound_when_generation_keeps_up():
    """Short responses, one training GPU: the step is the trainer's own time (train + sync)."""
    df, _ = _async(300, 1)
    steady = df[df["step"] >= 4]  # after the lag's initial backlog
    train = steady["logprob_time_s"] + steady["train_time_s"] + steady["weight_sync_time_s"]
    assert steady["generation_time_s"].max() < 0.1 * train.mean()  # the trainer hardly waits
    assert steady["step_time_s"].mean() == pytest.approx(train.mean(), rel=0.03)


def test_async_steady_state_is_generation_bound_when_training_keeps_up():
    """Long responses, 4 training GPUs: the trainer waits; over the steady window the step is
    the rollout pool's time per batch (completion to completion), well above the training time."""
    df, _ = _async(1500, 4)
    steady = df[df["step"] >= 4]  # after the lag's initial backlog of three batches
    train = (steady["logprob_time_s"] + steady["train_time_s"] + steady["weight_sync_time_s"]).mean()
    done = df["batch_done_s"].to_numpy()
    per_batch = (done[-1] - done[3]) / (len(df) - 4)
    assert steady["step_time_s"].mean() == pytest.approx(per_batch, rel=0.1)
    assert steady["step_time_s"].mean() > 3 * train


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
