"""Acceptance models (vLLM metric conversions), heterogeneity, context decay, and the sampler."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from scipy import stats

from rlsim.speculation._hash import uniforms
from rlsim.speculation.acceptance import (
    AcceptanceModel,
    AcceptanceSampler,
    ConstantAcceptance,
    ContextDecay,
    EmpiricalAcceptance,
    PerPositionAcceptance,
    conditional_from_unconditional,
)

RATES = [0.78, 0.58, 0.43]  # Llama-3.1-8B EAGLE-3 shape (vLLM issue 20780, derived)
HIST = [22.0, 20.0, 15.0, 43.0]  # the same distribution of A as RATES, as a histogram


def _sampler(model: AcceptanceModel, n: int, k_max: int = 8, seed: int = 7, lengths=None) -> AcceptanceSampler:
    lengths = np.arange(1, n + 1) if lengths is None else lengths
    return AcceptanceSampler(model, k_max=k_max, seed=seed, seq_ids=np.arange(n) + 1000, response_len=lengths)


def _sample_many(model: AcceptanceModel, k: int, n_seq: int = 2000, rounds: int = 100) -> np.ndarray:
    s = _sampler(model, n_seq)
    return s.sample(np.arange(n_seq), np.zeros(n_seq, dtype=np.int64), rounds, k).ravel()


# ---------------------------------------------------------------- conversions


def test_per_position_to_conditional_and_al() -> None:
    m = PerPositionAcceptance(rates=RATES)
    np.testing.assert_allclose(m.conditional_rates(3), [0.78, 0.58 / 0.78, 0.43 / 0.58])
    np.testing.assert_allclose(m.per_position_rates(3), RATES)
    assert m.mean_acceptance_length(3) == pytest.approx(1 + sum(RATES))
    assert m.draft_acceptance_rate(3) == pytest.approx(sum(RATES) / 3)
    assert m.mean_acceptance_length(2) == pytest.approx(1 + 0.78 + 0.58)


def test_extrapolation_beyond_given_positions() -> None:
    m = PerPositionAcceptance(rates=[0.8, 0.4])
    np.testing.assert_allclose(m.conditional_rates(4), [0.8, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(m.per_position_rates(4), [0.8, 0.4, 0.2, 0.1])
    off = PerPositionAcceptance(rates=[0.8, 0.4], extrapolate=False)
    np.testing.assert_allclose(off.conditional_rates(4), [0.8, 0.5, 0.0, 0.0])
    assert off.mean_acceptance_length(4) == pytest.approx(2.2)


def test_zero_rates_give_zero_conditional_not_nan() -> None:
    np.testing.assert_array_equal(conditional_from_unconditional([0.5, 0.0, 0.0]), [0.5, 0.0, 0.0])
    m = PerPositionAcceptance(rates=[0.5, 0.0])
    np.testing.assert_array_equal(m.conditional_rates(4), [0.5, 0.0, 0.0, 0.0])


def test_empirical_histogram_round_trip() -> None:
    m = EmpiricalAcceptance(accepted_counts=HIST)
    np.testing.assert_allclose(m.per_position_rates(3), RATES)
    np.testing.assert_allclose(m.conditional_rates(5), PerPositionAcceptance(rates=RATES).conditional_rates(5))
    # sampled outcomes -> histogram -> rates equal the sampled fractions of rounds with A >= i
    a = _sample_many(PerPositionAcceptance(rates=RATES), k=3, n_seq=500, rounds=20)
    back = EmpiricalAcceptance(accepted_counts=np.bincount(a, minlength=4).tolist())
    np.testing.assert_allclose(back.per_position_rates(3), [(a >= i).mean() for i in (1, 2, 3)])


@pytest.mark.parametrize("a", [0.0, 0.3, 0.7, 0.95])
def test_constant_al_matches_leviathan(a: float) -> None:
    m = ConstantAcceptance(rate=a)
    assert m.mean_acceptance_length(3) == pytest.approx((1 - a**4) / (1 - a))
    assert ConstantAcceptance(rate=1.0).mean_acceptance_length(3) == 4.0


def test_discriminated_union_parses_kind() -> None:
    adapter = TypeAdapter(AcceptanceModel)
    m = adapter.validate_python({"kind": "per_position", "rates": RATES, "concentration": 20})
    assert isinstance(m, PerPositionAcceptance) and m.concentration == 20
    assert isinstance(adapter.validate_python({"kind": "empirical", "accepted_counts": HIST}), EmpiricalAcceptance)
    with pytest.raises(ValidationError):
        m.rates = [0.1]  # type: ignore[misc]  (frozen)


# ---------------------------------------------------------------- sampled statistics


@pytest.mark.parametrize(
    "model",
    [ConstantAcceptance(rate=0.7), PerPositionAcceptance(rates=RATES), EmpiricalAcceptance(accepted_counts=HIST)],
    ids=["constant", "per_position", "empirical"],
)
def test_sampled_statistics_match_model(model: AcceptanceModel) -> None:
    k = 3
    a = _sample_many(model, k)  # 200k rounds
    assert a.size >= 200_000 and a.min() >= 0 and a.max() <= k
    assert 1 + a.mean() == pytest.approx(model.mean_acceptance_length(k), rel=0.01)
    sampled = np.array([(a >= i).mean() for i in range(1, k + 1)])
    np.testing.assert_allclose(sampled, model.per_position_rates(k), atol=0.01)


# ---------------------------------------------------------------- determinism


def test_rounds_in_one_call_equal_rounds_in_many_calls() -> None:
    s = _sampler(PerPositionAcceptance(rates=RATES), 50)
    idx = np.arange(50)
    one = s.sample(idx, np.zeros(50, dtype=np.int64), 100, 3)
    ten = np.concatenate([s.sample(idx, np.full(50, 10 * c), 10, 3) for c in range(10)])
    np.testing.assert_array_equal(one, ten)
    staggered = s.sample(idx, idx, 5, 3)  # sequence b starts at round b
    np.testing.assert_array_equal(staggered, one[idx[None, :] + np.arange(5)[:, None], idx])


def test_batch_order_and_subset_do_not_change_outcomes() -> None:
    s = _sampler(ConstantAcceptance(rate=0.6, concentration=5.0), 40)
    full = s.sample(np.arange(40), np.zeros(40, dtype=np.int64), 20, 4)
    perm = np.random.default_rng(0).permutation(40)
    np.testing.assert_array_equal(s.sample(perm, np.zeros(40, dtype=np.int64), 20, 4), full[:, perm])
    subset = np.array([3, 17, 29])
    np.testing.assert_array_equal(s.sample(subset, np.zeros(3, dtype=np.int64), 20, 4), full[:, subset])
    # a fresh sampler with the same seed reproduces; a smaller k truncates the same draws
    again = _sampler(ConstantAcceptance(rate=0.6, concentration=5.0), 40)
    np.testing.assert_array_equal(again.sample(np.arange(40), np.zeros(40, dtype=np.int64), 20, 4), full)
    np.testing.assert_array_equal(s.sample(np.arange(40), np.zeros(40, dtype=np.int64), 20, 2), np.minimum(full, 2))


def test_different_seed_gives_different_outcomes() -> None:
    m = ConstantAcceptance(rate=0.6)
    a = _sampler(m, 100, seed=1).sample(np.arange(100), np.zeros(100, dtype=np.int64), 10, 3)
    b = _sampler(m, 100, seed=2).sample(np.arange(100), np.zeros(100, dtype=np.int64), 10, 3)
    assert not np.array_equal(a, b)


def test_uniforms_are_keyed_by_coordinates() -> None:
    seq, rnd, pos = np.arange(30)[:, None, None], np.arange(20)[None, :, None], np.arange(1, 5)
    u = uniforms(3, seq, rnd, pos)
    assert u.shape == (30, 20, 4) and u.dtype == np.float64 and 0.0 <= u.min() and u.max() < 1.0
    assert uniforms(3, 7, 11, 2) == u[7, 11, 1]
    assert uniforms(4, 7, 11, 2) != u[7, 11, 1]
    big = uniforms(0, np.arange(100_000), 0, 1)
    assert stats.kstest(big, "uniform").pvalue > 1e-4



def test_round_uniforms_equal_uniforms_at_position_zero_in_either_layout() -> None:
    s = AcceptanceSampler(ConstantAcceptance(rate=0.5), 2, 9, np.arange(40) + 500, np.full(40, 100))
    idx, first = np.array([0, 7, 39]), np.array([0, 3, 10**6])
    by_round = s.round_uniforms(idx, first, 5)
    want = uniforms(9, s.seq_ids[idx][None, :], first[None, :] + np.arange(5)[:, None], 0)
    np.testing.assert_array_equal(by_round, want)
    np.testing.assert_array_equal(s.seq_round_uniforms(idx, first, 5), want.T)


# ---------------------------------------------------------------- heterogeneity


def test_heterogeneity_preserves_mean_conditional_rate() -> None:
    s = _sampler(ConstantAcceptance(rate=0.7, concentration=10.0), 20_000)
    assert s.conditional[:, 0].std() > 0.05
    assert s.conditional[:, 0].mean() == pytest.approx(0.7, rel=0.01)
    assert np.all((s.conditional >= 0) & (s.conditional <= 1))


def test_variance_falls_as_concentration_grows() -> None:
    var = [_sampler(ConstantAcceptance(rate=0.7, concentration=c), 20_000).conditional[:, 0].var() for c in (2, 10, 50)]
    assert var[0] > var[1] > var[2]
    assert var[1] == pytest.approx(0.7 * 0.3 / 11, rel=0.1)  # Beta variance m (1 - m) / (kappa + 1)


def test_no_heterogeneity_when_mean_is_zero_or_one() -> None:
    for rate in (0.0, 1.0):
        s = _sampler(ConstantAcceptance(rate=rate, concentration=3.0), 100)
        np.testing.assert_array_equal(s.scales, 1.0)


@pytest.mark.parametrize("rho, sign", [(0.8, 1), (-0.8, -1)])
def test_length_correlation_sign(rho: float, sign: int) -> None:
    lengths = np.random.default_rng(1).lognormal(7.0, 1.0, 20_000).astype(np.int64) + 1
    m = ConstantAcceptance(rate=0.7, concentration=10.0, length_correlation=rho)
    corr = stats.spearmanr(_sampler(m, 20_000, lengths=lengths).scales, lengths).statistic
    assert sign * corr > 0.5


# ---------------------------------------------------------------- context decay


def test_context_decay_halves_rate_at_one_half_life() -> None:
    decay = ContextDecay(reference_tokens=1024, half_life_tokens=512)
    np.testing.assert_allclose(decay.factor([0, 1024, 1536, 2048]), [1.0, 1.0, 0.5, 0.25])
    s = _sampler(ConstantAcceptance(rate=0.8, context_decay=decay), 2000)
    idx, first = np.arange(2000), np.zeros(2000, dtype=np.int64)
    near = s.sample(idx, first, 50, 1, ctx=np.full((50, 2000), 1024))
    far = s.sample(idx, first, 50, 1, ctx=np.full(2000, 1536))  # broadcast over rounds
    later = s.sample(idx, first, 50, 1, ctx=np.full(2000, 1536 + 127))  # same 128-token bucket
    assert near.mean() == pytest.approx(0.8, abs=0.01)
    assert far.mean() == pytest.approx(0.4, abs=0.01)
    assert np.array_equal(later, far)


# ---------------------------------------------------------------- validation messages


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"kind": "per_position", "rates": [0.8, 0.5, 0.9]},
            "rates[2] = 0.9 must be <= rates[1] = 0.5 "
            "(vLLM's per-position rates are unconditional, so non-increasing)",
        ),
        (
            {"kind": "per_position", "rates": [1.2, 0.5]},
            "rates[0] = 1.2 must be in [0, 1] (a fraction: divide percentages by 100)",
        ),
        ({"kind": "per_position", "rates": []}, "rates must not be empty"),
        (
            {"kind": "empirical", "accepted_counts": [5, -3, 2]},
            "accepted_counts[1] = -3.0 must be >= 0 (a number of draft rounds)",
        ),
        ({"kind": "empirical", "accepted_counts": [0, 0]}, "accepted_counts sum to 0, need at least one draft round"),
        (
            {"kind": "constant", "rate": 0.7, "length_correlation": 0.5},
            "length_correlation = 0.5 needs concentration (per-sequence heterogeneity) to be set",
        ),
    ],
)
def test_validation_messages(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        TypeAdapter(AcceptanceModel).validate_python(data)


# ---------------------------------------------------------------- regime (bursty) acceptance

def _regime(**kw):
    from rlsim.speculation.acceptance import RegimeAcceptance

    args = {"easy_fraction": 0.3, "easy_rate": 0.9, "hard_rate": 0.0, "block_tokens": 32}
    args.update(kw)
    return RegimeAcceptance(**args)


def test_regime_rates_fall_with_k_as_easy_rounds_move_further():
    m = _regime()
    assert m.easy_round_fraction(1) > m.easy_round_fraction(8)
    assert m.per_position_rates(1)[0] > m.per_position_rates(8)[0]
    f = m.easy_round_fraction(3)
    assert m.per_position_rates(3) == pytest.approx(f * 0.9 ** np.arange(1, 4))
    assert m.mean_acceptance_length(3) == pytest.approx(1 + m.per_position_rates(3).sum())


def test_regime_sampler_accepts_nothing_in_hard_blocks_and_is_bursty():
    from rlsim.speculation.acceptance import AcceptanceSampler

    m = _regime()
    s = AcceptanceSampler(m, 4, 7, np.arange(50), np.full(50, 500))
    pos = np.repeat(np.arange(0, 320, dtype=np.float64)[:, None], 50, axis=1)
    a = s.sample(np.arange(50), np.zeros(50, dtype=np.int64), 320, 4, pos)
    easy_block = (a.reshape(10, 32, 50) > 0).any(axis=1)  # a block with any acceptance is easy...
    hard_rounds = np.repeat(~easy_block, 32, axis=0)
    assert (a[hard_rounds] == 0).all()                     # ...and hard blocks never accept
    assert 0.15 < easy_block.mean() < 0.45
    again = s.sample(np.arange(50)[::-1], np.zeros(50, dtype=np.int64), 320, 4, pos[:, ::-1])
    assert np.array_equal(again[:, ::-1], a)  # keyed by (seed, sequence, block), not batch order


def test_regime_replay_reproduces_its_mean_acceptance_length():
    from rlsim.calibration.acceptance import simulate_request_al

    m = _regime(block_tokens=8)
    al = simulate_request_al(m, 3, requests=400, tokens=2000)
    assert al.mean() == pytest.approx(m.mean_acceptance_length(3), rel=0.03)


def test_temperature_scale_from_the_greedy_vs_sampled_pair():
    from rlsim.speculation.acceptance import temperature_scale

    t = temperature_scale()
    a1 = t * 0.70
    assert 0.95 < t < 1.0 and a1 < 0.70


def test_rescale_changes_only_the_given_sequences_and_clips_to_one():
    s = _sampler(PerPositionAcceptance(rates=RATES), 4, k_max=3)
    before = s.conditional.copy()
    s.rescale(np.array([1, 3]), 1.5)
    assert np.array_equal(s.conditional[[0, 2]], before[[0, 2]])
    assert s.conditional[[1, 3]] == pytest.approx(np.minimum(1.0, before[[1, 3]] * 1.5))
    assert s.conditional[1, 0] == 1.0  # 0.78 x 1.5 clipped
    assert s.sample(np.array([1]), np.zeros(1, dtype=np.int64), 50, 1).min() == 1  # position 1 always accepted now
    with pytest.raises(ValueError):
        s.conditional[0, 0] = 0.5  # still read-only
