"""Tiny sweep settings shared by the analysis tests (importable: conftest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYNC = REPO / "scenarios" / "qwen8b_sync.yaml"
TINY = ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=4", "rl.num_steps=3",
        "workload.response_length.mean_tokens=800"]
K = "rollout.engine.speculative_config.num_speculative_tokens"
ACC = "rollout.engine.speculative_config.acceptance.rate"
BATCH = "workload.num_prompts_per_step"
GRID = {K: [1, 3], ACC: [0.6, 0.9], BATCH: [2, 4]}

