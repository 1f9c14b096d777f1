"""What an engine reports after each step: a segment of its timeline."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Segment"]


@dataclass
class Segment:
    """One or more consecutive iterations with the same running batch."""

    engine: int
    t0_s: float
    t1_s: float
    iterations: int
    running: int
    kind: str  # "decode" (fast-path jump), "mixed" (prefill in the pass), "step" (one decode step)
    new_tokens: int
    prefill_tokens: int
    preemptions: int = 0
    finished: int = 0
    scheduled: int = 0      # requests scheduled per iteration (host time scales with them)
    gpu_s: float = 0.0      # GPU time (target pass + drafting) of all its iterations
    gpu_first_s: float = 0.0  # of its first iteration
    gpu_last_s: float = 0.0   # of its last iteration
    kv_used_frac: float = 0.0  # KV blocks in use / all blocks, at its end (cached-but-free blocks count as free)
