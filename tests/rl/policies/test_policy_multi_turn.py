"""Multi-turn rollouts: turns, tool latency and the KV kept or evicted between turns, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import rl_policy_scenario

from rlsim.errors import ConfigError
from rlsim.rl.pipeline import step_batches
from rlsim.rl.policies.multi_turn import MultiTurn, MultiTurnSeam, split_response, tool_latencies_s, turn_counts
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve
from rlsim.sim.engines import build_engines

# one trajectory (prompt 200, response 600), 2 turns of 300, a fixed 3 s tool call returning 100 tokens
HAND = {"kind": "multi_turn", "turns": "fixed", "mean_turns": 2, "tool_latency_median_s": 3.0,
        "tool_latency_p90_s": 3.0, "observation_tokens": 100}


def _hand(kv: str):
    return resolve(rl_policy_scenario({**HAND, "kv": kv}, prompts=1, samples=1, response=600, spec=False, steps=3))


def _alone(engine, seq_id: int, prompt: int, response: int, prefix=None) -> float:
    """Time ``engine`` takes to serve one request from now (nothing else running)."""
    t0 = engine.now
    engine.add_sequences(np.array([seq_id]), np.array([0]), np.array([prompt]), np.array([response]),
                         None if prefix is None else np.array([prefix]))
    while not engine.done():
        engine.step()
    return engine.now - t0


def test_split_and_counts():
    assert split_response(10, 3).tolist() == [4, 3, 3]
    cfg = MultiTurn(turns="fixed", mean_turns=3)
    assert turn_counts(cfg, np.array([1, 2, 50]), np.random.default_rng(0)).tolist() == [1, 2, 3]


def test_sampling_is_deterministic_by_seed_and_matches_its_distribution():
    cfg = MultiTurn(mean_turns=4.0, max_turns=256, tool_latency_median_s=1.0, tool_latency_p90_s=5.0)
    a = turn_counts(cfg, np.full(20000, 10**6), np.random.default_rng(3))
    assert a.tolist() == turn_counts(cfg, np.full(20000, 10**6), np.random.default_rng(3)).tolist()
    assert a.mean() == pytest.approx(4.0, rel=0.03)  # geometric, mean 1 / p
    lat = tool_latencies_s(cfg, 20000, np.random.default_rng(4))
    assert np.median(lat) == pytest.approx(1.0, rel=0.05) and np.quantile(lat, 0.9) == pytest.approx(5.0, rel=0.06)
    res = _hand("keep")
    base = step_batches(res, 1, 3)
    p1, p2 = (MultiTurnSeam(MultiTurn()).plan(res, base, 1) for _ in range(2))
    assert [b.prompt.tolist() for b in p1.generate] == [b.prompt.tolist() for b in p2.generate]
    assert p1.data.equals(p2.data)


def test_plan_by_hand():
    res = _hand("keep")
    plan = MultiTurnSeam(res.scenario.rl.policy).plan(res, step_batches(res, 1, 3), 1)
    g = plan.generate[0]
    assert g.prompt.tolist() == [200, 600] and g.response.tolist() == [300, 300]
    assert plan.turns[0].next_of.tolist() == [1, -1] and plan.turns[0].latency_s.tolist() == [0.0, 3.0]
    row = plan.data.iloc[0]
    assert row["trained_tokens"] == 600 and row["turn_requests"] == 2 and row["tool_wait_s"] == 3.0
    assert plan.train[0].response.tolist() == [600]  # the whole response trains; observations are context


def test_kept_kv_is_hit_by_the_next_turn_on_the_engine():
    res = _hand("keep")
    eng = build_engines(res, None)[0]
    eng.kv_handover[0] = 1
    _alone(eng, 0, 200, 300)
    before = eng.stats.prefill_tokens
    _alone(eng, 1, 600, 300, prefix=199)
    # turn 1 ends with 499 tokens computed: 12 shared prompt blocks + 19 full private blocks of 16 = 496 hit
    assert eng.stats.prefill_tokens - before == 600 - 496


def test_hand_case_step_is_turn_one_plus_tool_plus_turn_two():
    t1 = _alone(build_engines(_hand("evict"), None)[0], 0, 200, 300)
    t2_evict = _alone(build_engines(_hand("evict"), None)[0], 0, 600, 300)
    eng = build_engines(_hand("keep"), None)[0]
    eng.kv_handover[0] = 1
    _alone(eng, 0, 200, 300)
    t2_keep = _alone(eng, 1, 600, 300, prefix=199)
    out = {}
    for kv in ("keep", "evict"):
        out[kv], _ = run_pipeline(_hand(kv), 1, False, "sync_colocated")
    assert out["evict"].steps["generation_makespan_s"].tolist() == pytest.approx([t1 + 3.0 + t2_evict] * 3, rel=1e-12)
    assert out["keep"].steps["generation_makespan_s"].tolist() == pytest.approx([t1 + 3.0 + t2_keep] * 3, rel=1e-12)
    assert t2_keep < t2_evict  # keep computes 104 prefill tokens, evict 600
    s = out["keep"].steps
    # two engines: the busy one idles the 3 s tool call, the other the whole generation
    assert s["rollout_idle_gpu_s"].tolist() == pytest.approx(list(3.0 + s["generation_makespan_s"]), rel=1e-9)
    assert out["keep"].summary["policy"]["tool_wait_s"] == 3.0
    assert s["rollout_tokens"].tolist() == [600] * 3 and s["trained_tokens"].tolist() == [600] * 3


@pytest.mark.parametrize("update, msg", [
    ({"tool_latency_p90_s": 1.0},
     "rl.yaml: rl.policy.tool_latency_p90_s = 1.0 must be at least tool_latency_median_s (3.0)"),
    ({"mean_turns": 2.5}, "rl.yaml: rl.policy.mean_turns = 2.5 must be a whole number with turns: fixed"),
    ({"kv": "pin"}, "rl.yaml: rl.policy.kv = 'pin' input should be 'keep' or 'evict'"),
])
def test_bad_input_is_one_line(update, msg):
    with pytest.raises(ConfigError) as e:
        rl_policy_scenario({**HAND, **update})
    assert str(e.value) == msg


def test_no_policy_leaves_the_engine_untouched():
    eng = build_engines(_hand("keep"), None)[0]
    _alone(eng, 0, 200, 300)
    assert eng.kv_handover == {} and not eng.kv._alias and not any(k[0] == "k" for k in eng.kv._lru)
    assert math.isfinite(eng.now)


def test_lock_step_engines_are_refused_in_one_line():
    from types import SimpleNamespace

    with pytest.raises(ConfigError) as e:
        MultiTurnSeam(MultiTurn()).plan(SimpleNamespace(lockstep=True, source="dp.yaml"), [], 0)
    assert str(e.value) == ("dp.yaml: rl.policy.kind = 'multi_turn' needs engines without lock-step data "
                            "parallelism (rollout dp > 1 is not supported)")


def test_the_trainer_computes_the_observations_as_context():
    res = resolve(rl_policy_scenario(None, fixed=False))
    base = step_batches(res, 1, 2)
    cfg = MultiTurn(turns="fixed", mean_turns=3, observation_tokens=100)
    plan = MultiTurnSeam(cfg).plan(res, base, 1)
    for b, tr in zip(base, plan.train):
        turns = np.minimum(3, b.response)  # never more turns than response tokens
        assert tr.prompt.tolist() == (b.prompt + (turns - 1) * 100).tolist()
        assert tr.response.tolist() == b.response.tolist() and tr.seq_id.tolist() == b.seq_id.tolist()
    assert plan.data["trained_tokens"].tolist() == [int(b.response.sum()) for b in base]  # observations not trained
