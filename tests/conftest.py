"""Shared fixtures: repo paths, a small scenario, the shared/ folder (may be absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def small_scenario(tmp_path: Path) -> Path:
    """A fast Qwen3-0.6B scenario on 2 H100s with KV pressure (preemptions happen)."""
    text = """
name: small
seed: 3
cluster: {hardware: h100_sxm, num_gpus: 2}
model: {name: Qwen3-0.6B}
rollout:
  engine:
    max_num_seqs: 32
    max_num_batched_tokens: 512
    gpu_memory_utilization: 0.9
workload:
  num_prompts_per_step: 8
  num_generations_per_prompt: 4
  prompt_length: {kind: lognormal, mean_tokens: 200, sigma: 0.5, max_tokens: 600}
  response_length: {kind: lognormal, mean_tokens: 400, sigma: 0.8}
  max_new_tokens: 1500
"""
    p = tmp_path / "small.yaml"
    p.write_text(text)
    return p
