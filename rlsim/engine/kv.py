"""Paged KV-cache accounting for one engine (vLLM's block manager, counted, not stored).

The one owner of KV state: every allocation, growth, prefix-cache hit and free goes through
:class:`KvCache`; the engine and the scheduler only ask it questions and request changes.

Blocks hold ``block_size`` tokens.  With prefix caching, the requests of one prefix group
share the full blocks of their common prefix -- the samples of one GRPO group their prompt's
``floor((P - 1) / block_size)`` blocks (the block holding the last prompt token is always
private, so every sample computes at least one prompt token, as vLLM does), the requests of a
serving benchmark their common ``--random-prefix-len`` tokens.  Shared blocks are allocated when the first sample of a group becomes resident and freed
when the last resident sample leaves (finishes or is preempted); freed blocks are assumed
evicted (no later cache hit), the conservative choice under KV pressure.

A request's *private* blocks for ``t`` cached tokens are ``max(0, ceil(t / block_size) -
shared)`` (:func:`private_blocks`: the one rule, used by the scalar and the vectorised paths).
"""

from __future__ import annotations

import numpy as np

__all__ = ["KvCache", "shared_prompt_blocks", "blocks_for", "private_blocks"]


def shared_prompt_blocks(prompt_len: np.ndarray, block_size: int, prefix_caching: bool,
                         prefix_len: np.ndarray | None = None) -> np.ndarray:
    """Blocks of each prompt that a group's requests can share: the whole blocks of their common
    prefix (default: the whole prompt), never the block holding the last prompt token."""
    if not prefix_caching:
        return np.zeros_like(prompt_len)
    if prefix_len is None:
        return (prompt_len - 1) // block_size
    return np.minimum(prefix_len, prompt_len - 1) // block_size


def blocks_for(tokens, block_size: int):
    """Blocks needed to hold ``tokens`` tokens (ceil division), vectorised."""
    return -(-np.asarray(tokens) // block_size)


def private_blocks(tokens, shared, block_size: int):
    """Private blocks holding ``tokens`` cached tokens beside ``shared`` prompt blocks (vectorised)."""
    return np.maximum(0, blocks_for(tokens, block_size) - shared)


class KvCache:
    """Free-block counter plus per-request private and per-group shared block counts.

    Arrays are indexed by the engine's request slots (``own``, ``shared``, ``group_of``) and by
    engine-local group (``group_ref``: resident samples, ``group_cached_tokens``: prompt tokens
    a resident sample has computed, i.e. what a sibling can hit).
    """

    def __init__(self, num_blocks: int, block_size: int, group_of: np.ndarray, shared_blocks: np.ndarray, num_groups: int):
        self.num_blocks = int(num_blocks)
        self.block_size = int(block_size)
        self.free = int(num_blocks)
        self.group_of = group_of
        self.shared = shared_blocks  # per sequence: shared blocks of its group
        self.own = np.zeros(len(group_of), dtype=np.int64)
        self.group_ref = np.zeros(num_groups, dtype=np.int64)
        self.group_cached_tokens = np.zeros(num_groups, dtype=np.int64)

    def extend(self, group_of: np.ndarray, shared_blocks: np.ndarray, num_groups: int) -> None:
        """Track more sequences (their local group indices and shared prompt blocks)."""
        self.group_of = np.concatenate([self.group_of, group_of])
        self.shared = np.concatenate([self.shared, shared_blocks])
        self.own = np.concatenate([self.own, np.zeros(len(group_of), dtype=np.int64)])
        grow = num_groups - len(self.group_ref)
        if grow > 0:
            self.group_ref = np.concatenate([self.group_ref, np.zeros(grow, dtype=np.int64)])
            self.group_cached_tokens = np.concatenate([self.group_cached_tokens, np.zeros(grow, dtype=np.int64)])

    # ------------------------------------------------------------- queries
    def used(self) -> int:
        """Blocks in use."""
        return self.num_blocks - self.free

    def own_after(self, seq: int, computed_tokens: int) -> int:
        """Private blocks ``seq`` holds once ``computed_tokens`` tokens are in the cache."""
        return int(private_blocks(computed_tokens, self.shared[seq], self.block_size))

    def admission_blocks(self, seq: int, computed_after: int) -> int:
        """Blocks to allocate to make ``seq`` resident with ``computed_after`` tokens cached."""
        g = self.group_of[seq]
        shared = int(self.shared[seq]) if self.group_ref[g] == 0 else 0
        return shared + self.own_after(seq, computed_after)

    def prefix_hit_tokens(self, seq: int) -> int:
        """Prompt tokens ``seq`` finds cached by a resident sibling (whole shared blocks only)."""
        g = self.group_of[seq]
        if self.group_ref[g] == 0:
            return 0
        cap = int(self.shared[seq]) * self.block_size
        return min(cap, (int(self.group_cached_tokens[g]) // self.block_size) * self.block_size)

    def growth_blocks(self, seqs: np.ndarray, tokens) -> np.ndarray:
        """Blocks each resident ``seqs`` must add to hold ``tokens`` (broadcast: rows = iterations)."""
        return np.maximum(private_blocks(tokens, self.shared[seqs], self.block_size) - self.own[seqs], 0)

    def fitting_prefix(self, seqs: np.ndarray, tokens: np.ndarray) -> int:
        """How many leading ``seqs`` can grow to ``tokens`` together within the free blocks."""
        fits = np.cumsum(self.growth_blocks(seqs, tokens)) <= self.free
        return int(np.argmin(fits)) if not fits.all() else len(seqs)

    # ------------------------------------------------------------- updates
    def admit(self, seq: int, computed_after: int, prefix_len: int) -> None:
        """Make ``seq`` resident (allocating its group's shared blocks if needed)."""
        need = self.admission_blocks(seq, computed_after)
        assert need <= self.free, "admission without free blocks"
        self.free -= need
        g = self.group_of[seq]
        self.group_ref[g] += 1
        self.own[seq] = self.own_after(seq, computed_after)
        self._note_cached(seq, computed_after, prefix_len)

    def grow(self, seq: int, computed_after: int, prefix_len: int) -> None:
        """Extend a resident ``seq`` to ``computed_after`` cached tokens."""
        new_own = self.own_after(seq, computed_after)
        need = new_own - int(self.own[seq])
        assert need <= self.free, "growth without free blocks"
        self.free -= need
        self.own[seq] = new_own
        self._note_cached(seq, computed_after, prefix_len)

    def reserve(self, seqs: np.ndarray, tokens: np.ndarray) -> None:
        """Grow resident decoding ``seqs`` to hold ``tokens`` each (never shrinks; vectorised).

        Decoding requests are past their prompt, so the group's cached-prompt count is unchanged."""
        extra = self.growth_blocks(seqs, tokens)
        self.free -= int(extra.sum())
        self.own[seqs] += extra
        assert self.free >= 0, "reservation without free blocks"

    def release(self, seq: int) -> None:
        """Free ``seq``'s private blocks, and its group's shared blocks if it was the last one."""
        self.free += int(self.own[seq])
        self.own[seq] = 0
        g = self.group_of[seq]
        self.group_ref[g] -= 1
        if self.group_ref[g] == 0:
            self.free += int(self.shared[seq])
            self.group_cached_tokens[g] = 0
        assert self.group_ref[g] >= 0 and self.free <= self.num_blocks

    def _note_cached(self, seq: int, computed_after: int, prefix_len: int) -> None:
        g = self.group_of[seq]
        self.group_cached_tokens[g] = max(int(self.group_cached_tokens[g]), min(computed_after, prefix_len))
