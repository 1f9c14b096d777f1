"""Speculative decoding in the engine: closed form, acceptance statistics, losslessness, regimes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlsim.cost import PassShape
from rlsim.sim import resolve, simulate_rollout
from rlsim.sim.engines import spec_runtime

from helpers import eagle, scenario


def _speedup(loaded, seed: int = 0) -> float:
    return simulate_rollout(resolve(loaded), seed).summary["speedup"]["rollout"]


@pytest.mark.parametrize("a", [0.5, 0.7, 0.9])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_leviathan_closed_form_at_batch_one(a, k):
    """Batch 1, memory-bound, i.i.d. acceptance a: speedup = E / (k c + 1), E = (1-a^(k+1))/(1-a),
    with c the simulator's own draft/target step-cost ratio (Leviathan et al. 2211.17192)."""
    loaded = scenario(prompt_tokens=128, response_tokens=16000, spec=eagle(k, a))
    res = resolve(loaded)
    fwd = res.forward_model()
    ctx = 128 + 8000.0  # mid-sequence context
    target = float(fwd.decode_times_s(1, np.array([ctx]))[0])
    draft_per_token = float(res.drafter.propose_times_s(1, np.array([ctx]), k)[0]) / k
    c = draft_per_token / target
    expected = (1 - a ** (k + 1)) / (1 - a) / (k * c + 1)
    assert _speedup(loaded) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("acceptance,k", [
    ({"kind": "constant", "rate": 0.68}, 3),
    ({"kind": "per_position", "rates": [0.78, 0.58, 0.43, 0.29]}, 4),
    ({"kind": "empirical", "accepted_counts": [30, 20, 25, 25]}, 3),
])
def test_simulated_acceptance_reproduces_the_model(acceptance, k):
    """vLLM's definitions over a whole rollout: mean acceptance length within 1 %."""
    spec = {"method": "eagle3", "num_speculative_tokens": k, "acceptance": acceptance}
    loaded = scenario(prompts=32, samples=4, response_tokens=2000, spec=spec)
    s = simulate_rollout(resolve(loaded)).summary
    from rlsim.speculation.acceptance import PerPositionAcceptance  # noqa: F401  (schema import check)

    model = resolve(loaded).speculative.acceptance
    assert s["num_drafts"] > 50_000
    assert s["mean_acceptance_length"] == pytest.approx(model.mean_acceptance_length(k), rel=0.01)
    np.testing.assert_allclose(s["per_position_acceptance"], model.per_position_rates(k), atol=0.01)
    assert s["draft_acceptance_rate"] == pytest.approx((s["mean_acceptance_length"] - 1) / k, rel=1e-9)
    assert s["mean_acceptance_length"] == pytest.approx(1 + sum(s["per_position_acceptance"]), rel=1e-9)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompts=st.integers(1, 6), samples=st.integers(1, 4), prompt=st.integers(1, 300), response=st.integers(1, 400),
    k=st.integers(1, 6), rate=st.floats(0.0, 1.0), kv_tight=st.booleans(), seed=st.integers(0, 1000),
)
def test_lossless_every_sequence_emits_the_same_tokens(prompts, samples, prompt, response, k, rate, kv_tight, seed):
    engine = {"gpu_memory_utilization": 0.03, "activation_reserve_gib": 0.1} if kv_tight else {}
    loaded = scenario(prompts=prompts, samples=samples, prompt_tokens=prompt, response_tokens=response,
                      model="Qwen3-0.6B", spec=eagle(k, rate) | {"model": "EAGLE3-Qwen3-8B"}, seed=seed,
                      max_num_seqs=8, max_num_batched_tokens=256, **engine)
    r = simulate_rollout(resolve(loaded), seed)
    spec, base = r.sequences, r.baseline.sequences
    np.testing.assert_array_equal(spec["generated"], base["generated"])
    np.testing.assert_array_equal(spec["generated"], spec["response_len"])
    assert r.summary["generated_tokens"] == r.baseline.summary["generated_tokens"]


def test_fast_path_equals_reference_with_speculation():
    spec = eagle(3, 0.7)
    fast = simulate_rollout(resolve(scenario(prompts=16, samples=4, response_tokens=700, spec=spec,
                                             gpu_memory_utilization=0.25)), paired=False)
    ref_loaded = scenario(prompts=16, samples=4, response_tokens=700, spec=spec, gpu_memory_utilization=0.25)
    ref_res = resolve(ref_loaded)
    object.__setattr__(ref_res, "scenario", ref_res.scenario.model_copy(update={"simulation": ref_res.scenario.simulation.model_copy(update={"mode": "reference"})}))
    ref = simulate_rollout(ref_res, paired=False)
    np.testing.assert_allclose(fast.sequences["finish_s"], ref.sequences["finish_s"], rtol=1e-9)
    assert fast.summary["num_accepted_tokens"] == ref.summary["num_accepted_tokens"]
    assert fast.summary["engine_iterations"] == ref.summary["engine_iterations"]


# ---------------------------------------------------------------------------------- regimes
BATCHES = [1, 16, 64, 256]


def regime_speedups(rate: float, k: int, batches=BATCHES, response_tokens: int = 256) -> list[float]:
    """Rollout speedup of EAGLE-3 (Qwen3-8B, H100) at several running batch sizes."""
    return [_speedup(scenario(prompts=b, response_tokens=response_tokens, spec=eagle(k, rate))) for b in batches]


def best_k(batch: int, rate: float = 0.8, ks=range(1, 9)) -> int:
    sp = [_speedup(scenario(prompts=batch, response_tokens=256, spec=eagle(k, rate))) for k in ks]
    return list(ks)[int(np.argmax(sp))]


def test_speedup_falls_as_the_running_batch_grows():
    sp = regime_speedups(0.7, 3)
    assert all(x > y for x, y in zip(sp, sp[1:])), sp
    assert sp[0] > 1.5  # AL 2.53 against a round ~1.5x a decode step (fitted drafting and verify terms)


def test_weak_drafter_at_large_batch_is_slower_than_the_baseline():
    weak = regime_speedups(0.4, 2, batches=[1, 256])
    assert weak[0] > 1.0 > weak[1], weak


def test_best_k_shrinks_as_the_batch_grows():
    small, large = best_k(1), best_k(256)
    assert large < small, (small, large)


def test_moe_verify_costs_relatively_more_than_dense_at_small_batch():
    """Qwen3-235B-A22B (22B active) vs dense Qwen3-32B, both TP8 on H100: a 4-token verify pass
    at batch 1 over a 1-token decode step."""
    def ratio(model, **kw):
        res = resolve(scenario(model=model, gpus=8, tp=8, **kw))
        fwd = res.forward_model()
        one = fwd.time_s(PassShape(1, 1, 1, 2000.0))
        verify = fwd.time_s(PassShape(4, 4, 1, 2003.0, decode_pairs=4 * 2003.0 - 6))
        return verify / one

    moe = ratio("Qwen3-235B-A22B", enable_expert_parallel=True)
    dense = ratio("Qwen3-32B")
    assert moe > 1.3 and dense < 1.1 and moe > dense + 0.3, (moe, dense)


def test_spec_runtime_expected_accepted_matches_model():
    loaded = scenario(spec=eagle(4, 0.6))
    res = resolve(loaded)
    rt = spec_runtime(res, *_batch(res), 0, res.forward_model())
    a = 0.6
    assert rt.expected_accepted[4] == pytest.approx(sum(a ** i for i in range(1, 5)))


def _batch(res):
    from rlsim.sim.rollout import rng_streams
    from rlsim.workload import sample_batch

    b = sample_batch(res.scenario.workload, rng_streams(0)[0])
    return b.seq_id, b.response_len
