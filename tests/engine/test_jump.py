"""The fast path's planner: where a plain decode jump must end (rlsim.engine.jump)."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.engine.jump import plain_decode_iterations
from rlsim.engine.kv import KvCache


def _brute_force(cached, remaining, kv, slots) -> int:
    """Largest i <= min(remaining) whose KV slots (cached + i tokens each) fit in the free blocks."""
    i = 0
    while i < int(remaining.min()) and int(kv.growth_blocks(slots, cached + i + 1).sum()) <= kv.free:
        i += 1
    return i


@pytest.mark.parametrize("seed", range(30))
def test_the_first_kv_shortage_is_found_exactly(seed):
    """Closed form (every sequence's next block within one block's tokens: rounds of needs) and
    the binary search (some sequence holds look-ahead blocks) both equal a brute-force walk."""
    rng = np.random.default_rng(seed)
    n, bs = int(rng.integers(1, 40)), 16
    kv = KvCache(int(rng.integers(0, 400)) + 10_000, bs, np.arange(n), np.zeros(n, dtype=np.int64), n, False)
    cached = rng.integers(1, 3000, n)
    kv.own[:] = -(-cached // bs) + (rng.integers(0, 3, n) if seed % 2 else 0)  # odd seeds: look-ahead blocks
    kv.free = int(rng.integers(0, 300))
    remaining = rng.integers(1, 900, n)
    slots = np.arange(n)
    assert plain_decode_iterations(cached, remaining, kv, slots) == _brute_force(cached, remaining, kv, slots)
