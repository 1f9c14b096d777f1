"""Length-aware draft budgets (DAS): the predictor by hand, the engine's per-request budgets
(accepted = min(draw, k_i), verify pass on sum(1 + k_i) tokens), fast path == reference, and
budgets all = k giving the plain speculative run exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import eagle, rl_policy_scenario, scenario

from rlsim.config import LoadedScenario, scenario_from_dict
from rlsim.cost import PassShape
from rlsim.engine import Engine
from rlsim.errors import ConfigError
from rlsim.rl.policies.length_aware_draft import (LengthAwareDraft, LengthAwareDraftSeam, draft_budgets,
                                                  long_requests, predicted_lengths)
from rlsim.rl.policies.run import policy_resolved
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve
from rlsim.sim.engines import engine_params, spec_runtime

POLICY = {"kind": "length_aware_draft", "long_draft_tokens": 5, "short_draft_tokens": 1, "long_fraction": 0.25}


def test_predictor_is_the_other_members_mean_and_never_the_own_length():
    group = np.array([0, 0, 0, 1, 1, 1, 2])
    resp = np.array([100, 200, 300, 1000, 1100, 1200, 9999])
    pred = predicted_lengths(group, resp)
    np.testing.assert_allclose(pred[:6], [250, 200, 150, 1150, 1100, 1050])
    assert np.isnan(pred[6])  # a group of one has no earlier rollouts: never long
    # ceil(0.3 x 7) = 3 long: the three largest predictions (requests 3, 4, 5), not the 9999-token one
    assert long_requests(pred, 0.3).tolist() == [False, False, False, True, True, True, False]
    k, long = draft_budgets(LengthAwareDraft(long_draft_tokens=6, short_draft_tokens=0, long_fraction=0.25), group, resp)
    assert k.tolist() == [0, 0, 0, 6, 6, 0, 0] and long.sum() == 2  # ceil(0.25 x 7) = 2: 1150 and 1100
    # ties: the earlier request first
    assert long_requests(np.array([5.0, 7.0, 7.0, 1.0]), 0.25).tolist() == [False, True, False, False]


def test_policy_raises_k_to_the_long_budget_and_reports_budgets_per_step():
    res = policy_resolved(resolve(rl_policy_scenario(POLICY)))
    assert res.speculative.num_speculative_tokens == 5
    no_spec = rl_policy_scenario(None, spec=False).scenario
    assert LengthAwareDraftSeam(LengthAwareDraft()).scenario(no_spec) is no_spec
    out, _ = run_pipeline(res, 1, True, "sync_colocated")
    # 16 requests per step (4 groups of 4): ceil(0.25 x 16) = 4 long at 5 drafts, 12 at 1
    assert out.steps["long_budget_share"].tolist() == [0.25] * 4
    assert out.steps["mean_draft_budget"].tolist() == [(4 * 5 + 12 * 1) / 16] * 4
    assert out.summary["policy"]["mean_draft_budget"] == 2.0


def _engine(budgets, fast: bool = False, prompts=(100, 100), responses=(50, 50), k: int = 3, **engine):
    """One Qwen3-8B engine with EAGLE-3 (k, rate 0.7) and the given per-request draft budgets."""
    res = resolve(scenario(prompts=len(prompts), spec=eagle(k, 0.7), **engine))
    n = len(prompts)
    ids = np.arange(n)
    fwd = res.forward_model()
    rt = spec_runtime(res, ids, np.asarray(responses), 7, fwd, draft_budget=np.asarray(budgets))
    params = dataclasses.replace(engine_params(res, speculative=True), fast=fast)
    return Engine(0, fwd, params, ids, ids, np.asarray(prompts), np.asarray(responses), spec=rt), rt, fwd


def test_hand_case_budgets_one_and_three():
    eng, rt, fwd = _engine([1, 3], enforce_eager=True)  # no CUDA graph padding 6 tokens to 8
    eng.step_slow()  # both prompts prefill (and sample their first token)
    assert (eng.requests.pending(np.arange(2)) == 1).all()
    req = eng.requests
    before_gen, before_computed = req.generated.copy(), req.computed.copy()
    draws = rt.draws.accepted(req.seq_ids, req.draft_rounds, 1, 3)[0]  # the round's draws at k = 3
    plan = eng.prepare_step()
    # KV slots and the pass's attention stay at 1 + k = 4 per request; the GEMMs run on (1 + 1) + (1 + 3)
    assert plan.batch.new_tokens.tolist() == [4, 4]
    ctx = before_computed + 4
    shape = PassShape(num_tokens=6, num_logits=8, decode_seqs=2, decode_ctx_tokens=float(ctx.sum()),
                      decode_pairs=float((4 * ctx - 6).sum()))
    assert plan.parts == fwd.components(shape)
    assert plan.reject_s == rt.verify_extra_s(2, 3, 2)
    # the GEMMs run on 6 tokens, not 8 (the eager pass itself is host-bound at batch 2: compare the GPU work)
    assert plan.parts["linear"] < fwd.components(dataclasses.replace(shape, num_tokens=8))["linear"]
    eng.apply_step(plan, 1.0)
    np.testing.assert_array_equal(req.generated - before_gen, 1 + np.minimum(draws, [1, 3]))
    assert eng.stats.num_draft_tokens == 1 + 3  # vLLM's counter: the drafts each request verified


def test_iteration_k_is_the_largest_running_budget():
    eng, _, _ = _engine([1, 2])
    eng.step_slow()
    assert eng.prepare_step().batch.new_tokens.tolist() == [3, 3]  # k = max(1, 2) < the scenario's 3
    eng0, _, _ = _engine([0, 0])
    eng0.step_slow()
    assert eng0.prepare_step().batch.new_tokens.tolist() == [1, 1]  # nobody drafts: plain decode


def test_a_migrated_request_keeps_its_budget():
    eng, rt, fwd = _engine([1, 3])
    eng.step_slow()
    other = Engine(1, fwd, eng.params, [], [], [], [], spec=rt)
    assert other.migrate_in(eng.migrate_out(1), kv_ready=True)
    assert other.requests.draft_budget.tolist() == [3]
    assert other.prepare_step().batch.new_tokens.tolist() == [4]  # k = its own budget 3


def _run(engine: Engine) -> None:
    while not engine.done():
        engine.step()


def test_fast_path_equals_reference_with_mixed_budgets():
    rng = np.random.default_rng(3)
    prompts, responses = rng.integers(20, 400, 24), rng.integers(1, 900, 24)
    budgets = rng.choice([0, 1, 3, 5], 24)
    fast, _, _ = _engine(budgets, True, prompts, responses, k=5)
    ref, _, _ = _engine(budgets, False, prompts, responses, k=5)
    _run(fast)
    _run(ref)
    np.testing.assert_array_equal(fast.gen, responses)
    np.testing.assert_allclose(fast.finish_s, ref.finish_s, rtol=1e-9)
    assert fast.stats.num_accepted_tokens == ref.stats.num_accepted_tokens > 0
    assert fast.stats.num_draft_tokens == ref.stats.num_draft_tokens
    assert fast.stats.iterations == ref.stats.iterations
    assert fast.stats.segments < ref.stats.segments  # the fast path did jump


def _reference(loaded: LoadedScenario) -> LoadedScenario:
    data = dict(loaded.raw) | {"simulation": {"mode": "reference"}}
    return LoadedScenario(scenario_from_dict(data, "rl.yaml"), "rl.yaml", Path("."), data)


def test_rl_run_fast_equals_reference_with_budgets():
    loaded = rl_policy_scenario(POLICY, fixed=False, response=400, steps=2)
    fast, _ = run_pipeline(resolve(loaded), 2, True, "sync_colocated")
    ref, _ = run_pipeline(resolve(_reference(loaded)), 2, True, "sync_colocated")
    np.testing.assert_allclose(fast.steps["step_time_s"], ref.steps["step_time_s"], rtol=1e-9)
    np.testing.assert_allclose(fast.sequences["finish_s"], ref.sequences["finish_s"], rtol=1e-9)
    assert fast.summary["mean_acceptance_length"] == ref.summary["mean_acceptance_length"]


def test_budgets_all_k_give_the_plain_speculative_run():
    loaded = rl_policy_scenario(None, fixed=False, response=400, steps=3)
    every = rl_policy_scenario({"kind": "length_aware_draft", "long_draft_tokens": 3, "short_draft_tokens": 3},
                               fixed=False, response=400, steps=3)
    plain, _ = run_pipeline(resolve(loaded), 1, True, "sync_colocated")
    budgeted, _ = run_pipeline(resolve(every), 1, True, "sync_colocated")
    np.testing.assert_array_equal(plain.steps["step_time_s"], budgeted.steps["step_time_s"])
    np.testing.assert_array_equal(plain.sequences["finish_s"], budgeted.sequences["finish_s"])
    assert plain.summary["draft_acceptance_rate"] == budgeted.summary["draft_acceptance_rate"]
    assert plain.summary["mean_acceptance_length"] == budgeted.summary["mean_acceptance_length"]


def test_refused_with_context_dependent_acceptance_or_lockstep_ranks():
    """(Its field errors and the refusal without speculation: tests/rl/policies/test_policy_seam.py.)"""
    data = dict(rl_policy_scenario({"kind": "length_aware_draft"}).raw)
    acc = {"kind": "constant", "rate": 0.6, "context_decay": {"reference_tokens": 0, "half_life_tokens": 4000}}
    data["rollout"] = {"engine": data["rollout"]["engine"] | {
        "speculative_config": data["rollout"]["engine"]["speculative_config"] | {"acceptance": acc}}}
    with pytest.raises(ConfigError) as e:
        scenario_from_dict(data, "rl.yaml")
    assert str(e.value) == ("rl.yaml: rl.policy.kind = 'length_aware_draft' needs acceptance without context_decay or "
                            "regimes (per-request budgets cap draws made at the iteration's k)")
    from types import SimpleNamespace

    with pytest.raises(ConfigError) as e:
        LengthAwareDraftSeam(LengthAwareDraft()).draft_budget(SimpleNamespace(speculative=1, lockstep=True,
                                                                              source="dp.yaml"), [])
    assert str(e.value) == ("dp.yaml: rl.policy.kind = 'length_aware_draft' needs engines without lock-step data "
                            "parallelism (rollout dp > 1 is not supported)")


def test_the_time_split_books_a_budgeted_pass_at_the_tokens_it_ran():
    """129 requests at k = 3, ten of them budgeted at 2: the verify pass runs 516 - 10 = 506 tokens,
    under the 512 cap, so it has its graph.  The fast path's split (no exposed dispatch, the
    linear kernels at 506 tokens) equals the reference path's, with a dispatch large enough to
    show up if it were booked."""
    n = 129
    budgets = np.full(n, 3)
    budgets[:10] = 2
    runs = []
    for fast in (True, False):
        res = resolve(scenario(prompts=n, spec=eagle(3, 0.7), prompt_tokens=100, response_tokens=40,
                               cpu_overhead={"eager_layer_us": 1000.0}))
        ids = np.arange(n)
        fwd = res.forward_model()
        rt = spec_runtime(res, ids, np.full(n, 40), 7, fwd, draft_budget=budgets)
        params = dataclasses.replace(engine_params(res, speculative=True), fast=fast)
        e = Engine(0, fwd, params, ids, ids, np.full(n, 100), np.full(n, 40), spec=rt)
        while not e.done():
            e.step()
        runs.append(e)
    f, r = (e.stats.components_s for e in runs)
    assert runs[0].now == pytest.approx(runs[1].now, rel=1e-12)
    for key in ("launch", "attention", "linear"):
        assert f[key] == pytest.approx(r[key], rel=1e-9, abs=1e-12), key
