"""What an engine accumulates over a run: iteration counts, preemptions, where the time went,
and vLLM's speculative-decoding counters (``vllm:spec_decode_num_drafts`` & co.)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlsim.cost.forward import COMPONENTS

__all__ = ["EngineStats", "TIME_KEYS", "TokenGaps"]

#: Keys of ``EngineStats.components_s``: the forward pass's components, drafting, verification
#: beyond the target's kernels (rejection sampler), exposed host time and the drafter's
#: critical-path host time (n-gram).
TIME_KEYS = COMPONENTS + ("drafting", "rejection_sampling", "host_exposed", "drafting_host")


@dataclass
class EngineStats:
    """Totals accumulated over a run (times in seconds of engine time)."""

    iterations: int = 0
    segments: int = 0  # steps taken (fast-path jumps count once)
    preemptions: int = 0
    prefill_tokens: int = 0
    recomputed_tokens: int = 0
    busy_s: float = 0.0
    components_s: dict = field(default_factory=lambda: {c: 0.0 for c in TIME_KEYS})
    num_drafts: int = 0
    num_draft_tokens: int = 0
    accepted_hist: np.ndarray = field(default_factory=lambda: np.zeros(33, dtype=np.int64))  # rounds by accepted count
    spec_iterations: int = 0
    #: decoupled drafting (rlsim.speculation.decoupled): per segment ``(t0_s, drafting iterations,
    #: expected hidden iterations, the drafter's own busy seconds)``; empty when coupled
    remote_log: list = field(default_factory=list)

    @property
    def num_accepted_tokens(self) -> int:
        return int((self.accepted_hist * np.arange(len(self.accepted_hist))).sum())

    @property
    def accepted_per_pos(self) -> np.ndarray:
        """Rounds whose position i (0-based) was accepted: rounds with more than i accepted."""
        return np.cumsum(self.accepted_hist[::-1])[::-1][1:]

    def add_pass(self, parts: dict[str, float], draft_s: float, step_s: float, reject_s: float = 0.0,
                 serial_s: float = 0.0) -> None:
        """One iteration: its pass components, speculative GPU time ``draft_s`` (of which
        ``reject_s`` verification extras), step time, and critical-path drafting host time."""
        comp = self.components_s
        for key, v in parts.items():
            comp[key] += v
        gpu_s = sum(parts.values())
        comp["drafting"] += draft_s - reject_s
        comp["rejection_sampling"] += reject_s
        comp["drafting_host"] += serial_s
        comp["host_exposed"] += max(0.0, step_s - gpu_s - draft_s - serial_s)
        self.busy_s += step_s
        self.iterations += 1

    def add_decode_jump(self, const_parts: dict[str, float], launch_s: float, iterations: int,
                        target_s: float, draft_s: float, total_s: float, reject_s: float = 0.0,
                        serial_s: float = 0.0) -> None:
        """A fast-path jump of ``iterations`` decode iterations: the context-independent parts
        are known per iteration, ``launch_s`` is the jump's exposed dispatch in all (passes
        without a graph), the rest of the target time is attention (the only part that depends
        on the context)."""
        comp, m = self.components_s, iterations
        for key, v in const_parts.items():
            comp[key] += v * m
        comp["launch"] += launch_s
        comp["attention"] += max(0.0, target_s - sum(const_parts.values()) * m - launch_s)
        comp["drafting"] += draft_s - reject_s
        comp["rejection_sampling"] += reject_s
        comp["drafting_host"] += serial_s
        comp["host_exposed"] += max(0.0, total_s - target_s - draft_s - serial_s)
        self.busy_s += total_s
        self.iterations += m

    def log_remote(self, t0_s: float, iterations: int, hidden: float, busy_s: float) -> None:
        """A segment's decoupled drafting: iterations with drafts, how many of them are expected
        to hide their drafting, and the seconds the drafter spent on them (before the load share)."""
        self.remote_log.append((t0_s, iterations, hidden, busy_s))

    def count_drafts(self, accepted: np.ndarray, k: int, slack: int = 0) -> None:
        """vLLM's counters over draft rounds with ``k`` drafts: drafts, draft tokens (less
        ``slack`` per round beyond the requests' draft budgets), accepted per count."""
        self.num_drafts += accepted.size
        self.num_draft_tokens += accepted.size * k - (accepted.shape[0] * slack if slack else 0)
        self.accepted_hist[: k + 1] += np.bincount(accepted.ravel(), minlength=k + 1)


class TokenGaps:
    """Inter-token latencies (vLLM ``vllm bench serve``'s ITL): for every request and every
    engine step that gave it tokens, the time since its previous tokens.  With speculation a
    step's tokens arrive together (one streamed chunk, one gap), as vLLM streams them.

    Kept as (values, weight) pairs: a fast-path jump contributes its step times once, weighted
    by the batch, instead of one entry per request."""

    def __init__(self) -> None:
        self._values: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []

    def add(self, gaps_s: np.ndarray, weight: int = 1) -> None:
        if len(gaps_s):
            self._values.append(np.asarray(gaps_s, dtype=np.float64))
            self._weights.append(np.full(len(gaps_s), weight, dtype=np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All gaps and their weights (counts of (request, step) pairs)."""
        if not self._values:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(self._values), np.concatenate(self._weights)
