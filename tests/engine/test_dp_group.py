"""Data-parallel attention ranks in lock-step: shared steps, dummy batches, fast == reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlsim.config import LoadedScenario, scenario_from_dict
from rlsim.cost import PassShape
from rlsim.engine.dp_group import DataParallelGroup
from rlsim.sim import resolve
from rlsim.sim.engines import build_engines


def _res(dp: int = 2, tp: int = 1, mode: str = "fast", **engine):
    eng = {"tensor_parallel_size": tp, "data_parallel_size": dp, "enable_expert_parallel": True,
           "max_num_seqs": 64, "max_num_batched_tokens": 2048, **engine}
    data = {"name": "dp", "cluster": {"hardware": "h100_sxm", "num_gpus": tp * dp}, "model": {"name": "Qwen3-30B-A3B"},
            "rollout": {"engine": eng}, "simulation": {"mode": mode},
            "workload": {"num_prompts_per_step": 4, "num_generations_per_prompt": 2,
                         "prompt_length": {"kind": "fixed", "tokens": 256},
                         "response_length": {"kind": "fixed", "tokens": 64}, "max_new_tokens": 64}}
    return resolve(LoadedScenario(scenario_from_dict(data, "dp.yaml"), "dp.yaml", Path("."), data))


def _run(group) -> list:
    segs = []
    while not group.done():
        segs.append(group.step())
    return segs


def test_resolve_builds_one_lockstep_engine_over_dp_x_tp_gpus():
    res = _res(dp=2, tp=2)
    assert res.dp == 2 and res.num_engines == 1 and res.lockstep
    (group,) = build_engines(res, None)
    assert isinstance(group, DataParallelGroup) and len(group.ranks) == 2
    # experts over 4 GPUs: a GPU holds less than with TP 2 alone
    assert res.memory.weight_bytes < _res(dp=1, tp=2).memory.weight_bytes


def test_ranks_step_together_and_an_idle_rank_runs_a_dummy_batch():
    res = _res()
    (group,) = build_engines(res, None)
    group.add_sequences(np.arange(2), np.arange(2), [256, 256], [32, 32])  # one request per rank
    _run(group)
    f0, f1 = (r.requests.finish_s[0] for r in group.ranks)
    assert f0 == f1  # the same steps on both ranks
    (alone,) = build_engines(res, None)
    alone.add_sequences([0], [0], [256], [32])  # rank 1 idle: it pads to rank 0's batch
    _run(alone)
    assert alone.ranks[0].requests.finish_s[0] == pytest.approx(f0, rel=1e-9)
    assert len(alone.ranks[1].requests) == 0


def test_lockstep_pass_is_the_slowest_rank_and_moe_sees_every_rank():
    res = _res()
    timer = build_engines(res, None)[0].timer
    light, heavy = PassShape(1, 1, 1, 300.0), PassShape(1, 1, 1, 6000.0)
    t_mixed, _ = timer.pass_time_s([light, heavy])
    t_heavy, _ = timer.pass_time_s([heavy, heavy])
    assert t_mixed == pytest.approx(t_heavy, rel=1e-12)
    fwd = res.forward_model()
    single = res.__class__(**{**res.__dict__, "dp": 1}).forward_model()
    assert fwd.components(heavy)["moe"] > single.components(heavy)["moe"]  # two ranks' tokens routed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_equals_reference_for_a_dp_group(seed):
    rng = np.random.default_rng(seed)
    prompts = np.repeat(rng.integers(20, 400, 6), 2)
    responses = rng.integers(5, 150, 12)
    out = {}
    for mode in ("fast", "reference"):
        (g,) = build_engines(_res(mode=mode, max_num_seqs=4, max_num_batched_tokens=512), None)
        g.add_sequences(np.arange(12), np.repeat(np.arange(6), 2), prompts, responses)
        _run(g)
        out[mode] = np.concatenate([r.requests.finish_s[np.argsort(r.requests.seq_ids)] for r in g.ranks])
    np.testing.assert_allclose(out["fast"], out["reference"], rtol=1e-9)


@pytest.mark.parametrize("dp", [1, 2])
@pytest.mark.parametrize("budgets", [False, True])
def test_fast_path_equals_reference_with_ngram_regimes_and_budgets(dp, budgets):
    """n-gram with bursty (regime) acceptance: requests without a match propose nothing, and with
    draft budgets slots go unverified.  The fast path (one engine, or DP ranks in lock-step) prices
    the same passes, proposer host time and context-dependent draws as the reference: the DP
    reference prices each rank's pass less its skipped slots, the lock-step fast path books each
    iteration's n-gram scan, and a budgeted request's later rounds start where its capped rounds
    left it."""
    from rlsim.sim.engines import spec_runtime

    rng = np.random.default_rng(3)
    prompts = np.repeat(rng.integers(20, 400, 6), 2)
    responses = rng.integers(20, 150, 12)
    spec = {"method": "ngram", "num_speculative_tokens": 4,
            "acceptance": {"kind": "regime", "easy_fraction": 0.4, "easy_rate": 0.8, "hard_rate": 0.0, "block_tokens": 16}}
    out = {}
    for mode in ("fast", "reference"):
        res = _res(dp=dp, mode=mode, max_num_seqs=4, max_num_batched_tokens=512, speculative_config=spec,
                   enable_expert_parallel=dp > 1)
        ids = np.arange(12)
        rt = spec_runtime(res, ids, responses, 0, res.forward_model(),
                          draft_budget=np.tile([1, 4], 6) if budgets else None)
        (engine,) = build_engines(res, rt)
        engine.add_sequences(ids, np.repeat(np.arange(6), 2), prompts, responses)
        _run(engine)
        ranks = getattr(engine, "ranks", [engine])
        out[mode] = np.concatenate([r.requests.finish_s[np.argsort(r.requests.seq_ids)] for r in ranks])
    np.testing.assert_allclose(out["fast"], out["reference"], rtol=1e-12)


def test_dp_without_expert_parallelism_is_refused():
    with pytest.raises(Exception) as err:
        _res(enable_expert_parallel=False)
    assert str(err.value) == ("dp.yaml: rollout.engine.data_parallel_size = 2 > 1 with an MoE model needs "
                              "enable_expert_parallel (vLLM's DP attention + EP; experts tensor-parallel across DP "
                              "ranks are not modelled)")


def test_lockstep_decode_runs_every_rank_at_the_largest_ranks_computed_tokens():
    """Ranks of 129 and 10 requests at q = 4, the first skipping 10 slots (n-gram requests
    without a match): the vectorised path pads every rank to 516 - 10 = 506 tokens (graphed),
    as the reference path's pass over the skip-reduced shapes does."""
    from rlsim.cost.dp import DataParallelForward
    from rlsim.cost.forward import ForwardModel
    from rlsim.hardware import load_profile
    from rlsim.models import load_model

    fwd = ForwardModel(load_model("Qwen3-30B-A3B"), load_profile("h100_sxm"), dp=2, expert_parallel=True)
    timer = DataParallelForward(fwd)
    q = 4
    ranks = [(129, np.array([129 * 200.0]), q, 129 * q - 10), (10, np.array([10 * 200.0]), q, 10 * q)]
    shapes = [PassShape(t, b * q, b, float(c[0]), decode_pairs=q * float(c[0]) - b * q * (q - 1) / 2)
              for b, c, _, t in ranks]
    slow, _ = timer.pass_time_s(shapes)
    times, T, _ = timer.decode_split_s(ranks, 0)
    assert T == 512 and fwd.graphed(512)
    assert times[0] == pytest.approx(slow, rel=1e-12)
    unskipped = [(b, c, q, b * q) for b, c, _, _ in ranks]  # 516 tokens: no graph, a different pass
    assert not fwd.graphed(timer.decode_split_s(unskipped, 0)[1])
