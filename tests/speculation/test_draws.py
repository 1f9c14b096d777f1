"""Acceptance draws by sequence id: buffered draws equal direct sampling, whatever the ids."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.speculation.acceptance import AcceptanceSampler, ConstantAcceptance, ContextDecay
from rlsim.speculation.draws import AcceptanceDraws


def _sampler(ids, model=None, k=4):
    model = model or ConstantAcceptance(rate=0.7, concentration=4.0)
    return AcceptanceSampler(model, k, 11, ids, np.full(len(ids), 1000))


@pytest.mark.parametrize("ids", [np.arange(50), np.arange(50) + 7000, np.arange(50)[::-1] * 13 + 5])
def test_draws_by_id_equal_direct_sampling(ids):
    s = _sampler(ids)
    draws = AcceptanceDraws(s, buffer_rounds=16)
    pick = ids[[3, 17, 40, 0]]
    first = np.array([0, 5, 15, 30])
    got = np.concatenate([draws.accepted(pick, first + 4 * r, 4, 3) for r in range(8)])  # crosses refills
    direct = s.sample(s.index_of(pick), first, 32, 3)
    np.testing.assert_array_equal(got, direct)
    np.testing.assert_array_equal(draws.accepted(pick, first, 40, 4), s.sample(s.index_of(pick), first, 40, 4))


def test_index_of_maps_ids_and_rejects_unknown_ones():
    ids = np.array([30, 10, 20])
    s = _sampler(ids)
    assert s.index_of([20, 30]).tolist() == [2, 0]
    with pytest.raises(AssertionError, match="unknown sequence ids"):
        s.index_of([15])
    with pytest.raises(AssertionError, match="unknown sequence ids"):
        _sampler(np.arange(5) + 100).index_of([99])


def test_context_decay_draws_round_by_round():
    model = ConstantAcceptance(rate=0.9, context_decay=ContextDecay(reference_tokens=0, half_life_tokens=200))
    ids = np.arange(5) + 300
    s = _sampler(ids, model, k=3)
    draws = AcceptanceDraws(s)
    ctx = np.full(5, 100.0)
    got = draws.accepted(ids, np.zeros(5, dtype=np.int64), 6, 3, ctx)
    expect = np.empty_like(got)
    for r in range(6):  # each round's context grows by the tokens the earlier rounds emitted
        expect[r] = s.sample(s.index_of(ids), np.full(5, r), 1, 3, ctx[None, :])[0]
        ctx = ctx + 1 + expect[r]
    np.testing.assert_array_equal(got, expect)
