"""Paged KV-cache accounting for one engine (vLLM's block manager, counted, not stored).

The one owner of KV state: every allocation, growth, prefix-cache hit, free and eviction goes
through :class:`KvCache`; the engine and the scheduler only ask it questions and request changes.

Blocks hold ``block_size`` tokens.  With prefix caching, the requests of one prefix group
share the full blocks of their common prefix -- the samples of one GRPO group their prompt's
``floor((P - 1) / block_size)`` blocks (the block holding the last prompt token is always
private, so every sample computes at least one prompt token, as vLLM does), the requests of a
serving benchmark their common ``--random-prefix-len`` tokens.

**Freed blocks stay cached until evicted** (vLLM V1's ``KVCacheManager``: a freed block keeps
its hash and joins the tail of the free queue; allocation takes blocks from the head, evicting
the least recently freed first).  Here the cache is kept per entry, oldest first:

* a group's shared prefix, when its last resident request leaves -- a later request of the group
  hits it (e.g. a GRPO sample preempted after its siblings finished);
* a preempted request's own full blocks (prompt tail + generated tokens): when it is re-admitted
  and its chain is still cached (the group prefix, then its own blocks), it skips recomputing
  them -- vLLM's recompute preemption rarely recomputes everything;
* a finished request's blocks, which nobody can hit but which take their place in the queue.

Blocks never allocated are taken first; then entries are evicted from the oldest, a partly
evicted entry losing its tail blocks (vLLM frees a request's blocks tail first).  Cached blocks
count as free: ``free`` is what an allocation may use.  Without prefix caching nothing is kept.

A request's *private* blocks for ``t`` cached tokens are ``max(0, ceil(t / block_size) -
shared)`` (:func:`private_blocks`: the one rule, used by the scalar and the vectorised paths).
"""

from __future__ import annotations

from collections import OrderedDict

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
    """Private blocks holding ``tokens`` cached tokens beside ``shared`` prompt blocks (vectorised;
    two Python ints give a Python int, without numpy's per-call cost)."""
    if type(tokens) is int and type(shared) is int:
        return max(0, -(-tokens // block_size) - shared)
    return np.maximum(0, blocks_for(tokens, block_size) - shared)


def _append(store: dict[str, np.ndarray], name: str, view: np.ndarray, n0: int, new: np.ndarray) -> np.ndarray:
    """``view`` (the first ``n0`` entries of ``store[name]``) extended by ``new``, as a view of a
    buffer whose capacity doubles when full."""
    buf = store.get(name)
    need = n0 + len(new)
    if buf is None or len(buf) < need:
        grown = np.zeros(max(need, 2 * (0 if buf is None else len(buf)), 16), dtype=np.int64)
        grown[:n0] = view[:n0]
        store[name] = buf = grown
    buf[n0:need] = new
    return buf[:need]


class KvCache:
    """Free-block counter, per-request private and per-group shared block counts, and the
    cache of freed blocks (see the module docstring).

    Arrays are indexed by the engine's request slots (``own``, ``shared``, ``group_of``) and by
    engine-local group (``group_ref``: resident samples, ``group_cached_tokens``: prompt tokens
    a resident sample has computed, i.e. what a sibling can hit).
    """

    def __init__(self, num_blocks: int, block_size: int, group_of: np.ndarray, shared_blocks: np.ndarray,
                 num_groups: int, prefix_caching: bool = True):
        self.num_blocks = int(num_blocks)
        self.block_size = int(block_size)
        self.free = int(num_blocks)
        self.prefix_caching = prefix_caching
        self.group_of = group_of
        self.shared = shared_blocks  # per sequence: shared blocks of its group
        self.own = np.zeros(len(group_of), dtype=np.int64)
        self.group_ref = np.zeros(num_groups, dtype=np.int64)
        self.group_cached_tokens = np.zeros(num_groups, dtype=np.int64)
        self._store: dict[str, np.ndarray] = {}  # capacity buffers behind the per-slot / per-group arrays
        self._lru: OrderedDict[tuple, list[int]] = OrderedDict()  # key -> [blocks, tokens], oldest first
        self._queued = 0  # free blocks in _lru entries (freed since allocated; the rest never were)
        self._dead = 0    # counter for keys of finished requests' blocks
        self.evicted_blocks = 0  # blocks of hittable entries evicted
        self._alias: dict[int, tuple] = {}  # slot -> key of kept blocks it adopts (:meth:`keep`, :meth:`adopt`)

    def extend(self, group_of: np.ndarray, shared_blocks: np.ndarray, num_groups: int) -> None:
        """Track more sequences (their local group indices and shared prompt blocks); arrays grow
        by doubling, so adding requests one at a time stays linear."""
        n0, n = len(self.own), len(group_of)
        for name, new in (("group_of", group_of), ("shared", shared_blocks), ("own", np.zeros(n, dtype=np.int64))):
            setattr(self, name, _append(self._store, name, getattr(self, name), n0, new))
        g0 = len(self.group_ref)
        if num_groups > g0:
            zeros = np.zeros(num_groups - g0, dtype=np.int64)
            self.group_ref = _append(self._store, "group_ref", self.group_ref, g0, zeros)
            self.group_cached_tokens = _append(self._store, "group_cached_tokens", self.group_cached_tokens, g0, zeros)

    # ------------------------------------------------------------- queries
    def used(self) -> int:
        """Blocks held by resident requests."""
        return self.num_blocks - self.free

    @property
    def cached_blocks(self) -> int:
        """Free blocks that still hold KV someone can hit (evictable)."""
        return sum(b for b, t in self._lru.values() if t)

    def own_after(self, seq: int, computed_tokens: int) -> int:
        """Private blocks ``seq`` holds once ``computed_tokens`` tokens are in the cache."""
        return private_blocks(int(computed_tokens), int(self.shared[seq]), self.block_size)

    def admission_blocks(self, seq: int, computed_after: int) -> int:
        """Free blocks that making ``seq`` resident with ``computed_after`` tokens takes."""
        g = self.group_of[seq]
        shared = int(self.shared[seq]) if self.group_ref[g] == 0 else 0
        return shared + self.own_after(seq, computed_after)

    def prefix_hit_tokens(self, seq: int, num_tokens: int | None = None) -> int:
        """Tokens ``seq`` finds cached: its group's prefix (held by a resident sibling, or kept
        after the last one left) and, if the whole prefix hits, its own blocks kept from a
        preemption; at most ``num_tokens - 1`` (vLLM computes the last token)."""
        g, bs = self.group_of[seq], self.block_size
        cap = int(self.shared[seq]) * bs
        if self.group_ref[g] > 0:
            shared_tokens = int(self.group_cached_tokens[g])
        else:
            entry = self._lru.get(("g", int(g)))
            shared_tokens = entry[1] if entry else 0
        hit = min(cap, (shared_tokens // bs) * bs)
        own = self._lru.get(self._own_key(seq))
        if own is not None and hit == cap:
            hit += own[1]
        if num_tokens is not None:
            hit = min(hit, ((num_tokens - 1) // bs) * bs)
        return hit

    def growth_blocks(self, seqs: np.ndarray, tokens) -> np.ndarray:
        """Blocks each resident ``seqs`` must add to hold ``tokens`` (broadcast: rows = iterations):
        ``max(private_blocks(tokens) - own, 0)``, which is ``max(ceil(tokens / bs) - shared - own,
        0)`` since ``own >= 0``."""
        held = self.shared[seqs] + self.own[seqs]
        return np.maximum(-(-np.asarray(tokens) // self.block_size) - held, 0)

    def reserve_fitting_prefix(self, seqs: np.ndarray, tokens: np.ndarray) -> int:
        """Grow the longest run of leading ``seqs`` that fit in the free blocks together to
        ``tokens`` each (as :meth:`reserve`); returns how many."""
        extra = self.growth_blocks(seqs, tokens)
        cum = np.cumsum(extra)
        fits = cum <= self.free
        n = int(np.argmin(fits)) if not fits.all() else len(seqs)
        if n:
            self._take(int(cum[n - 1]))
            self.own[seqs[:n]] += extra[:n]
        return n

    def grow_by(self, seqs: np.ndarray, extra: np.ndarray) -> None:
        """Give resident ``seqs`` ``extra`` more blocks each (their :meth:`growth_blocks`)."""
        self._take(int(extra.sum()))
        self.own[seqs] += extra

    def settle(self, seqs, own_blocks, free: int | None = None) -> None:
        """Set the private blocks of resident ``seqs`` (and the free count) to what a counted
        stretch reached (rlsim.engine.stretch; without prefix caching blocks are only counted)."""
        assert not self.prefix_caching
        self.own[seqs] = own_blocks
        if free is not None:
            assert 0 <= free <= self.num_blocks
            self.free = free

    # ------------------------------------------------------------- updates
    def admit(self, seq: int, computed_after: int, prefix_len: int) -> None:
        """Make ``seq`` resident (its group's shared blocks from the cache or newly allocated)."""
        need = self.admission_blocks(seq, computed_after)
        assert need <= self.free, "admission without free blocks"
        g = int(self.group_of[seq])
        if self.group_ref[g] == 0:
            entry = self._reclaim(("g", g))
            self.group_cached_tokens[g] = entry[1] if entry else 0
            self._take(int(self.shared[seq]) - (entry[0] if entry else 0))
        self.group_ref[g] += 1
        own = self._reclaim(self._own_key(seq, adopted=True))
        new_own = self.own_after(seq, computed_after)
        self._take(new_own - (own[0] if own else 0))
        self.own[seq] = new_own
        self._note_cached(seq, computed_after, prefix_len)

    def grow(self, seq: int, computed_after: int, prefix_len: int) -> None:
        """Extend a resident ``seq`` to ``computed_after`` cached tokens."""
        new_own = self.own_after(seq, computed_after)
        need = new_own - int(self.own[seq])
        assert need <= self.free, "growth without free blocks"
        self._take(need)
        self.own[seq] = new_own
        self._note_cached(seq, computed_after, prefix_len)

    def reserve(self, seqs: np.ndarray, tokens: np.ndarray) -> None:
        """Grow resident decoding ``seqs`` to hold ``tokens`` each (never shrinks; vectorised).

        Decoding requests are past their prompt, so the group's cached-prompt count is unchanged."""
        extra = self.growth_blocks(seqs, tokens)
        total = int(extra.sum())
        assert total <= self.free, "reservation without free blocks"
        self._take(total)
        self.own[seqs] += extra

    def release(self, seq: int) -> None:
        """``seq`` finished: its blocks are freed (queued, but nobody can hit them)."""
        self._put(("x", self._next_dead()), int(self.own[seq]), 0)
        self.own[seq] = 0
        self._leave_group(seq)

    def keep(self, seq: int, computed_tokens: int, key: int) -> None:
        """``seq`` finished and its context continues in a later request (a multi-turn agent's next
        turn, rlsim.rl.policies.multi_turn): its full private blocks stay cached under ``key``, as
        a preempted request's do (freed, hittable until evicted); the later request adopts them.
        Called just before :meth:`release`, which frees the rest."""
        bs, own = self.block_size, int(self.own[seq])
        full = min(own, max(0, computed_tokens // bs - int(self.shared[seq]))) if self.prefix_caching else 0
        self._put(("k", int(key)), full, full * bs)
        self.own[seq] = own - full

    def _own_key(self, seq: int, adopted: bool = False) -> tuple:
        """The cache key of ``seq``'s own blocks: the kept blocks it adopted (:meth:`adopt`; with
        ``adopted`` the adoption is used up, as its admission takes them) or its own."""
        if not self._alias:
            return ("s", seq)
        return self._alias.pop(seq, ("s", seq)) if adopted else self._alias.get(seq, ("s", seq))

    def adopt(self, seq: int, key: int) -> None:
        """``seq`` hits the blocks kept under ``key`` (:meth:`keep`) as its own, if still cached."""
        if ("k", int(key)) in self._lru:
            self._alias[seq] = ("k", int(key))

    def preempt(self, seq: int, computed_tokens: int) -> None:
        """``seq`` is preempted with ``computed_tokens`` cached: its full private blocks stay
        cached for its re-admission; the tail (partial and look-ahead blocks) is freed first."""
        bs, own = self.block_size, int(self.own[seq])
        full = min(own, max(0, computed_tokens // bs - int(self.shared[seq]))) if self.prefix_caching else 0
        self._put(("x", self._next_dead()), own - full, 0)
        self._put(("s", seq), full, full * bs)
        self.own[seq] = 0
        self._leave_group(seq)

    # ------------------------------------------------------------- the free queue
    def _leave_group(self, seq: int) -> None:
        g = int(self.group_of[seq])
        self.group_ref[g] -= 1
        assert self.group_ref[g] >= 0
        if self.group_ref[g] == 0:
            shared = int(self.shared[seq])
            self._put(("g", g), shared, min(int(self.group_cached_tokens[g]), shared * self.block_size))
            self.group_cached_tokens[g] = 0
        assert self.free <= self.num_blocks

    def _next_dead(self) -> int:
        self._dead += 1
        return self._dead

    def _put(self, key: tuple, blocks: int, tokens: int) -> None:
        """Free ``blocks`` to the queue's tail as entry ``key`` (the most recently freed)."""
        if blocks <= 0:
            return
        self.free += blocks
        if not self.prefix_caching:
            return  # nothing is kept: as if never allocated
        self._lru[key] = [blocks, tokens]
        self._lru.move_to_end(key)
        self._queued += blocks

    def _reclaim(self, key: tuple) -> list[int] | None:
        """Take a cached entry back (a hit): its blocks are held again."""
        entry = self._lru.pop(key, None)
        if entry is not None:
            self._queued -= entry[0]
            self.free -= entry[0]
        return entry

    def _take(self, n: int) -> None:
        """Allocate ``n`` free blocks: never-queued ones first, then evict from the oldest entry
        (a partly evicted entry loses its tail)."""
        if n <= 0:
            return
        short = n - (self.free - self._queued)
        self.free -= n
        while short > 0:
            key, entry = next(iter(self._lru.items()))
            gone = min(short, entry[0])
            entry[0] -= gone
            entry[1] = min(entry[1], entry[0] * self.block_size)
            self._queued -= gone
            if entry[1]:
                self.evicted_blocks += gone
            short -= gone
            if entry[0] == 0:
                del self._lru[key]
        assert self.free >= 0 and self._queued <= self.free

    def _note_cached(self, seq: int, computed_after: int, prefix_len: int) -> None:
        g = self.group_of[seq]
        self.group_cached_tokens[g] = max(int(self.group_cached_tokens[g]), min(computed_after, prefix_len))
