"""WorkloadConfig and sample_batch: group structure, truncation, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from rlsim.workload import Batch, FixedLength, LognormalLength, WorkloadConfig, sample_batch

FIELDS = ("seq_id", "group_id", "prompt_len", "response_len", "truncated")


def _cfg(**overrides: Any) -> WorkloadConfig:
    base: dict[str, Any] = {
        "num_prompts_per_step": 64,
        "num_generations_per_prompt": 8,
        "prompt_length": {"kind": "lognormal", "mean_tokens": 300, "sigma": 0.6, "max_tokens": 2048},
        "response_length": {"kind": "lognormal", "mean_tokens": 2000, "sigma": 0.9},
        "max_new_tokens": 4096,
    }
    return WorkloadConfig.model_validate({**base, **overrides})


def _same(a: Batch, b: Batch) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)


def test_same_seed_same_batch_and_successive_steps_differ() -> None:
    cfg = _cfg()
    a, b = sample_batch(cfg, np.random.default_rng(42)), sample_batch(cfg, np.random.default_rng(42))
    assert _same(a, b)
    rng = np.random.default_rng(42)
    assert not _same(sample_batch(cfg, rng), sample_batch(cfg, rng))


def test_group_structure() -> None:
    batch = sample_batch(_cfg(), np.random.default_rng(0))
    assert batch.num_sequences == 512 and batch.num_groups == 64
    assert batch.seq_id.tolist() == list(range(512))
    assert batch.group_id.tolist() == [i // 8 for i in range(512)]
    prompts = batch.prompt_len.reshape(64, 8)
    assert (prompts == prompts[:, :1]).all()
    assert np.unique(prompts[:, 0]).size > 1
    assert all(a.dtype == np.int64 for a in (batch.seq_id, batch.group_id, batch.prompt_len, batch.response_len))
    assert batch.truncated.dtype == np.bool_
    assert batch.total_output_tokens == int(batch.response_len.sum())
    assert batch.total_prompt_tokens == int(batch.prompt_len.sum())


def test_cap_and_truncated_flags() -> None:
    big = sample_batch(_cfg(max_new_tokens=10**9), np.random.default_rng(5))
    capped = sample_batch(_cfg(max_new_tokens=1500), np.random.default_rng(5))
    assert not big.truncated.any()
    assert np.array_equal(capped.response_len, np.minimum(big.response_len, 1500))
    assert np.array_equal(capped.truncated, big.response_len >= 1500)
    assert np.array_equal(capped.truncated, capped.response_len == 1500)
    assert 0 < capped.truncated.sum() < capped.num_sequences
    assert np.array_equal(capped.prompt_len, big.prompt_len)


def test_fixed_lengths() -> None:
    cfg = _cfg(
        prompt_length={"kind": "fixed", "tokens": 10},
        response_length={"kind": "fixed", "tokens": 30},
        max_new_tokens=20,
    )
    batch = sample_batch(cfg, np.random.default_rng(0))
    assert (batch.prompt_len == 10).all() and (batch.response_len == 20).all() and batch.truncated.all()
    assert batch.total_output_tokens == 20 * 512
    assert cfg.mean_response_tokens_estimate() == 20.0 and cfg.mean_prompt_tokens_estimate() == 10.0


def test_streams_independent_of_other_options() -> None:
    ref = sample_batch(_cfg(), np.random.default_rng(7))
    other_prompt = sample_batch(_cfg(prompt_length={"kind": "fixed", "tokens": 5}), np.random.default_rng(7))
    assert np.array_equal(ref.response_len, other_prompt.response_len)
    other_cfg = _cfg(response_length={"kind": "fixed", "tokens": 5}, group_length_correlation=0.5)
    other_resp = sample_batch(other_cfg, np.random.default_rng(7))
    assert np.array_equal(ref.prompt_len, other_resp.prompt_len)


def test_group_length_correlation() -> None:
    full = sample_batch(_cfg(group_length_correlation=1.0), np.random.default_rng(3))
    groups = full.response_len.reshape(64, 8)
    assert (groups == groups[:, :1]).all()
    half_cfg = _cfg(group_length_correlation=0.5, num_prompts_per_step=4096, max_new_tokens=10**9)
    half = sample_batch(half_cfg, np.random.default_rng(3))
    logs = np.log(half.response_len.reshape(4096, 8))
    within = np.corrcoef(logs[:, 0], logs[:, 1])[0, 1]
    assert within == pytest.approx(0.5, abs=0.05)
    assert half.response_len.mean() == pytest.approx(2000, rel=0.03)
    # Ignored for kinds without lognormal noise.
    fixed = _cfg(response_length={"kind": "fixed", "tokens": 9}, group_length_correlation=0.7)
    assert (sample_batch(fixed, np.random.default_rng(0)).response_len == 9).all()


def test_batch_is_read_only() -> None:
    batch = sample_batch(_cfg(), np.random.default_rng(0))
    with pytest.raises(ValueError):
        batch.response_len[0] = 1
    with pytest.raises(AttributeError):
        batch.response_len = batch.prompt_len  # type: ignore[misc]


def test_empirical_response_with_base_dir(tmp_path: Path) -> None:
    (tmp_path / "resp.csv").write_text("length\n100\n5000\n")
    cfg = _cfg(response_length={"kind": "empirical", "path": "resp.csv"}, max_new_tokens=4096)
    batch = sample_batch(cfg, np.random.default_rng(0), base_dir=tmp_path)
    assert set(batch.response_len.tolist()) == {100, 4096}
    assert np.array_equal(batch.truncated, batch.response_len == 4096)
    assert cfg.mean_response_tokens_estimate(tmp_path) == pytest.approx((100 + 4096) / 2)


def test_mean_response_estimate_accounts_for_cap() -> None:
    cfg = _cfg(max_new_tokens=1500, num_prompts_per_step=4096)
    batch = sample_batch(cfg, np.random.default_rng(11))
    assert cfg.mean_response_tokens_estimate() == pytest.approx(batch.response_len.mean(), rel=0.01)


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_prompts_per_step": 0},
        {"num_generations_per_prompt": 0},
        {"max_new_tokens": 0},
        {"group_length_correlation": 1.5},
        {"unknown": 1},
    ],
)
def test_config_validation(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _cfg(**overrides)


def test_config_builds_from_models() -> None:
    cfg = WorkloadConfig(
        num_prompts_per_step=2,
        num_generations_per_prompt=3,
        prompt_length=FixedLength(tokens=4),
        response_length=LognormalLength(mean_tokens=50, sigma=0.3),
        max_new_tokens=64,
    )
    assert cfg.num_sequences_per_step == 6
    assert sample_batch(cfg, np.random.default_rng(0)).num_sequences == 6
