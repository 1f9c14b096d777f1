"""The busiest expert-parallel rank: closed form against a Monte Carlo of the router."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.cost.routing import expected_max_normal, rank_experts_touched, slowest_rank_rows


def _monte_carlo(tokens: int, experts: int, topk: int, ranks: int, trials: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    per_rank = experts // ranks
    max_rows, touched = [], []
    for _ in range(trials):
        picks = np.argsort(rng.random((tokens, experts)), axis=1)[:, :topk]  # k distinct experts per token
        counts = np.bincount(picks.ravel() // per_rank, minlength=ranks)
        busiest = int(np.argmax(counts))
        max_rows.append(counts.max())
        local = picks.ravel()[picks.ravel() // per_rank == busiest]
        touched.append(len(np.unique(local)))
    return float(np.mean(max_rows)), float(np.mean(touched))


def test_expected_max_of_normals():
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(2) == pytest.approx(1 / np.sqrt(np.pi), rel=1e-6)
    assert expected_max_normal(8) == pytest.approx(1.42360, rel=1e-4)


@pytest.mark.parametrize("tokens", [4, 16, 64, 512])
@pytest.mark.parametrize("experts,topk,ranks", [(256, 8, 16), (128, 4, 4), (384, 8, 8)])
def test_busiest_rank_matches_a_monte_carlo_of_the_router(tokens, experts, topk, ranks):
    mc_rows, mc_touched = _monte_carlo(tokens, experts, topk, ranks)
    rows = float(slowest_rank_rows(tokens, experts, topk, ranks))
    assert rows == pytest.approx(mc_rows, rel=0.08), (rows, mc_rows)
    assert float(rank_experts_touched(rows, experts, ranks)) == pytest.approx(mc_touched, rel=0.08)
    assert rows > tokens * topk / ranks  # the busiest rank carries more than the mean


def test_one_rank_takes_every_row():
    assert float(slowest_rank_rows(10, 64, 4, 1)) == 40.0
