"""The KV cache: freed blocks stay cached (LRU) until evicted, as in vLLM V1."""

from __future__ import annotations

import numpy as np

from rlsim.engine.kv import KvCache


def _kv(num_blocks=20, groups=(0, 0, 1), shared=(2, 2, 0), caching=True) -> KvCache:
    kv = KvCache(num_blocks, 16, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0, caching)
    kv.extend(np.array(groups), np.array(shared), max(groups) + 1)
    return kv


def test_group_prefix_survives_its_last_resident():
    kv = _kv()
    kv.admit(0, 40, 40)  # 2 shared + 1 own block
    assert kv.free == 17 and kv.prefix_hit_tokens(1) == 32
    kv.release(0)
    assert kv.free == 20 and kv.cached_blocks == 2
    assert kv.prefix_hit_tokens(1, 41) == 32  # the sibling still hits the freed prefix
    kv.admit(1, 40, 40)
    assert kv.free == 17 and kv.cached_blocks == 0


def test_preempted_request_hits_its_own_full_blocks():
    kv = _kv(groups=(0,), shared=(2,))
    kv.admit(0, 40, 40)
    kv.grow(0, 100, 40)  # 7 blocks: 2 shared + 5 own; 100 tokens = 6 full blocks
    kv.preempt(0, 100)
    assert kv.free == 20
    assert kv.prefix_hit_tokens(0, 101) == 96  # 2 shared + 4 full own blocks
    assert kv.prefix_hit_tokens(0, 96) == 80   # vLLM computes at least the last token


def test_allocation_takes_never_used_blocks_first_then_evicts_oldest():
    kv = _kv(num_blocks=10, groups=(0, 1, 2), shared=(2, 2, 0))
    kv.admit(0, 33, 33)   # 3 blocks
    kv.release(0)          # queue: dead(1), g0(2)
    kv.admit(2, 48, 48)    # 3 blocks from the 7 never used
    assert kv.prefix_hit_tokens(1) == 0 and kv.cached_blocks == 2
    kv.grow(2, 16 * 8, 48)  # 5 more: 4 never used, then the dead block
    assert kv.cached_blocks == 2 and kv.evicted_blocks == 0
    kv.grow(2, 16 * 9, 48)  # one more: the oldest hittable entry loses its tail block
    assert kv.cached_blocks == 1 and kv.evicted_blocks == 1
    assert kv.free == 1


def test_no_prefix_caching_keeps_nothing():
    kv = _kv(shared=(0, 0, 0), caching=False)
    kv.admit(0, 40, 40)
    kv.preempt(0, 40)
    assert kv.cached_blocks == 0 and kv.prefix_hit_tokens(0, 41) == 0 and kv.free == 20
