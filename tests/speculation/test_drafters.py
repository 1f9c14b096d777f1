"""Drafter methods, k policies and speculative_config errors."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.errors import ConfigError
from rlsim.sim import resolve, simulate_rollout

from helpers import eagle, scenario


def test_draft_model_costs_more_than_an_eagle_head_and_takes_kv():
    head = resolve(scenario(spec=eagle(3, 0.7)))
    small = resolve(scenario(spec={"method": "draft_model", "model": "Qwen3-0.6B", "num_speculative_tokens": 3,
                                   "acceptance": {"kind": "constant", "rate": 0.7}}))
    ctx = np.array([2000.0])
    assert small.drafter.propose_times_s(1, ctx, 3)[0] > head.drafter.propose_times_s(1, ctx, 3)[0]
    # the draft model's weights and its 28-layer KV come out of the target's KV capacity
    assert small.spec_memory.kv_capacity_tokens < head.spec_memory.kv_capacity_tokens < head.memory.kv_capacity_tokens
    assert small.drafter.kv_bytes_per_token_per_gpu == 28 * 2 * 8 * 128 * 2


def test_ngram_has_no_gpu_cost_but_host_time():
    res = resolve(scenario(spec={"method": "ngram", "num_speculative_tokens": 4,
                                 "acceptance": {"kind": "constant", "rate": 0.3}}))
    assert res.drafter.propose_times_s(8, np.array([1000.0]), 4)[0] == 0.0
    sp = res.hw.speculation  # the fitted host terms: per step, per request, per draft token, per history token
    assert res.drafter.host_time_s(8, 8000.0, 20) == pytest.approx(
        1e-6 * sp.ngram_round_us + 8e-6 * sp.ngram_seq_us + 20e-6 * sp.ngram_us_per_draft_token
        + 8000e-9 * sp.ngram_ns_per_context_token)
    assert res.drafter.host_time_s(8, 16000.0) > res.drafter.host_time_s(8, 8000.0) > res.drafter.host_time_s(4, 8000.0)
    assert res.spec_memory.kv_capacity_tokens == res.memory.kv_capacity_tokens
    assert res.scenario.rollout.engine.async_scheduling is False  # vLLM: async only with EAGLE / MTP drafters


def test_async_scheduling_with_ngram_is_refused():
    with pytest.raises(ConfigError) as err:
        resolve(scenario(async_scheduling=True, spec={"method": "ngram", "num_speculative_tokens": 4,
                                                      "acceptance": {"kind": "constant", "rate": 0.3}}))
    assert str(err.value) == ("test.yaml: rollout.engine.async_scheduling = True is not supported with speculative method "
                              "'ngram': vLLM runs async scheduling only with eagle, eagle3, mtp drafters")


def test_async_scheduling_with_eagle_before_its_vllm_version_is_refused():
    with pytest.raises(ConfigError) as err:
        resolve(scenario(async_scheduling=True, vllm_version="0.12.0", spec=eagle(3, 0.7)))
    assert str(err.value) == ("test.yaml: rollout.engine.async_scheduling = True is not supported with speculative method "
                              "'eagle3': vLLM 0.12.0 predates async scheduling with speculative decoding (from 0.14.0, "
                              "assumed)")
    assert resolve(scenario(vllm_version="0.12.0", spec=eagle(3, 0.7))).scenario.rollout.engine.async_scheduling is False


def test_mtp_uses_the_models_own_layer():
    res = resolve(scenario(model="DeepSeek-V3", hardware="h200_sxm", gpus=8, tp=8,
                           spec={"method": "mtp", "num_speculative_tokens": 1,
                                 "acceptance": {"kind": "constant", "rate": 0.87}}))
    assert res.drafter.name == "DeepSeek-V3 MTP"
    one = res.drafter.propose_times_s(1, np.array([1000.0]), 1)[0]
    target = res.forward_model().decode_times_s(1, np.array([1000.0]))[0]
    assert 0.0 < one < 0.25 * target  # one MoE decoder layer + shared head vs 61 layers


def test_disable_by_batch_size_switches_drafts_off_at_large_batch():
    lengths = {"kind": "lognormal", "mean_tokens": 300, "sigma": 0.8, "max_tokens": 1500}
    on = simulate_rollout(resolve(scenario(prompts=64, response_tokens=1500, response_dist=lengths,
                                           spec=eagle(3, 0.7))), paired=False)
    off = simulate_rollout(resolve(scenario(prompts=64, response_tokens=1500, response_dist=lengths,
                                            spec=eagle(3, 0.7, disable_by_batch_size=32))), paired=False)
    assert on.summary["speculative"]["spec_iterations_frac"] > 0.9
    assert 0.0 < off.summary["speculative"]["spec_iterations_frac"] < on.summary["speculative"]["spec_iterations_frac"]


def test_adaptive_k_never_loses_to_fixed_k_across_batch_sizes():
    for batch in (1, 256):
        fixed = simulate_rollout(resolve(scenario(prompts=batch, response_tokens=256, spec=eagle(6, 0.6))))
        adaptive = simulate_rollout(resolve(scenario(prompts=batch, response_tokens=256,
                                                     spec=eagle(6, 0.6, adaptive_k={"enabled": True}))))
        assert adaptive.summary["rollout_time_s"] <= fixed.summary["rollout_time_s"] * 1.01
        np.testing.assert_array_equal(adaptive.sequences["generated"], fixed.sequences["generated"])
    # at batch 256 a weak drafter is best switched off: adaptive k matches the baseline
    assert adaptive.summary["speedup"]["rollout"] >= 0.99


@pytest.mark.parametrize("spec,message", [
    ({"method": "mtp", "num_speculative_tokens": 1, "acceptance": {"kind": "constant", "rate": 0.8}},
     "test.yaml: rollout.engine.speculative_config.method = 'mtp' needs a model with MTP layers; "
     "Qwen3-8B has num_nextn_predict_layers = 0"),
    ({"method": "eagle3", "model": "Qwen3-0.6B", "num_speculative_tokens": 3, "acceptance": {"kind": "constant", "rate": 0.8}},
     "test.yaml: rollout.engine.speculative_config.model = 'Qwen3-0.6B' is not an EAGLE-3 head (method 'eagle3')"),
    ({"method": "draft_model", "num_speculative_tokens": 3, "acceptance": {"kind": "constant", "rate": 0.8}},
     "test.yaml: rollout.engine.speculative_config.model = None is required for method 'draft_model' "
     "(a draft model name or path)"),
    ({"method": "draft_model", "model": "EAGLE3-Qwen3-8B", "num_speculative_tokens": 3,
      "acceptance": {"kind": "constant", "rate": 0.8}},
     "test.yaml: rollout.engine.speculative_config.model = 'EAGLE3-Qwen3-8B' is an EAGLE-3 head; use method: eagle3"),
])
def test_bad_speculative_config(spec, message):
    with pytest.raises(ConfigError) as err:
        resolve(scenario(spec=spec))
    assert str(err.value) == message


def test_k_above_vllms_cap_is_rejected():
    with pytest.raises(ConfigError) as err:
        scenario(spec=eagle(33, 0.5))
    assert str(err.value) == ("test.yaml: rollout.engine.speculative_config.num_speculative_tokens = 33 "
                              "input should be less than or equal to 32")


def test_acceptance_from_vllm_cli_prints_pasteable_yaml(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("INFO 07-01 12:00:00 [metrics.py:123] SpecDecoding metrics: Mean acceptance length: 2.79, "
                   "Accepted throughput: 10.00 tokens/s, Drafted throughput: 20.00 tokens/s, Accepted: 8580 tokens, "
                   "Drafted: 15000 tokens, Per-position acceptance rate: 0.780, 0.580, 0.430, "
                   "Avg Draft acceptance rate: 57.2%\n")
    result = CliRunner().invoke(app, ["acceptance", "from-vllm", str(log)])
    assert result.exit_code == 0, result.output
    import yaml

    pasted = yaml.safe_load(result.stdout)
    assert pasted["num_speculative_tokens"] == 3
    assert pasted["acceptance"] == {"kind": "per_position", "rates": [0.78, 0.58, 0.43]}
    # and it is accepted by the scenario schema as is
    spec = {"method": "eagle3", **pasted}
    res = resolve(scenario(spec=spec))
    assert res.speculative.acceptance.mean_acceptance_length(3) == pytest.approx(2.79)
