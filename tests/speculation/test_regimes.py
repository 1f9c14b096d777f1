"""Regimes of speculative decoding: where it pays, from the cost model and in the simulator
(rlsim.speculation.regimes, rlsim.speculation.tree)."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.calibration.acceptance import CATALOG, load_fitted
from rlsim.sim import resolve, simulate_rollout
from rlsim.sim.engines import engine_params, spec_runtime
from rlsim.speculation.regimes import break_even_batch, predicted_speedup
from rlsim.speculation.tree import DraftTree, branch_gain, goodput, tree_acceptance_length

from helpers import scenario

PROMPT, RESPONSE = 128, 256


def _runtime(res):
    return spec_runtime(res, np.arange(2), np.full(2, 64), 0, res.forward_model()), engine_params(res, True)


def _ngram_math(batch: int):
    acc = load_fitted("gsm8k/ngram").model_dump()
    return resolve(scenario(prompts=batch, prompt_tokens=PROMPT, response_tokens=RESPONSE,
                            spec={"method": "ngram", "num_speculative_tokens": 3, "acceptance": acc}))


@pytest.mark.skipif(not CATALOG.is_file(), reason="fitted acceptance catalog absent")
def test_ngram_on_math_is_slower_than_no_speculation_where_the_cost_model_says():
    """The break-even batch comes from the cost model; the simulated batch is slower there and
    beyond (its makespan also waits for the request that found the fewest matches, so it is
    below the steady-state prediction), and matches the prediction alone (batch 1)."""
    ctx = PROMPT + RESPONSE / 2
    rt, params = _runtime(_ngram_math(1))
    edge = break_even_batch(rt, params, ctx)
    assert edge is not None and 1 < edge <= 256  # a small win alone, a loss at large batch
    assert predicted_speedup(rt, params, edge // 2, ctx) >= 1.0 > predicted_speedup(rt, params, edge, ctx)
    for batch in (1, edge, 256):
        res = _ngram_math(batch)
        predicted = predicted_speedup(*_runtime(res), batch, ctx)
        simulated = simulate_rollout(res).summary["speedup"]["rollout"]
        if predicted < 1.0:
            assert simulated < 1.0, (batch, predicted, simulated)
        if batch == 1:
            assert simulated == pytest.approx(predicted, rel=0.05)


def test_eagle_speedup_prediction_falls_with_batch_and_matches_the_simulator():
    spec = {"method": "eagle3", "num_speculative_tokens": 3, "acceptance": {"kind": "constant", "rate": 0.7}}
    rt, params = _runtime(resolve(scenario(spec=spec)))
    pred = [predicted_speedup(rt, params, b, PROMPT + RESPONSE / 2) for b in (1, 8, 64, 256)]
    assert all(x > y for x, y in zip(pred, pred[1:])), pred
    sim = simulate_rollout(resolve(scenario(prompts=64, prompt_tokens=PROMPT, response_tokens=RESPONSE, spec=spec)))
    assert sim.summary["speedup"]["rollout"] == pytest.approx(pred[2], rel=0.1)


def test_branch_gain_reproduces_the_measured_tree_acceptance_length():
    from rlsim.speculation.acceptance import conditional_from_unconditional

    a = conditional_from_unconditional(np.array([0.78, 0.58, 0.43, 0.29, 0.24, 0.14, 0.08]))
    g = branch_gain()
    assert 0.0 < g < 1.0
    assert tree_acceptance_length(a, DraftTree(5, 8, 32), g) == pytest.approx(4.68)
    assert tree_acceptance_length(a, DraftTree(5, 1, 5), g) == pytest.approx(1 + np.cumprod(a[:5]).sum())  # chain


def test_tree_beats_the_chain_at_batch_1_and_loses_at_large_batch():
    spec = {"method": "eagle3", "model": "EAGLE3-Llama-3.1-8B", "num_speculative_tokens": 5,
            "acceptance": {"kind": "per_position", "rates": [0.78, 0.58, 0.43, 0.29, 0.24]}}
    rt, _ = _runtime(resolve(scenario(model="Llama-3.1-8B", spec=spec)))
    tree = DraftTree(depth=5, topk=8, num_draft_tokens=32)
    ctx = 2000.0
    assert goodput(rt, 1, ctx, 5, tree) > goodput(rt, 1, ctx, 5)
    assert goodput(rt, 256, 256 * ctx, 5, tree) < goodput(rt, 256, 256 * ctx, 5)


def test_tree_widths_split_the_tokens_over_levels():
    assert DraftTree(5, 8, 32).widths().tolist() == [7, 7, 6, 6, 6]
    assert DraftTree(3, 2, 10).widths().tolist() == [2, 2, 2]
