"""The requests a benchmark client sends: lengths and arrival times (pure functions).

Both follow ``vllm bench serve`` (vllm/benchmarks/datasets.py ``RandomDataset``,
vllm/benchmarks/serve.py ``get_request``); see :class:`rlsim.serving.config.ServingConfig`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlsim.errors import ConfigError
from rlsim.serving.config import ServingConfig

__all__ = ["Requests", "sample_requests", "arrival_times_s", "dataset_max_lengths"]


@dataclass(frozen=True)
class Requests:
    """One row per request, in send order: prompt tokens (common prefix included), output
    tokens, and the time each is ready to send (before the concurrency cap)."""

    prompt_len: np.ndarray
    output_len: np.ndarray
    ready_s: np.ndarray
    prefix_len: int

    def __len__(self) -> int:
        return len(self.prompt_len)


def arrival_times_s(num: int, rate: float | None, burstiness: float, rng: np.random.Generator) -> np.ndarray:
    """Ready times: all 0 at an unlimited rate; else the first at 0 and Gamma(burstiness,
    1 / (rate x burstiness)) gaps after it (mean 1 / rate; Poisson at burstiness 1)."""
    if rate is None:
        return np.zeros(num)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=max(0, num - 1))
    return np.concatenate([[0.0], np.cumsum(gaps)])


def _random_lengths(length: int, ratio: float, num: int, rng: np.random.Generator) -> np.ndarray:
    low, high = int(length * (1 - ratio)), int(length * (1 + ratio))
    return rng.integers(low, high + 1, size=num).astype(np.int64)


def _dataset_lengths(path: Path, shown: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Every row's (input_len, output_len) of a lengths CSV."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError.at(source, "serving.dataset_path", shown, f"cannot be read ({type(exc).__name__})") from None
    cols = {"input_len", "output_len"}
    if not rows or not cols <= set(rows[0]):
        raise ConfigError.at(source, "serving.dataset_path", shown, "needs a header with input_len and output_len and one row at least")
    lengths = []
    for i, row in enumerate(rows, start=2):
        try:
            a, b = int(row["input_len"]), int(row["output_len"])
        except (TypeError, ValueError):
            raise ConfigError.at(source, "serving.dataset_path", shown, f"row {i}: lengths must be integers") from None
        if a < 1 or b < 1:
            raise ConfigError.at(source, "serving.dataset_path", shown, f"row {i}: lengths must be >= 1")
        lengths.append((a, b))
    arr = np.array(lengths, dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def dataset_max_lengths(cfg: ServingConfig, base_dir: Path, source: str) -> tuple[int, int]:
    """Longest prompt and output ``cfg`` can send (for max_model_len)."""
    if cfg.dataset_path is None:
        return cfg.max_input_tokens(), cfg.max_output_tokens()
    prompt, output = _dataset_lengths(_resolve(cfg.dataset_path, base_dir), cfg.dataset_path, source)
    return int(prompt.max()) + cfg.random_prefix_len, int(output.max())


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def sample_requests(cfg: ServingConfig, seed: int, base_dir: Path = Path("."), source: str = "scenario") -> Requests:
    """The benchmark's requests, deterministic in ``seed``."""
    lengths_rng, arrival_rng = (np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence([seed, 0xBE]).spawn(2))
    n = cfg.num_prompts
    if cfg.dataset_path is None:
        inputs = _random_lengths(cfg.random_input_len, cfg.random_range_ratio, n, lengths_rng)
        outputs = _random_lengths(cfg.random_output_len, cfg.random_range_ratio, n, lengths_rng)
    else:
        inputs, outputs = _dataset_lengths(_resolve(cfg.dataset_path, base_dir), cfg.dataset_path, source)
        rows = np.arange(n) % len(inputs)  # in order, cycled
        inputs, outputs = inputs[rows], outputs[rows]
    ready = arrival_times_s(n, cfg.request_rate, cfg.burstiness, arrival_rng)
    return Requests(inputs + cfg.random_prefix_len, outputs, ready, cfg.random_prefix_len)
