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

_INT_COLUMNS = ("seq_ids", "group", "prompt", "prefix", "response", "generated", "computed", "preemptions",
                "draft_rounds", "first_token_seg", "finish_seg", "moved_in", "draft_budget")
_TIME_COLUMNS = ("arrival_s", "admit_s", "first_token_s", "last_token_s", "finish_s", "moved_s")


class RequestTable:
    """Columns (numpy arrays, one entry per slot):

    ``seq_ids`` global id; ``group`` engine-local prefix group (requests of a group share the
    first ``prefix`` tokens of their prompts: a GRPO group its whole prompt, a serving benchmark
    its common prefix); ``prompt`` / ``response`` tokens (the response length the request will
    emit); ``generated`` tokens emitted so far; ``computed`` tokens in the KV cache;
    ``preemptions``; ``draft_rounds`` speculative rounds done (the acceptance sampler's round
    counter); ``arrival_s`` when the request reached the engine, ``admit_s`` first admission,
    ``first_token_s``, ``last_token_s`` (the latest token), ``finish_s`` (NaN until they happen);
    ``first_token_seg`` / ``finish_seg`` the index of the engine segment that produced them;
    ``moved_s`` when the request was migrated away from this engine (NaN: never) and
    ``moved_in`` 1 for a row that arrived by migration (rlsim.rl.policies.tail_migration);
    ``draft_budget`` the most drafts per round the request verifies (set and read only when the
    speculation runtime has per-request budgets: rlsim.rl.policies.length_aware_draft).
    """

    def __init__(self) -> None:
        self._n = 0
        self._buf: dict[str, np.ndarray] = {name: np.zeros(0, dtype=np.int64) for name in _INT_COLUMNS}
        self._buf.update({name: np.zeros(0) for name in _TIME_COLUMNS})
        self._views()
        self._group_index: dict[int, int] = {}

    def _views(self) -> None:
        for name, buf in self._buf.items():
            setattr(self, name, buf[: self._n])

    def _reserve(self, n: int) -> None:
        """Room for ``n`` rows; capacity doubles, so adding requests one by one stays linear."""
        cap = len(self._buf["seq_ids"])
        if n <= cap:
            return
        cap = max(n, 2 * cap, 16)
        for name, buf in self._buf.items():
            grown = np.zeros(cap, dtype=buf.dtype)
            grown[: self._n] = buf[: self._n]
            self._buf[name] = grown

    def __len__(self) -> int:
        return self._n

    @property
    def num_groups(self) -> int:
        return len(self._group_index)

    def add(self, seq_ids, group_ids, prompt_len, response_len, prefix_len=None, arrival_s: float = 0.0) -> range:
        """Append requests; returns their slots.  ``prefix_len`` (default: the whole prompt, as
        the samples of a GRPO group share it) must be equal within a group."""
        ids, groups = np.asarray(seq_ids, dtype=np.int64), np.asarray(group_ids, dtype=np.int64)
        prompt, response = np.asarray(prompt_len, dtype=np.int64), np.asarray(response_len, dtype=np.int64)
        prefix = prompt if prefix_len is None else np.minimum(np.asarray(prefix_len, dtype=np.int64), prompt)
        local = np.array([self._group_index.setdefault(int(g), len(self._group_index)) for g in groups], dtype=np.int64)
        first: dict[int, int] = {}
        for g, p in zip(local.tolist(), prefix.tolist()):
            if first.setdefault(g, p) != p:
                what = "samples of one group must share one prompt length" if prefix_len is None else \
                    "requests of one group must share one prefix length"
                raise ValueError(f"the {what}")
        n0, n = self._n, len(ids)
        self._reserve(n0 + n)
        new = {"seq_ids": ids, "group": local, "prompt": prompt, "prefix": prefix, "response": response,
               "arrival_s": arrival_s}
        for name, buf in self._buf.items():
            buf[n0:n0 + n] = new.get(name, np.nan if name in _TIME_COLUMNS else 0)
        self._n = n0 + n
        self._views()
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
