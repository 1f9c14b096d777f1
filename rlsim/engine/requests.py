"""Per-request state of one engine: one row (slot) per request, in the order requests arrived.

A slot is an engine-local index; ``seq_ids[slot]`` is the request's global sequence id (what
results, the acceptance sampler and the RL pool speak in).  Token counts follow vLLM's
``Request``: ``prompt + generated`` tokens exist, ``computed`` of them are in the KV cache
(``num_computed_tokens``); a request decodes when exactly one token (the last sampled one) is
not yet computed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RequestTable"]

_INT_COLUMNS = ("seq_ids", "group", "prompt", "response", "generated", "computed", "preemptions", "draft_rounds")
_TIME_COLUMNS = ("admit_s", "first_token_s", "finish_s")


class RequestTable:
    """Columns (numpy arrays, one entry per slot):

    ``seq_ids`` global id; ``group`` engine-local GRPO group (samples of a group share a prompt);
    ``prompt`` / ``response`` tokens (the response length the request will emit);
    ``generated`` tokens emitted so far; ``computed`` tokens in the KV cache; ``preemptions``;
    ``draft_rounds`` speculative rounds done (the acceptance sampler's round counter);
    ``admit_s`` first admission, ``first_token_s``, ``finish_s`` (NaN until they happen).
    """

    def __init__(self) -> None:
        for name in _INT_COLUMNS:
            setattr(self, name, np.zeros(0, dtype=np.int64))
        for name in _TIME_COLUMNS:
            setattr(self, name, np.zeros(0))
        self._group_index: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.seq_ids)

    @property
    def num_groups(self) -> int:
        return len(self._group_index)

    def add(self, seq_ids, group_ids, prompt_len, response_len) -> range:
        """Append requests; returns their slots.  Samples of one group must share a prompt."""
        ids, groups = np.asarray(seq_ids, dtype=np.int64), np.asarray(group_ids, dtype=np.int64)
        prompt, response = np.asarray(prompt_len, dtype=np.int64), np.asarray(response_len, dtype=np.int64)
        local = np.array([self._group_index.setdefault(int(g), len(self._group_index)) for g in groups], dtype=np.int64)
        first: dict[int, int] = {}
        for g, p in zip(local.tolist(), prompt.tolist()):
            if first.setdefault(g, p) != p:
                raise ValueError("the samples of one group must share one prompt length")
        n0, n = len(self), len(ids)
        zeros, nan = np.zeros(n, dtype=np.int64), np.full(n, np.nan)
        new = {"seq_ids": ids, "group": local, "prompt": prompt, "response": response}
        for name in _INT_COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), new.get(name, zeros)]))
        for name in _TIME_COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), nan]))
        return range(n0, n0 + n)

    def num_tokens(self, slot: int) -> int:
        """Tokens that exist for ``slot`` (prompt + generated)."""
        return int(self.prompt[slot] + self.generated[slot])

    def pending(self, slots: np.ndarray) -> np.ndarray:
        """Tokens not yet in the KV cache (1 for a decoding request)."""
        return self.prompt[slots] + self.generated[slots] - self.computed[slots]

    def remaining(self, slots) -> np.ndarray:
        """Tokens still to emit."""
        return self.response[slots] - self.generated[slots]
