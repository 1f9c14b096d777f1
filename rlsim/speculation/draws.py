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
  (identical to drawing them one after the other).
"""

from __future__ import annotations

import numpy as np

from rlsim.speculation.acceptance import AcceptanceSampler

__all__ = ["AcceptanceDraws", "BUFFER_ROUNDS"]

#: Future draft rounds buffered per sequence.
BUFFER_ROUNDS = 256


class AcceptanceDraws:
    """Buffered accepted-draft counts of one sampler's sequences (shared by a pool's engines)."""

    def __init__(self, sampler: AcceptanceSampler, buffer_rounds: int = BUFFER_ROUNDS) -> None:
        self.sampler = sampler
        self.k_max = sampler.k_max
        self.buffer_rounds = int(buffer_rounds)
        self._decay = sampler.needs_context  # context decay or regime acceptance: rounds in order
        self._buf: np.ndarray | None = None   # (sequences, buffer_rounds) int8
        self._base: np.ndarray | None = None  # round index of each sequence's buffer column 0
        self._mean: dict[int, float] = {}

    def accepted(self, seq_ids: np.ndarray, first_round: np.ndarray, rounds: int, k: int,
                 context_tokens: np.ndarray | None = None) -> np.ndarray:
        """Accepted drafts, int64 ``(rounds, len(seq_ids))``: row ``r`` is round ``first_round + r``.

        ``context_tokens`` (prompt + generated at ``first_round``) is needed with context decay."""
        idx = self.sampler.index_of(seq_ids)
        if self._decay:
            return self._with_context(idx, first_round, rounds, k, context_tokens)
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
