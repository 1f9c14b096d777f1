"""One RL step's rollout batch: a struct of numpy arrays, one row per sequence."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rlsim.workload.config import WorkloadConfig
from rlsim.workload.lengths import IntArray, LognormalLength

__all__ = ["Batch", "sample_batch"]


@dataclass(frozen=True, slots=True)
class Batch:
    """The sequences of one step (the simulator's hot data; plain arrays, no pydantic).

    Row ``i`` is sequence ``seq_id[i] == i``.  The sequences of one GRPO group are consecutive
    and share ``group_id`` and ``prompt_len``.  ``response_len`` is already truncated at
    ``max_new_tokens``; ``truncated[i]`` is True when sequence ``i`` reached that limit
    (vLLM's ``finish_reason == "length"``; like RL frameworks' clip ratio this counts a
    response whose natural length is exactly ``max_new_tokens``).  Arrays from
    :func:`sample_batch` are read-only.
    """

    seq_id: IntArray
    group_id: IntArray
    prompt_len: IntArray
    response_len: IntArray
    truncated: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        n = self.seq_id.shape
        assert all(a.shape == n for a in (self.group_id, self.prompt_len, self.response_len, self.truncated))

    @property
    def num_sequences(self) -> int:
        """Number of sequences (rows)."""
        return int(self.seq_id.size)

    @property
    def num_groups(self) -> int:
        """Number of GRPO groups (prompts); relies on groups being consecutive."""
        return int(np.count_nonzero(np.diff(self.group_id))) + 1 if self.group_id.size else 0

    @property
    def total_output_tokens(self) -> int:
        """Generated tokens over all sequences (after truncation)."""
        return int(self.response_len.sum())

    @property
    def total_prompt_tokens(self) -> int:
        """Prompt tokens over all sequences (a group's prompt counted once per sequence)."""
        return int(self.prompt_len.sum())


def sample_batch(cfg: WorkloadConfig, rng: np.random.Generator, base_dir: Path | None = None) -> Batch:
    """Sample one step's batch from ``cfg``.

    Draw order is fixed: two seeds are taken from ``rng`` (prompt stream first, then response
    stream) and each stream feeds only its own lengths.  So ``rng`` always advances by the same
    two draws per step, and changing one distribution (or ``max_new_tokens``, or the group
    correlation) never changes the other's samples: runs that differ in one option share
    their random numbers.  ``base_dir`` resolves relative ``empirical`` file paths.
    """
    prompt_rng, response_rng = _substreams(rng, 2)
    g = cfg.num_generations_per_prompt
    n = cfg.num_sequences_per_step
    group_id = np.repeat(np.arange(cfg.num_prompts_per_step, dtype=np.int64), g)
    prompt_len = np.repeat(cfg.prompt_length.sample(prompt_rng, cfg.num_prompts_per_step, base_dir), g)
    raw = _sample_responses(cfg, response_rng, base_dir)
    batch = Batch(
        seq_id=np.arange(n, dtype=np.int64),
        group_id=group_id,
        prompt_len=prompt_len,
        response_len=np.minimum(raw, cfg.max_new_tokens),
        truncated=raw >= cfg.max_new_tokens,
    )
    for a in (batch.seq_id, batch.group_id, batch.prompt_len, batch.response_len, batch.truncated):
        a.setflags(write=False)
    return batch


def _sample_responses(cfg: WorkloadConfig, rng: np.random.Generator, base_dir: Path | None) -> IntArray:
    """Untruncated response lengths; lognormal noise is group-correlated (see WorkloadConfig).

    The own noise is drawn before the group noise, so with rho = 0 this equals a plain
    ``sample`` and changing rho keeps each sequence's own draw.
    """
    dist = cfg.response_length
    rho = cfg.group_length_correlation
    n = cfg.num_sequences_per_step
    if not isinstance(dist, LognormalLength) or rho == 0.0:
        return dist.sample(rng, n, base_dir)
    own = rng.standard_normal(n)
    group = np.repeat(rng.standard_normal(cfg.num_prompts_per_step), cfg.num_generations_per_prompt)
    return dist.from_standard_normal(math.sqrt(rho) * group + math.sqrt(1.0 - rho) * own)


def _substreams(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """``count`` independent generators seeded from ``count`` draws of ``rng`` (same bit generator kind)."""
    seeds = rng.integers(0, 2**63, size=count, dtype=np.uint64)
    return [np.random.Generator(type(rng.bit_generator)(int(s))) for s in seeds]
