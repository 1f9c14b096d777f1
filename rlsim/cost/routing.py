"""How routed tokens spread over expert-parallel ranks: the slowest rank sets the MoE layer's time.

``T`` tokens each pick ``k`` distinct experts of ``E`` (a router without load balancing
pressure; ``skew`` shrinks the experts effectively chosen from, as
:func:`rlsim.hardware.ops.expected_experts_touched` does); ``R`` ranks own ``E / R`` experts each.
A token sends ``h`` of its ``k`` rows to a given rank, ``h ~ Hypergeometric(E, E / R, k)``, so a
rank's load ``L = sum over tokens`` has mean ``T k / R`` and variance ``T k (1/R)(1 - 1/R)(E - k)/(E - 1)``.
The loads of the ``R`` ranks add up to ``T k``; as a normal vector with that constraint,
``max_r L_r = mu + sigma sqrt(R / (R - 1)) (max of R iid N(0, 1) - their mean)``, so

    E[max_r L_r] ~= mu + sigma sqrt(R / (R - 1)) e_R,   e_R = E[max of R iid N(0, 1)],

capped at what a rank can receive (``T min(k, E / R)`` rows).  The experts the busiest rank
touches follow from its load: ``(E / R)(1 - (1 - R / E)^L)`` (its rows spread over its own
experts).  A Monte Carlo of the router checks both (tests/cost/test_routing.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["expected_max_normal", "slowest_rank_rows", "rank_experts_touched"]


@functools.lru_cache(maxsize=256)
def expected_max_normal(r: int) -> float:
    """E[max of ``r`` iid standard normals] (0 for r = 1)."""
    if r <= 1:
        return 0.0
    from scipy import integrate, stats  # lazy: scipy.stats costs ~1 s to import

    f = lambda x: x * r * stats.norm.pdf(x) * stats.norm.cdf(x) ** (r - 1)  # noqa: E731
    return float(integrate.quad(f, -12.0, 12.0, limit=200)[0])


def slowest_rank_rows(tokens, num_experts: int, topk: int, ranks: int, skew: float = 0.0):
    """Expected routed rows on the busiest of ``ranks`` expert-parallel ranks (vectorised in
    ``tokens``); ``ranks = 1``: all ``tokens x topk`` rows."""
    t = np.asarray(tokens, dtype=np.float64)
    if ranks <= 1:
        return t * topk
    e = max(float(topk), num_experts * (1.0 - skew))
    local = e / ranks
    mean = t * topk / ranks
    var = t * topk * (1.0 / ranks) * (1.0 - 1.0 / ranks) * (e - topk) / max(e - 1.0, 1.0)
    spread = np.sqrt(np.maximum(var, 0.0)) * math.sqrt(ranks / (ranks - 1.0)) * expected_max_normal(ranks)
    return np.minimum(mean + spread, t * min(float(topk), local))


def rank_experts_touched(rows, num_experts: int, ranks: int, skew: float = 0.0):
    """Distinct local experts a rank touches when it receives ``rows`` routed rows."""
    e = num_experts * (1.0 - skew) if skew else float(num_experts)
    local = max(e / ranks, 1.0)
    r = np.asarray(rows, dtype=np.float64)
    return np.where(r > 0, local * -np.expm1(r * np.log1p(-1.0 / local)) if local > 1 else np.minimum(r, 1.0), 0.0)
