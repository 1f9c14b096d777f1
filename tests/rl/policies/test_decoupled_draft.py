"""Decoupled drafting (SpecActor-style): the cost rule by hand, the pool taken from the rollout
engines, the engine's pricing, fast == slow, determinism, refusals."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from helpers import rl_policy_scenario

from rlsim import units
from rlsim.hardware import ops
from rlsim.config import LoadedScenario, scenario_from_dict
from rlsim.errors import ConfigError
from rlsim.rl.policies.decoupled_draft import DecoupledDraft, DecoupledDraftSeam, drafting_for
from rlsim.rl.plan import pools
from rlsim.rl.policies.run import policy_drafting, policy_resolved
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve
from rlsim.sim.engines import build_engines, spec_runtime
from rlsim.speculation.decoupled import DecoupledDrafting, decoupled_iteration_s, hidden_probability


def _policy(**kw) -> dict:
    return {"kind": "decoupled_draft", **kw}


def _resolved(policy: dict, **kw):
    return policy_resolved(resolve(rl_policy_scenario(policy, **kw)))


def _merge(d: dict, over: dict) -> dict:
    for key, v in over.items():
        d[key] = _merge(d.get(key, {}), v) if isinstance(v, dict) else v
    return d


def _custom(policy: dict, over: dict) -> LoadedScenario:
    """The small policy scenario with ``over`` merged into its data (e.g. more GPUs)."""
    data = _merge(copy.deepcopy(rl_policy_scenario(policy).raw), over)
    return LoadedScenario(scenario_from_dict(data, "rl.yaml"), "rl.yaml", rl_policy_scenario(policy).base_dir, data)


def _drafting(res, scale: float = 1.0):
    """The run's drafter pool priced with an acceptance sampler of two sequences at ``scale``."""
    rt = spec_runtime(res, np.arange(2), np.full(2, 300), 3, res.forward_model(), extra_scale=np.full(2, scale))
    return policy_drafting(res, rt.sampler)


# ------------------------------------------------------------------ the cost rule by hand
def test_hidden_draft_costs_the_verify_pass_plus_the_transfer():
    assert decoupled_iteration_s(10.0, 4.0, 1.0, 1.0) == 11.0  # draft < verify: verify + transfer


def test_a_draft_longer_than_the_verify_pass_costs_the_draft_plus_the_transfer():
    assert decoupled_iteration_s(10.0, 14.0, 1.0, 1.0) == 15.0  # draft > verify: draft + transfer


def test_a_rejection_makes_the_draft_serial_and_the_expectation_mixes_both():
    assert decoupled_iteration_s(10.0, 4.0, 1.0, 0.0) == 15.0  # verify + draft + transfer
    assert decoupled_iteration_s(10.0, 4.0, 1.0, 0.25) == pytest.approx(0.25 * 11.0 + 0.75 * 15.0, rel=1e-15)
    np.testing.assert_allclose(decoupled_iteration_s(np.array([10.0, 2.0]), np.array([4.0, 4.0]), 1.0, 0.5),
                               [0.5 * 11 + 0.5 * 15, 0.5 * 5 + 0.5 * 7], rtol=1e-15)


def test_lock_step_hides_an_iteration_only_if_every_request_accepted_all_drafts_and_the_bonus_guess():
    p = 0.68 ** 4  # constant acceptance 0.68, k = 3: P(A_4 = 4), the 3 drafts and the bonus guess accepted
    assert hidden_probability(p, 1) == pytest.approx(0.213814, abs=1e-6)
    assert hidden_probability(p, 2) == pytest.approx(p * p, rel=1e-12)
    assert hidden_probability(p, 128) < 1e-85  # a large batch almost always has a rejection
    assert hidden_probability(p, 0) == 1.0


def _pool(share: int = 3) -> DecoupledDrafting:
    hw = resolve(rl_policy_scenario(None)).hw  # H100 SXM
    return DecoupledDrafting(drafter_gpus=1, instances=1, load_share=np.full(2, share), p_ready=np.array([1.0, 0.5, 0.25]),
                             expected_tokens=np.array([1.0, 1.5, 1.75]), hw=hw, same_domain=np.array([True, False]),
                             hidden_bytes_per_token=100.0)


def test_transfer_is_two_sends_draft_ids_there_token_ids_and_hidden_states_back():
    pool = _pool()
    hw, topo = pool.hw, pool.hw.topology
    # batch 4, k = 2: 4 x 2 ids x 4 B = 32 B there; 4 x 1.75 tokens x (4 + 100) B = 728 B back
    nic = ops.p2p_time_s(hw, 32.0, same_domain=False) + ops.p2p_time_s(hw, 728.0, same_domain=False)
    assert pool.transfer_s(1, 4, 2) == pytest.approx(nic, rel=1e-12)
    assert nic == pytest.approx(2 * units.us(topo.nic_latency_us), rel=0.05)  # small messages: two latencies
    nvl = ops.p2p_time_s(hw, 32.0) + ops.p2p_time_s(hw, 728.0 + 1000 * 104.0)  # with 1,000 prefill tokens
    assert pool.transfer_s(0, 4, 2, prefill_tokens=1000) == pytest.approx(nvl, rel=1e-12)
    assert nvl > 2 * units.us(topo.nvlink_latency_us) + 104_728 / hw.nvlink_bw_bytes_per_s


def test_extra_time_is_the_rule_less_the_target_pass_with_the_load_share():
    pool = _pool(share=3)
    target, draft, reject = 5e-3, 1e-3, 0.2e-3
    q = 0.25 ** 2  # batch 2, k = 2
    want = decoupled_iteration_s(target + reject, 3 * draft, pool.transfer_s(0, 2, 2), q) - target
    assert pool.extra_s(0, target, draft, reject, 2, 2) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(reject + 3e-3 - q * 3e-3 + pool.transfer_s(0, 2, 2), rel=1e-12)
    assert pool.extra_s(0, target, 0.0, 0.0, 2, 0) == 0.0  # nothing drafted: nothing crosses the link


# ------------------------------------------------------------------ the pool from the rollout engines
def test_scenario_takes_the_drafter_gpus_from_the_rollout_engines():
    res = _resolved(_policy())  # 2 H100: the default pool is an eighth, whole engines -> 1 GPU
    assert (res.rollout_gpus, res.num_engines) == (1, 1)
    assert res.scenario.rl.policy.drafter_gpus == 1 and res.speculative.draft_tensor_parallel_size == 1
    dec = _drafting(res)
    assert (dec.drafter_gpus, dec.instances, dec.load_share.tolist()) == (1, 1, [1])
    assert dec.same_domain.tolist() == [True]  # engine 0 on GPU 0, its drafter on GPU 1: one NVLink domain (8 H100s)
    assert dec.hidden_bytes_per_token == 3 * res.arch.hidden_size * 2  # EAGLE-3: three layers' features, bf16
    # constant rate 0.6 (no spread): P(A_{k+1} = k + 1) = a^(k+1); 1 + E[A_k] = 1 + a + .. + a^k
    np.testing.assert_allclose(dec.p_ready, [1.0, 0.36, 0.216, 0.1296], rtol=1e-12)
    np.testing.assert_allclose(dec.expected_tokens, [1.0, 1.6, 1.96, 2.176], rtol=1e-12)
    no_spec = rl_policy_scenario(None, spec=False).scenario
    assert DecoupledDraftSeam(DecoupledDraft()).scenario(no_spec) is no_spec


def test_load_share_is_the_engines_of_each_instance_and_links_cross_nvlink_domains_on_the_nic():
    res = resolve(rl_policy_scenario(None))
    res = dataclasses.replace(res, num_engines=9)  # 9 engines on GPUs 0..8, drafters on 9, 10
    dec = drafting_for(res, 2, 1)
    # engine e on instance e mod 2: instance 0 (GPU 9) serves engines 0, 2, 4, 6, 8; instance 1 (GPU 10) 1, 3, 5, 7
    assert (dec.instances, dec.load_share.tolist()) == (2, [5, 4] * 4 + [5])
    assert dec.same_domain.tolist() == [False] * 8 + [True]  # only engine 8 is in node 1 with the drafters


def test_an_engine_is_priced_by_the_engines_its_instance_serves():
    res = dataclasses.replace(resolve(rl_policy_scenario(None)), num_engines=30)
    dec = drafting_for(res, 4, 1)  # 30 engines on 4 instances: 8, 8, 7, 7 engines
    assert np.bincount(np.arange(30) % 4)[[0, 1, 2, 3]].tolist() == [8, 8, 7, 7]
    assert dec.load_share[:4].tolist() == [8, 8, 7, 7]
    target, draft = 5e-3, 1e-3
    assert dec.extra_s(3, target, draft, 0.0, 1, 3) == pytest.approx(
        decoupled_iteration_s(target, 7 * draft, dec.transfer_s(3, 1, 3), dec.hidden(1, 3)) - target, rel=1e-12)


def test_pricing_uses_the_runs_per_sequence_acceptance_scale():
    res = _resolved(_policy())
    dec = _drafting(res, 0.5)  # e.g. a drifted drafter: rates 0.6 x 0.5 = 0.3
    np.testing.assert_allclose(dec.p_ready, [1.0, 0.3 ** 2, 0.3 ** 3, 0.3 ** 4], rtol=1e-12)
    np.testing.assert_allclose(dec.expected_tokens, [1.0, 1.3, 1.39, 1.417], rtol=1e-12)
    mixed = drafting_for(res, 1, 1, np.array([0.5, 1.0]))  # the mean over the run's sequences
    np.testing.assert_allclose(mixed.p_ready[3], (0.3 ** 4 + 0.6 ** 4) / 2, rtol=1e-12)
    np.testing.assert_allclose(_drafting(res, 2.0).p_ready, [1.0] * 4, rtol=1e-12)  # rates clipped to 1 as the sampler does


def test_context_decay_is_refused_in_one_line():
    eagle = {"rollout": {"engine": {"speculative_config": {"acceptance": {"context_decay": {"half_life_tokens": 4000}}}}}}
    with pytest.raises(ConfigError) as e:
        DecoupledDraftSeam(DecoupledDraft()).scenario(_custom(_policy(), eagle).scenario, "rl.yaml")
    assert str(e.value) == ("rl.yaml: rollout.engine.speculative_config.acceptance.context_decay = 'set' cannot be "
                            "priced by rl.policy.kind = 'decoupled_draft' (its acceptance is priced with rates constant "
                            "along a sequence)")


def test_the_default_pool_is_a_multiple_of_the_engine_and_drafter_tp():
    sc = _custom(_policy(drafter_tensor_parallel_size=3), {"cluster": {"num_gpus": 8},
                                                            "rollout": {"engine": {"tensor_parallel_size": 2}}}).scenario
    out = DecoupledDraftSeam(DecoupledDraft(drafter_tensor_parallel_size=3)).scenario(sc, "rl.yaml")
    assert (out.rl.policy.drafter_gpus, out.rollout.num_gpus) == (6, 2)  # lcm(2, 3) = 6 >= 8 / 8


def test_a_default_pool_that_leaves_no_engine_names_the_pool_the_user_set():
    sc = _custom(_policy(), {"cluster": {"num_gpus": 1}}).scenario
    with pytest.raises(ConfigError) as e:
        DecoupledDraftSeam(DecoupledDraft()).scenario(sc, "rl.yaml")
    assert str(e.value) == ("rl.yaml: cluster.num_gpus = 1 leaves no rollout engine beside the default drafter pool of "
                            "rl.policy.kind = 'decoupled_draft' (1 GPUs; set rl.policy.drafter_gpus)")


def test_a_bad_drafter_tp_is_reported_as_the_policy_field():
    loaded = _custom(_policy(drafter_tensor_parallel_size=3), {"cluster": {"num_gpus": 8}})
    with pytest.raises(ConfigError) as e:
        policy_resolved(resolve(loaded))
    assert str(e.value) == ("rl.yaml: rl.policy.drafter_tensor_parallel_size = 3 does not divide the draft's "
                            "num_attention_heads = 32")


def test_dense_data_parallel_engines_are_independent_and_lock_step_groups_are_refused():
    res = policy_resolved(resolve(_custom(_policy(), {"rollout": {"engine": {"data_parallel_size": 2,
                                                                              "enable_expert_parallel": True}}})))
    assert not res.lockstep and _drafting(res).drafter_gpus == 1  # Qwen3-1.7B is dense: DP ranks are engines
    with pytest.raises(ConfigError) as e:
        _drafting(dataclasses.replace(res, dp=2))  # as rlsim.sim.build.lockstep_dp gives an MoE model
    assert str(e.value) == ("rl.yaml: rl.policy.kind = 'decoupled_draft' needs engines without lock-step data "
                            "parallelism (rollout.engine.data_parallel_size = 2 with expert parallelism on the MoE "
                            "model Qwen3-1.7B)")


def test_a_disaggregated_trainer_does_not_count_the_drafter_gpus():
    loaded = _custom(_policy(), {"cluster": {"num_gpus": 8}, "rollout": {"num_gpus": 4}, "rl": {"pipeline": "async"}})
    res = resolve(loaded)
    spec = policy_resolved(res)  # the default pool: 1 of the 4 rollout GPUs
    assert pools(spec, "async", True) == pools(res, "async", False).__class__("async", 3, 4, False)
    assert pools(res, "async", False).training_gpus == 4  # the baseline: 4 rollout GPUs, no drafter pool
    over = _custom(_policy(), {"cluster": {"num_gpus": 8}, "rollout": {"num_gpus": 4},
                               "rl": {"pipeline": "async", "training": {"num_gpus": 5}}})
    with pytest.raises(ConfigError) as e:
        pools(policy_resolved(resolve(over)), "async", True)
    assert str(e.value) == "rl.yaml: rl.training.num_gpus = 5 + rollout GPUs 3 + drafter GPUs 1 exceeds cluster.num_gpus = 8"


def test_a_decoupled_drafters_host_overhead_is_not_the_target_engines():
    res = _resolved(_policy())
    rt = spec_runtime(res, np.arange(2), np.full(2, 300), 3, res.forward_model())
    coupled, _ = rt.host_parts_s(8, 3, 1000.0)
    assert res.drafter.overhead_host_s(8, 3) > 0.0
    assert coupled == pytest.approx(res.drafter.costs.spec_host_s + res.drafter.overhead_host_s(8, 3), rel=1e-15)
    rt.decoupled = policy_drafting(res, rt.sampler)
    assert rt.host_parts_s(8, 3, 1000.0)[0] == res.drafter.costs.spec_host_s


def test_refusals_name_the_field_and_the_rule():
    with pytest.raises(ConfigError) as e:
        _resolved(_policy(drafter_gpus=2))
    assert str(e.value) == "rl.yaml: rl.policy.drafter_gpus = 2 leaves no rollout engine: the rollout pool has 2 GPUs, 1 per engine"
    loaded = rl_policy_scenario(_policy(drafter_gpus=1))
    eng = loaded.scenario.rollout.engine
    tp2 = loaded.scenario.model_copy(update={"rollout": loaded.scenario.rollout.model_copy(update={
        "engine": eng.model_copy(update={"tensor_parallel_size": 2})})})
    with pytest.raises(ConfigError) as e:
        policy_resolved(resolve(LoadedScenario(tp2, "rl.yaml", loaded.base_dir, {})))
    assert str(e.value) == ("rl.yaml: rl.policy.drafter_gpus = 1 is not a multiple of one rollout engine's GPUs "
                            "(rollout.engine.tensor_parallel_size = 2): the drafters take whole engines")
    ngram = loaded.scenario.model_copy(update={"rollout": loaded.scenario.rollout.model_copy(update={
        "engine": eng.model_copy(update={"speculative_config": eng.speculative_config.model_copy(
            update={"method": "ngram", "model": None})})})})
    with pytest.raises(ConfigError) as e:
        DecoupledDraftSeam(DecoupledDraft()).scenario(ngram, "rl.yaml")
    assert str(e.value) == ("rl.yaml: rl.policy.kind = 'decoupled_draft' needs a GPU drafter; "
                            "rollout.engine.speculative_config.method = 'ngram' drafts on the host")


# ------------------------------------------------------------------ the engine's pricing
def test_a_decode_jump_is_priced_by_the_rule():
    res = _resolved(_policy())
    rt = spec_runtime(res, np.arange(2), np.full(2, 300), 3, res.forward_model())
    rt.decoupled = dec = policy_drafting(res, rt.sampler)
    (eng,) = build_engines(res, rt, np.zeros(2, dtype=np.int64), np.arange(2), np.zeros(2, dtype=np.int64),
                           np.full(2, 200), np.full(2, 300))
    while (jump := eng.plan()) is None:
        eng.step_slow()
    k, B = jump.k, len(jump.slots)
    assert (k, B) == (3, 2)
    raw = res.drafter.propose_times_s(B, jump.context_tokens, k)
    verify = jump.target_s + rt.verify_extra_s(B, k)
    want = decoupled_iteration_s(verify, raw, dec.transfer_s(0, B, k), 0.1296 ** 2)  # P(A_4 = 4) = 0.6^4 each
    np.testing.assert_allclose(jump.target_s + jump.draft_s, want, rtol=1e-12)
    np.testing.assert_allclose(jump.remote_s, raw, rtol=1e-15)


# ------------------------------------------------------------------ whole runs
def _run(mode: str = "fast", seed: int = 1):
    loaded = rl_policy_scenario(_policy(), prompts=4, samples=4, response=600, fixed=False, seed=seed)
    sc = loaded.scenario.model_copy(update={"simulation": loaded.scenario.simulation.model_copy(update={"mode": mode})})
    return run_pipeline(resolve(LoadedScenario(sc, loaded.source, loaded.base_dir, {})), seed, True, "sync_colocated")[0]


@pytest.mark.parametrize("policy", [_policy(), _policy(drafter_gpus=1)])
def test_the_runs_no_speculation_baseline_keeps_the_whole_rollout_pool(policy):
    loaded = rl_policy_scenario(policy, prompts=4, samples=4, response=600, fixed=False)
    res = resolve(loaded)
    base, _ = run_pipeline(res, 1, False, "sync_colocated")
    spec, _ = run_pipeline(res, 1, True, "sync_colocated")
    assert res.rollout_gpus == 2 and base.summary["pools"] == {"rollout_gpus": 2, "training_gpus": 2, "colocated": True}
    assert spec.summary["pools"] == {"rollout_gpus": 1, "training_gpus": 2, "colocated": True}  # one engine's GPU drafts


def test_fast_path_equals_one_iteration_stepping_with_the_policy_on():
    fast, ref = _run("fast"), _run("reference")
    np.testing.assert_allclose(fast.sequences["finish_s"], ref.sequences["finish_s"], rtol=1e-9)
    np.testing.assert_allclose(fast.steps["draft_hidden_share"], ref.steps["draft_hidden_share"], rtol=1e-9)
    np.testing.assert_allclose(fast.steps["drafter_utilisation"], ref.steps["drafter_utilisation"], rtol=1e-9)
    assert fast.summary["mean_acceptance_length"] == ref.summary["mean_acceptance_length"]


def test_a_run_is_deterministic_and_reports_the_drafter_pool():
    a, b = _run(), _run()
    assert a.steps.equals(b.steps) and a.sequences.equals(b.sequences)
    assert a.summary["pools"] == {"rollout_gpus": 1, "training_gpus": 2, "colocated": True}  # the drafter GPU trains too
    pol = a.summary["policy"]
    assert pol["drafter_gpus"] == 1.0 and pol["params"]["drafter_gpus"] == 1
    assert 0.0 < pol["draft_hidden_share"] < 0.1296  # batches of 1..16: at most P(A_4 = 4) at batch 1
    assert 0.0 < pol["drafter_utilisation"] < 1.0
