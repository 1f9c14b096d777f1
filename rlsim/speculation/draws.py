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
  the tokens the earlier rounds accepted: the rounds are solved together as a fixed point
  (identical to drawing them one after the other).  ``CONTEXT_ROUNDS`` future rounds per
  sequence are solved at once, each with the context it starts at; a later call takes them only
  where its sequences' contexts and ``k`` are the ones the buffer predicted (a sequence's context
  moves only by its own rounds: ``1 + A`` tokens each), and re-solves the others -- so again the
  result is identical to drawing each round directly.
"""

from __future__ import annotations

import numpy as np

from rlsim.speculation.acceptance import DECAY_BUCKET_TOKENS, AcceptanceSampler, RegimeAcceptance

__all__ = ["AcceptanceDraws", "BUFFER_ROUNDS"]

#: Future draft rounds buffered per sequence.
BUFFER_ROUNDS = 256
#: Future draft rounds buffered per sequence with context-dependent acceptance.
CONTEXT_ROUNDS = 128


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
        self._ctx_buf: tuple[np.ndarray, ...] | None = None  # context-dependent rounds (see _buffered_context)

    def accepted(self, seq_ids: np.ndarray, first_round: np.ndarray, rounds: int, k: int,
                 context_tokens: np.ndarray | None = None) -> np.ndarray:
        """Accepted drafts, int64 ``(rounds, len(seq_ids))``: row ``r`` is round ``first_round + r``.

        ``context_tokens`` (prompt + generated at ``first_round``) is needed with context decay."""
        idx = self.sampler.index_of(seq_ids)
        if self._decay:
            if rounds > CONTEXT_ROUNDS:
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
        """:meth:`_with_context` through the buffer of ``CONTEXT_ROUNDS`` solved rounds per sequence:
        accepted drafts, each round's starting context and the ``k`` they were solved at; sequences
        whose ``(first_round, context, k)`` the buffer does not hold are solved again from there."""
        assert context_tokens is not None, "context-dependent acceptance needs the sequences' context lengths"
        ctx = np.asarray(context_tokens, dtype=np.float64)
        if self._ctx_buf is None:
            n = self.sampler.seq_ids.size
            self._ctx_buf = (np.zeros((n, CONTEXT_ROUNDS), dtype=np.int8), np.full((n, CONTEXT_ROUNDS), -1.0),
                             np.full(n, -(10**9), dtype=np.int64), np.zeros(n, dtype=np.int64))
        acc, start_ctx, base, ks = self._ctx_buf
        offset = first_round - base[idx]
        inside = (offset >= 0) & (offset + rounds <= CONTEXT_ROUNDS) & (ks[idx] == k)
        held = inside & (start_ctx[idx, np.where(inside, offset, 0)] == ctx)
        if not held.all():
            stale = ~held
            refill, first, c0 = idx[stale], first_round[stale], ctx[stale]
            a = (self._with_context(refill, first, CONTEXT_ROUNDS, k, c0) if self._regime
                 else self._by_bucket(refill, first, CONTEXT_ROUNDS, k, c0))
            acc[refill] = a.T
            start_ctx[refill] = (c0[None, :] + np.arange(CONTEXT_ROUNDS)[:, None] + np.cumsum(a, axis=0) - a).T
            base[refill], ks[refill] = first, k
            offset = first_round - base[idx]
        flat = (idx * CONTEXT_ROUNDS + offset)[None, :] + np.arange(rounds)[:, None]
        return acc.ravel().take(flat).astype(np.int64)

    def _by_bucket(self, idx: np.ndarray, first_round: np.ndarray, rounds: int, k: int, ctx: np.ndarray) -> np.ndarray:
        """Context decay without regimes, solved bucket by bucket: every round from a sequence's
        current one on is drawn at its current bucket's factor; the first of them whose context
        reaches a later bucket starts the next pass (a round's context depends only on the rounds
        before it, so each pass fixes the rounds up to its crossing exactly -- the result of
        drawing the rounds one after the other)."""
        u = self.sampler.round_uniforms(idx, first_round, rounds)
        out = np.zeros((rounds, idx.size), dtype=np.int64)
        row = np.arange(rounds)[:, None]
        cols = np.arange(idx.size)
        start = np.zeros(idx.size, dtype=np.int64)  # first round of the current bucket, per column
        at = ctx.astype(np.float64)                 # context at that round
        while cols.size:
            acc = _count_below(u[:, cols], self.sampler.survive_at(idx[cols], k, at))
            later = row >= start[None, :]
            block = np.where(later, acc, out[:, cols])
            out[:, cols] = block
            c = ctx[cols][None, :] + row + (np.cumsum(block, axis=0) - block)
            bucket = np.floor(c / DECAY_BUCKET_TOKENS)
            moved = later & (bucket > np.floor(at / DECAY_BUCKET_TOKENS)[None, :])
            go = moved.any(axis=0)
            first = moved.argmax(axis=0)[go]
            cols, start, at = cols[go], first, c[first, np.flatnonzero(go)]
        return out

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
