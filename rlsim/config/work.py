"""How much work a request asks for, checked before anything is simulated or allocated.

The estimate counts what the simulator's time grows with (measured on one core of a busy
2-core machine, see ``benchmarks/fuzz.py`` and the README's robustness section):

* sequences: ~0.5 ms each (admission, KV blocks, finishing), counted as
  :data:`SEQUENCE_COST` tokens;
* tokens (prompt + expected response after the cap): ~0.1 us each;
* engines: ~0.26 ms per engine per simulated batch (processes, per-engine arrays), counted as
  :data:`ENGINE_COST` tokens;

summed over every simulated batch: RL steps (``rl.num_steps``, else ``rl.convergence.max_steps``),
the runs one invocation makes (the speculative run, its no-speculation baseline, the sync
twin of an async / disaggregated pipeline), seeds, and sweep points.  The sum is in
"token-equivalents" (W); ``W x 1e-7`` is roughly the seconds it takes.

* above :data:`SOFT_LIMIT` (W = 3e9, ~5 minutes) a warning says what was asked and how long it may take;
* above :data:`HARD_LIMIT` (W = 1e11, ~3 hours) the run is refused (exit 2) before it starts;
  ``--work-limit W`` sets another hard limit (``--work-limit 0``: none);
* independently of W, ``cluster.num_gpus`` is at most :data:`MAX_GPUS` and sweeps have at
  most :data:`MAX_POINTS` points (checked before the points are listed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlsim.errors import ConfigError

__all__ = ["WorkEstimate", "estimate", "check_work", "check_sweep_work", "SOFT_LIMIT", "HARD_LIMIT", "MAX_GPUS", "MAX_POINTS",
           "SEQUENCE_COST", "ENGINE_COST"]

#: Token-equivalents of one sequence's fixed cost (~0.5 ms / ~0.1 us per token; measured, see the docstring).
SEQUENCE_COST = 5_000
#: Token-equivalents of one engine per simulated batch (~0.26 ms; measured).
ENGINE_COST = 2_600
#: Above this a run warns (W, token-equivalents; ~5 minutes).
SOFT_LIMIT = 3e9
#: Above this a run is refused unless ``--work-limit`` raises it (~3 hours).
HARD_LIMIT = 1e11
#: Largest cluster (GPUs) a scenario may ask for (engines and per-GPU arrays are allocated per GPU).
MAX_GPUS = 1_000_000
#: Most sweep points (x seeds) a sweep may list.
MAX_POINTS = 100_000
#: Seconds per token-equivalent on the reference machine (for the message only).
_SECONDS_PER_UNIT = 1e-7


@dataclass(frozen=True)
class WorkEstimate:
    """What a request asks for: per simulated batch and in all."""

    sequences: int        # per batch
    tokens: float         # per batch (prompt + expected response)
    engines: int          # rollout engines
    batches: int          # batches per run (RL steps; 1 for a rollout or a benchmark)
    runs: int             # runs per seed (speculative + baselines)
    seeds: int
    points: int = 1

    @property
    def units(self) -> float:
        """Token-equivalents in all (see the module docstring)."""
        per_batch = self.sequences * SEQUENCE_COST + self.tokens + self.engines * ENGINE_COST
        return per_batch * self.batches * self.runs * self.seeds * self.points

    @property
    def seconds(self) -> float:
        """Rough wall seconds on the reference machine."""
        return self.units * _SECONDS_PER_UNIT

    def describe(self) -> str:
        parts = [f"{self.sequences:,} sequences x {_tokens(self.tokens / max(1, self.sequences))} tokens"]
        if self.batches > 1:
            parts.append(f"{self.batches:,} steps")
        if self.runs > 1:
            parts.append(f"{self.runs} runs (speculative + baselines)")
        if self.seeds > 1:
            parts.append(f"{self.seeds:,} seeds")
        if self.points > 1:
            parts.append(f"{self.points:,} points")
        return " x ".join(parts) + f" on {self.engines:,} engines"


def _tokens(x: float) -> str:
    return f"{x:,.0f}" if x < 1e6 else f"{x:.3g}"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:,.0f} days"


def estimate(sc, base_dir=None, *, seeds: int = 1, baseline: bool = True, points: int = 1,
             source: str | None = None) -> WorkEstimate:
    """The work of simulating scenario ``sc`` (a validated :class:`~rlsim.config.Scenario`);
    ``source`` names its file in the message when it asks for more than :data:`MAX_GPUS`."""
    if sc.cluster.num_gpus > MAX_GPUS:
        raise ConfigError.at(source, "cluster.num_gpus", sc.cluster.num_gpus,
                             f"is more GPUs than rlsim simulates (at most {MAX_GPUS:,})")
    e = sc.rollout.engine
    gpus = min(sc.rollout.num_gpus or sc.cluster.num_gpus, sc.cluster.num_gpus)
    engines = max(1, gpus // max(1, e.tensor_parallel_size))
    spec = e.speculative_config is not None
    if sc.serving is not None:
        s = sc.serving
        seqs, per = s.num_prompts, float(s.random_prefix_len + s.random_input_len + s.random_output_len)
        return WorkEstimate(seqs, seqs * per, engines, 1, 1, seeds, points)
    w = sc.workload
    seqs = w.num_sequences_per_step
    per = w.mean_prompt_tokens_estimate(base_dir) + w.mean_response_tokens_estimate(base_dir)
    per = per if math.isfinite(per) else float(w.max_new_tokens)
    if sc.rl is None:
        return WorkEstimate(seqs, seqs * per, engines, 1, 2 if (spec and baseline) else 1, seeds, points)
    steps = sc.rl.num_steps or sc.rl.convergence.max_steps
    runs = 1 + (baseline and spec) + (baseline and sc.rl.pipeline != "sync_colocated")
    return WorkEstimate(seqs, seqs * per, engines, steps, runs, seeds, points)


def check_work(est: WorkEstimate, source: str | None, hard_limit: float | None = HARD_LIMIT) -> str | None:
    """Refuse ``est`` above ``hard_limit`` (None or 0: no limit); return a warning line above
    :data:`SOFT_LIMIT`, else None."""
    return _verdict(est.units, est.describe(), source, hard_limit)


def check_sweep_work(points: list[WorkEstimate], source: str | None, hard_limit: float | None = HARD_LIMIT) -> str | None:
    """:func:`check_work` for a sweep: the work of every point and seed summed (each point's
    own run; shared baselines add at most as much again)."""
    units = sum(p.units for p in points)
    seqs = sum(p.sequences * p.batches * p.runs * p.seeds for p in points)
    n = len(points)
    what = f"{n:,} {'runs' if n != 1 else 'run'} (points x seeds), {seqs:,} simulated sequences in all"
    return _verdict(units, what, source, hard_limit)


def _verdict(units: float, what: str, source: str | None, hard_limit: float | None) -> str | None:
    where = f"{source}: " if source else ""
    seconds = units * _SECONDS_PER_UNIT
    if hard_limit and units > hard_limit:
        raise ConfigError(f"{where}the run asks for {what} (work {units:.2g} token-equivalents, "
                          f"~{_duration(seconds)}), above the limit of {hard_limit:.2g} "
                          "(shrink it, or raise the limit with --work-limit)")
    if units > SOFT_LIMIT:
        return f"{where}large run: {what} (work {units:.2g} token-equivalents, ~{_duration(seconds)} on one core)"
    return None
