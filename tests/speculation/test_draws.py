"""Acceptance draws by sequence id: buffered draws equal direct sampling, whatever the ids."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.speculation.acceptance import AcceptanceSampler, ConstantAcceptance, ContextDecay, RegimeAcceptance
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


def _round_by_round(s, ids, first, ctx, rounds, k):
    out = np.empty((rounds, len(ids)), dtype=np.int64)
    ctx = ctx.astype(np.float64).copy()
    for r in range(rounds):
        out[r] = s.sample(s.index_of(ids), first + r, 1, k, ctx[None, :])[0]
        ctx = ctx + 1 + out[r]
    return out, ctx


def test_buffered_context_draws_equal_round_by_round_across_refills_and_context_jumps():
    """Rounds taken from the solved buffer (bucket by bucket, across bucket edges and buffer ends)
    equal drawing each round directly; a sequence whose context is not the one the buffer
    predicted (a plain decode step in between) or whose k changed is solved again."""
    from rlsim.speculation import draws as D

    model = ConstantAcceptance(rate=0.8, concentration=5.0, context_decay=ContextDecay(reference_tokens=0, half_life_tokens=300))
    ids = np.arange(6) + 40
    s = _sampler(ids, model, k=4)
    draws = AcceptanceDraws(s)
    first, ctx = np.zeros(6, dtype=np.int64), np.arange(6) * 97.0 + 50
    chunks, expect = [], []
    for step in range(3 * D.CONTEXT_ROUNDS // 20):
        k = 4 if step < 12 else 3
        got = draws.accepted(ids, first, 20, k, ctx)
        want, ctx_after = _round_by_round(s, ids, first, ctx, 20, k)
        chunks.append(got)
        expect.append(want)
        first, ctx = first + 20, ctx_after + (step % 5 == 0)  # every fifth step a plain decode token too
    np.testing.assert_array_equal(np.concatenate(chunks), np.concatenate(expect))


@pytest.mark.parametrize("model", [
    ConstantAcceptance(rate=0.75, concentration=6.0, context_decay=ContextDecay(reference_tokens=0, half_life_tokens=400)),
    RegimeAcceptance(easy_fraction=0.4, easy_rate=0.9, hard_rate=0.3, block_tokens=48,
                     context_decay=ContextDecay(reference_tokens=0, half_life_tokens=900)),
])
def test_context_ring_serves_staggered_sequences_and_asks_of_every_length(model):
    """Sequences at different rounds, asked for 1 to MAX_CONTEXT_ROUNDS + 40 rounds at a time
    (refills topped up for the whole call, long asks solved directly, sequences left out of calls
    and given plain tokens: held rounds realigned), get what drawing each round directly gives."""
    from rlsim.speculation import draws as D

    ids = np.arange(9) + 1000
    s = _sampler(ids, model, k=3)
    draws = AcceptanceDraws(s)
    rng = np.random.default_rng(5)
    first, ctx = rng.integers(0, 50, ids.size), rng.integers(100, 3000, ids.size).astype(np.float64)
    asks = [1, 7, D.CONTEXT_ROUNDS - 3, 1, D.CONTEXT_ROUNDS + 5, 30, D.MAX_CONTEXT_ROUNDS, 2,
            D.MAX_CONTEXT_ROUNDS + 40, 60, 1, 90, 45]
    for step, rounds in enumerate(asks):
        pick = np.sort(rng.choice(ids.size, size=6, replace=False))
        got = draws.accepted(ids[pick], first[pick], rounds, 3, ctx[pick])
        want, ctx_after = _round_by_round(s, ids[pick], first[pick], ctx[pick], rounds, 3)
        np.testing.assert_array_equal(got, want)
        used = rng.integers(1, rounds + 1)  # the engine applies a jump's first rounds only
        first[pick] += used
        ctx[pick] = ctx[pick] + used + want[:used].sum(axis=0) + (step % 4 == 3)


def test_bucket_passes_equal_the_fixed_point_solution():
    from rlsim.speculation import draws as D

    model = ConstantAcceptance(rate=0.9, concentration=3.0, context_decay=ContextDecay(reference_tokens=500, half_life_tokens=250))
    ids = np.arange(40)
    s = _sampler(ids, model, k=4)
    draws = AcceptanceDraws(s)
    rng = np.random.default_rng(2)
    idx, first = np.arange(40), rng.integers(0, 10**5, 40)
    ctx = rng.integers(0, 4000, 40).astype(np.float64)
    for rounds in (1, 37, 200):
        want = draws._with_context(idx, first, rounds, 4, ctx)
        np.testing.assert_array_equal(D._by_bucket(s, idx, first, rounds, 4, ctx), want.T)
