"""Paged KV-cache accounting for one engine (vLLM's block manager, counted, not stored).

Blocks hold ``block_size`` tokens.  With prefix caching, the samples of one GRPO group share
their prompt's full blocks: ``floor((P - 1) / block_size)`` blocks (the block holding the last
prompt token is always private, so every sample computes at least one prompt token, as vLLM
does).  Shared blocks are allocated when the first sample of a group becomes resident and freed
when the last resident sample leaves (finishes or is preempted); freed blocks are assumed
evicted (no later cache hit), the conservative choice under KV pressure.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KvCache", "shared_prompt_blocks"]


def shared_prompt_blocks(prompt_len: np.ndarray, block_size: int, prefix_caching: bool) -> np.ndarray:
    """Blocks of each prompt that a group's samples can share."""
    if not prefix_caching:
        return np.zeros_like(prompt_len)
    return (prompt_len - 1) // block_size


def blocks_for(tokens, block_size: int):
    """Blocks needed to hold ``tokens`` tokens (ceil division), vectorised."""
    return -(-np.asarray(tokens) // block_size)


class KvCache:
    """Free-block counter plus per-sequence private and per-group shared block counts."""

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
        return max(0, int(blocks_for(computed_tokens, self.block_size)) - int(self.shared[seq]))

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

    # ------------------------------------------------------------- updates
    def admit(self, seq: int, computed_after: int, prompt_len: int) -> None:
        """Make ``seq`` resident (allocating its group's shared blocks if needed)."""
        need = self.admission_blocks(seq, computed_after)
        assert need <= self.free, "admission without free blocks"
        self.free -= need
        g = self.group_of[seq]
        self.group_ref[g] += 1
        self.own[seq] = self.own_after(seq, computed_after)
        self.note_cached(seq, computed_after, prompt_len)

    def grow(self, seq: int, computed_after: int, prompt_len: int) -> None:
        """Extend a resident ``seq`` to ``computed_after`` cached tokens."""
        new_own = self.own_after(seq, computed_after)
        need = new_own - int(self.own[seq])
        assert need <= self.free, "growth without free blocks"
        self.free -= need
        self.own[seq] = new_own
        self.note_cached(seq, computed_after, prompt_len)

    def note_cached(self, seq: int, computed_after: int, prompt_len: int) -> None:
        g = self.group_of[seq]
        self.group_cached_tokens[g] = max(int(self.group_cached_tokens[g]), min(computed_after, prompt_len))

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
