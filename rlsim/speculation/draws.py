"""Accepted-draft draws by sequence id and draft round, buffered for the engine's hot path.

:class:`AcceptanceDraws` answers the engine's one question -- "how many drafts do these
sequences accept in their next ``rounds`` draft rounds at ``k`` drafts per round?" -- keyed by
global sequence id and each sequence's round counter.  Outcomes are those of
:class:`~rlsim.speculation.acceptance.AcceptanceSampler` (counter-based, path independent); the
buffer only saves work:

* without context decay, ``BUFFER_ROUNDS`` future rounds per sequence are drawn at once at
  ``k_max`` (a round with ``k`` drafts accepts ``min(A_kmax, k)`` of the same draw) and refilled
  when a request runs past them, so the result is identical to sampling each round directly;
* with context decay or regime acceptance, a round's context (and so its acceptance) depends on
  the tokens the earlier rounds accepted: the rounds are solved in order (bucket by bucket, or as
  a fixed point with regimes -- identical to drawing them one after the other), at least
  ``CONTEXT_ROUNDS`` at a time per sequence, into a ring of solved rounds (:class:`_ContextRing`).
  A call takes them only where its sequences' contexts and ``k`` are the ones the ring predicted
  (a sequence's context moves only by its own rounds: ``1 + A`` tokens each), and re-solves the
  others; when some sequences of a call run short, every sequence of the call holding fewer
  than ``CONTEXT_ROUNDS`` is topped up too (refills rarer and larger; when a round is solved
  cannot change it) -- so again the result is identical to drawing each round directly.
"""

from __future__ import annotations

import numpy as np

from rlsim.speculation.acceptance import DECAY_BUCKET_TOKENS, AcceptanceSampler, RegimeAcceptance

__all__ = ["AcceptanceDraws", "BUFFER_ROUNDS"]

#: Future draft rounds buffered per sequence.
BUFFER_ROUNDS = 256
#: Draft rounds solved per sequence at a time with context-dependent acceptance (at least).
CONTEXT_ROUNDS = 128
#: Most rounds one call takes from the context-dependent buffer (longer asks are solved directly).
MAX_CONTEXT_ROUNDS = 2 * CONTEXT_ROUNDS


class AcceptanceDraws:
    """Buffered accepted-draft counts of one sampler's sequences (shared by a pool's engines)."""

    def __init__(self, sampler: AcceptanceSampler, buffer_rounds: int = BUFFER_ROUNDS) -> None:
        self.sampler = sampler
        self.k_max = sampler.k_max
        self.buffer_rounds = int(buffer_rounds)
        self._decay = sampler.needs_context  # context decay or regime acceptance: rounds in order
        self._regime = isinstance(sampler.model, RegimeAcceptance)
        self._buf: np.ndarray | None = None   # (sequences, buffer_rounds) int8
        self._base: np.ndarray | None = None  # round index of each sequence's buffer column 0
        self._mean: dict[int, float] = {}
        self._ctx_buf: _ContextRing | None = None  # context-dependent rounds (see _buffered_context)

    def accepted(self, seq_ids: np.ndarray, first_round: np.ndarray, rounds: int, k: int,
                 context_tokens: np.ndarray | None = None) -> np.ndarray:
        """Accepted drafts, int64 ``(rounds, len(seq_ids))``: row ``r`` is round ``first_round + r``.

        ``context_tokens`` (prompt + generated at ``first_round``) is needed with context decay."""
        idx = self.sampler.index_of(seq_ids)
        if self._decay:
            if rounds > MAX_CONTEXT_ROUNDS:
                return self._with_context(idx, first_round, rounds, k, context_tokens)
            return self._buffered_context(idx, first_round, rounds, k, context_tokens)
        if rounds > self.buffer_rounds:
            return self.sampler.sample(idx, first_round, rounds, k)
        offset = self._offsets(idx, first_round, rounds)
        flat = (idx * self.buffer_rounds + offset)[None, :] + np.arange(rounds)[:, None]
        acc = self._buf.ravel().take(flat).astype(np.int64)
        return np.minimum(acc, k) if k < self.k_max else acc

    def _offsets(self, idx: np.ndarray, first_round: np.ndarray, rounds: int) -> np.ndarray:
        """Each sequence's buffer column of ``first_round``, refilling stale buffers first."""
        if self._buf is None:
            n = self.sampler.seq_ids.size
            self._buf = np.zeros((n, self.buffer_rounds), dtype=np.int8)
            self._base = np.full(n, -(10**9), dtype=np.int64)
        offset = first_round - self._base[idx]
        stale = (offset < 0) | (offset + rounds > self.buffer_rounds)
        if stale.any():
            refill = idx[stale]
            self._buf[refill] = self.sampler.sample(refill, first_round[stale], self.buffer_rounds, self.k_max).T
            self._base[refill] = first_round[stale]
            offset = first_round - self._base[idx]
        return offset

    def _buffered_context(self, idx: np.ndarray, first_round: np.ndarray, rounds: int, k: int,
                          context_tokens: np.ndarray | None) -> np.ndarray:
        """:meth:`_with_context` through :class:`_ContextRing`: the rounds come from the solved
        buffer where it holds the sequence's ``(first_round, context, k)``; the others are solved
        again from there (see :meth:`_ContextRing.top_up` for why refilling early is exact)."""
        assert context_tokens is not None, "context-dependent acceptance needs the sequences' context lengths"
        if self._ctx_buf is None:
            self._ctx_buf = _ContextRing(self.sampler.seq_ids.size, CONTEXT_ROUNDS, MAX_CONTEXT_ROUNDS)
        ring = self._ctx_buf
        ctx = np.asarray(context_tokens, dtype=np.float64)
        avail = ring.available(idx, first_round, k, ctx, self.sampler.context_keys)
        if (avail < rounds).any():
            ring.top_up(idx, first_round, rounds, k, ctx, avail, self._solve)
        return ring.read(idx, first_round, rounds)

    def _solve(self, idx: np.ndarray, first_round: np.ndarray, rounds: int, k: int, ctx: np.ndarray) -> np.ndarray:
        """Accepted drafts of ``rounds`` rounds from ``first_round`` at contexts ``ctx``, solved in
        order, ``(len(idx), rounds)``."""
        if self._regime:
            return self._with_context(idx, first_round, rounds, k, ctx).T
        return _by_bucket(self.sampler, idx, first_round, rounds, k, ctx)

    def _with_context(self, idx: np.ndarray, first_round: np.ndarray, rounds: int, k: int,
                      context_tokens: np.ndarray | None) -> np.ndarray:
        """Rounds whose acceptance depends on their context: round ``r`` starts at ``ctx0 + r +
        sum_{j<r} A_j``.  Solved as a fixed point over all rounds at once (vectorised): from a
        guess of the accepted counts, recompute every round's context and its draws until nothing
        changes.  The recursion has one solution and each pass fixes at least the earliest wrong
        round, so the result is exactly that of drawing the rounds one after the other (in a few
        passes: the draws change only where a round's context key -- decay bucket, regime
        block -- does)."""
        assert context_tokens is not None, "context-dependent acceptance needs the sequences' context lengths"
        ctx0 = np.asarray(context_tokens, dtype=np.float64)[None, :] + np.arange(rounds, dtype=np.float64)[:, None]
        u = self.sampler.round_uniforms(idx, first_round, rounds)
        guess = ctx0 + np.arange(rounds, dtype=np.float64)[:, None] * self._mean_accepted(k)  # expected progress
        out = self.sampler.sample(idx, first_round, rounds, k, guess, u=u)
        keys = self.sampler.context_keys(guess)
        cols = np.arange(idx.size)
        for _ in range(rounds + 1):
            ctx = ctx0[:, cols] + (np.cumsum(out[:, cols], axis=0) - out[:, cols])
            new_keys = self.sampler.context_keys(ctx)
            wrong = np.zeros(cols.size, dtype=bool)
            for a, b in zip(keys, new_keys):
                wrong |= (a != b).any(axis=0)
            if not wrong.any():
                break  # the draws depend on the context only through its keys: a fixed point
            cols = cols[wrong]  # sequences are independent: redraw only those whose keys moved
            keys = [key[:, wrong] for key in new_keys]
            out[:, cols] = self.sampler.sample(idx[cols], first_round[cols], rounds, k, ctx[:, wrong], u=u[:, cols])
        return out

    def _mean_accepted(self, k: int) -> float:
        """The base model's mean accepted drafts per round at ``k`` (the initial guess's progress)."""
        if k not in self._mean:
            self._mean[k] = self.sampler.model.mean_acceptance_length(k) - 1.0
        return self._mean[k]


def _count_below(u: np.ndarray, survive: np.ndarray) -> np.ndarray:
    """``sum_i [u < survive[:, i]]`` of uniforms ``u`` (rounds, n) against ``P(A >= i)`` (n, k): the
    accepted drafts, int64 (rounds, n); summed over the ``k`` columns one by one, which is cheaper
    than a reduction along a short last axis."""
    acc = np.zeros(u.shape, dtype=np.int64)
    for i in range(survive.shape[1]):
        acc += u < survive[:, i]
    return acc


def _by_bucket(sampler: AcceptanceSampler, idx: np.ndarray, first_round: np.ndarray, rounds: int, k: int,
               ctx: np.ndarray) -> np.ndarray:
    """Context decay without regimes, solved bucket by bucket, ``(len(idx), rounds)`` int8: every
    round from a sequence's current one on is drawn at its current bucket's factor; the first of
    them whose context reaches the next bucket starts the next pass (a round's context depends
    only on the rounds before it, so each pass fixes the rounds up to its crossing exactly -- the
    result of drawing the rounds one after the other).

    Within a pass, with ``e(r) = r + sum_{j<r} A_j`` over the pass's draws (strictly increasing:
    each round moves ``1 + A >= 1`` tokens), round ``r >= start`` begins at ``at + e(r) - e(start)``,
    so the crossing round is the number of rounds with ``e(r) < e(start) + ceil(end - at)`` (``end``: the
    next bucket's first token; rounds before ``start`` count too, as ``e(r) <= e(start)`` there)."""
    u = sampler.seq_round_uniforms(idx, first_round, rounds)  # (n, rounds)
    out = np.empty((idx.size, rounds), dtype=np.int8)
    steps = np.arange(rounds, dtype=np.int32)
    at = np.asarray(ctx, dtype=np.float64)      # context at the first round of the current bucket
    # pass p draws at bucket b0 + p (a round moves 1 + A <= 1 + k tokens, less than a bucket):
    passes = (DECAY_BUCKET_TOKENS - 1 + (rounds - 1) * (1 + k)) // DECAY_BUCKET_TOKENS + 1
    edges = (np.floor(at / DECAY_BUCKET_TOKENS)[:, None] + np.arange(passes + 1)) * DECAY_BUCKET_TOKENS
    survive_by_pass = sampler.survive_at(np.repeat(idx, passes), k, edges[:, :-1].ravel()).reshape(idx.size, passes, k)
    rows = np.arange(idx.size)                  # sequences still crossing a bucket edge
    start = np.zeros(idx.size, dtype=np.int64)  # first round of the current bucket, per sequence
    for p in range(passes):
        survive = survive_by_pass[rows, p]
        ur = u[rows] if p else u
        acc = (ur < survive[:, :1]).view(np.int8)
        for i in range(1, k):
            acc = acc + (ur < survive[:, i:i + 1]).view(np.int8)
        if p:
            out[rows] = np.where(steps[None, :] >= start[:, None], acc, out[rows])
        else:
            out[...] = acc
        e = np.cumsum(acc, axis=1, dtype=np.int32)
        e += steps - acc
        here = np.arange(rows.size)
        room = np.ceil(edges[rows, p + 1] - at).astype(np.int32)  # e(r) - e(start) < end - at, e integer
        cross = (e < (room + e[here, start])[:, None]).sum(axis=1)
        go = cross < rounds
        if not go.any():
            break
        first = cross[go]
        rows, at = rows[go], at[go] + (e[here[go], first] - e[here[go], start[go]])
        start = first
    else:
        raise AssertionError("a round crossed more bucket edges than its tokens can reach")
    return out


class _ContextRing:
    """Solved context-dependent rounds per sequence in a ring of ``2 * max_rounds`` columns (round
    ``r`` in column ``r % width``): accepted drafts, each round's starting context, the ``k`` they
    were solved at, the rounds held ``[lo, hi)`` and the context at ``hi``.

    Why the buffer is exact: a sequence's round ``r`` accepts a function of (seed, its id, ``r``,
    ``k``, its context at ``r``) only (counter-based draws), and its context moves only by its own
    rounds (``1 + A`` tokens each).  So the rounds solved in order from any ``(round, context,
    k)`` on the sequence's actual path are its actual rounds, whenever they are solved; the
    buffer answers only where its predicted context at the asked round equals the actual one
    (and ``k`` is the same), else that sequence is solved again from its actual state."""

    def __init__(self, n: int, chunk: int, max_rounds: int) -> None:
        self.chunk, self.width = int(chunk), 2 * int(max_rounds)
        self.acc = np.zeros((n, self.width), dtype=np.int8)
        self.start_ctx = np.full((n, self.width), -1.0)
        self.lo = np.zeros(n, dtype=np.int64)
        self.hi = np.zeros(n, dtype=np.int64)
        self.end_ctx = np.zeros(n)
        self.ks = np.full(n, -1, dtype=np.int64)

    def available(self, idx: np.ndarray, first_round: np.ndarray, k: int, ctx: np.ndarray, keys) -> np.ndarray:
        """Rounds held from ``first_round`` on, per sequence (0: none, or off its path; a sequence
        that used up its rounds restarts from its state, which is the same).  A sequence whose
        context moved off the prediction (a plain token in between) keeps the rounds that
        :meth:`_realign` shows are still on its path."""
        avail = self.hi[idx] - first_round
        predicted = self.start_ctx.ravel().take(idx * self.width + first_round % self.width)
        held = (avail > 0) & (first_round >= self.lo[idx]) & (self.ks[idx] == k)
        on_path = predicted == ctx
        moved = held & ~on_path
        if moved.any():
            avail[moved] = self._realign(idx[moved], first_round[moved], ctx[moved] - predicted[moved], keys)
            on_path = on_path | moved
        return np.where(held & on_path, avail, 0)

    def _realign(self, seqs: np.ndarray, first_round: np.ndarray, shift: np.ndarray, keys) -> np.ndarray:
        """Sequences whose actual context at ``first_round`` is the predicted one plus ``shift``:
        their held rounds stay on the actual path up to the first whose context keys (decay
        bucket, regime block: ``keys``) differ once shifted -- a round's draw depends on its
        context only through its keys, so until then every round accepts the same and the actual
        context stays ``shift`` ahead.  Keeps those rounds (contexts shifted), drops the rest;
        returns how many are kept."""
        span = self.hi[seqs] - first_round
        cols = (first_round[:, None] + np.arange(self.width)[None, :]) % self.width
        flat = seqs[:, None] * self.width + cols
        old = self.start_ctx.ravel().take(flat)
        new = old + shift[:, None]
        same = np.arange(self.width)[None, :] < span[:, None]
        for a, b in zip(keys(old), keys(new)):
            same &= a == b
        kept = np.cumprod(same, axis=1).sum(axis=1)
        self.start_ctx.ravel()[flat] = new  # rounds beyond the kept ones fall outside [lo, hi)
        rows = np.arange(seqs.size)
        self.end_ctx[seqs] = np.where(kept < span, new[rows, np.minimum(kept, self.width - 1)],
                                      self.end_ctx[seqs] + shift)
        self.lo[seqs], self.hi[seqs] = first_round, first_round + kept
        return kept

    def top_up(self, idx: np.ndarray, first_round: np.ndarray, rounds: int, k: int, ctx: np.ndarray,
               avail: np.ndarray, solve) -> None:
        """Solve ``n = max(chunk, rounds)`` more rounds for every sequence of the call holding fewer
        than ``n`` (those holding none restart at their actual round and context), so each then
        holds the ``rounds`` asked.  Refilling a sequence before it runs out changes nothing (see
        the class docstring) and makes refills rarer and larger; the held rounds stay within
        ``2 n <= width`` of each other, so the ring keeps them all."""
        n = max(self.chunk, rounds)
        assert 2 * n <= self.width, (rounds, self.width)
        fresh = avail <= 0
        reset = idx[fresh]
        self.lo[reset] = self.hi[reset] = first_round[fresh]
        self.end_ctx[reset], self.ks[reset] = ctx[fresh], k
        seqs = idx[avail < n]
        begin, c0 = self.hi[seqs], self.end_ctx[seqs]
        a = solve(seqs, begin, n, k, c0)  # (len(seqs), n)
        moved = np.cumsum(a, axis=1, dtype=np.int64)
        moved += np.arange(1, n + 1)  # tokens moved by the end of each round
        flat = seqs[:, None] * self.width + (begin[:, None] + np.arange(n)[None, :]) % self.width
        self.acc.ravel()[flat] = a
        self.start_ctx.ravel()[flat] = c0[:, None] + (moved - 1 - a)
        self.hi[seqs] = begin + n
        self.lo[seqs] = np.maximum(self.lo[seqs], begin + n - self.width)
        self.end_ctx[seqs] = c0 + moved[:, -1]

    def read(self, idx: np.ndarray, first_round: np.ndarray, rounds: int) -> np.ndarray:
        """Accepted drafts ``(rounds, len(idx))`` int64 of held rounds ``first_round + r``."""
        cols = (first_round[None, :] + np.arange(rounds)[:, None]) % self.width
        return self.acc.ravel().take(idx * self.width + cols).astype(np.int64)
