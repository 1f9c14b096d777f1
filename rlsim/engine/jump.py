"""Pure helpers of the engine's fast path: how far a decode-only batch can run unchanged.

Given the running sequences' cached tokens ``c``, tokens still to emit ``rem``, private KV
blocks ``own`` (and their groups' shared blocks), the free block count and the tokens each
sequence advances per iteration (``adv``, rows = iterations; 1 without speculation, 1 + accepted
drafts with it), find the number of iterations ``m`` until the first event:

* a completion (some sequence's emitted tokens reach its response length) -- that iteration is
  included;
* a KV shortage (the blocks needed for the next iteration's ``q`` = 1 + k slots exceed the free
  pool) -- that iteration is excluded: the slow path runs it and preempts.
"""

from __future__ import annotations

import numpy as np

from rlsim.engine.kv import blocks_for

__all__ = ["decode_jump"]


def decode_jump(c: np.ndarray, rem: np.ndarray, own: np.ndarray, shared: np.ndarray, free: int,
                block_size: int, adv: np.ndarray, q: int) -> tuple[int, np.ndarray]:
    """Iterations (rows of ``adv``) that can run before the next event (may be 0), and the
    tokens each sequence advanced before each row."""
    cum = np.cumsum(adv, axis=0)
    prev = cum - adv
    done_rows = np.flatnonzero((cum >= rem).any(axis=1))
    m = int(done_rows[0]) + 1 if len(done_rows) else adv.shape[0]
    need = np.maximum(0, blocks_for(c + prev[:m] + q, block_size) - shared)
    extra = np.maximum(need - own, 0).sum(axis=1)
    short = np.flatnonzero(extra > free)
    if len(short):
        m = min(m, int(short[0]))
    return m, prev
