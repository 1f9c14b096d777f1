"""Setting warnings: rollout TP above the KV-head count, per-position acceptance extended beyond
its measured positions; GPU-name suggestions prefer the family."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlsim.config import load_scenario
from rlsim.errors import ConfigError
from rlsim.hardware import load_profile
from rlsim.sim import resolve
from rlsim.sim.config_warnings import setting_warnings
from rlsim.sim.warnings import model_warnings

REPO = Path(__file__).resolve().parents[2]
ROLL = REPO / "scenarios" / "qwen8b_rollout_eagle3.yaml"


def _res(*sets: str):
    return resolve(load_scenario(ROLL, list(sets)))


def test_tp_above_kv_heads():
    res = _res("cluster.num_gpus=16", "rollout.num_gpus=16", "rollout.engine.tensor_parallel_size=16")
    msg = ("rollout.engine.tensor_parallel_size = 16 > Qwen3-8B's 8 KV heads: vLLM replicates each KV head on 2 GPUs, "
           "so the KV cache per GPU does not shrink beyond TP 8")
    assert setting_warnings(res) == [msg] and msg in model_warnings(res)
    assert not any("KV heads" in w for w in setting_warnings(_res("rollout.engine.tensor_parallel_size=8",
                                                                  "cluster.num_gpus=8", "rollout.num_gpus=8")))


def test_per_position_acceptance_extended():
    acc = "rollout.engine.speculative_config.acceptance={kind: per_position, rates: [0.7, 0.5, 0.35]}"
    res = _res(acc, "rollout.engine.speculative_config.num_speculative_tokens=5")
    assert setting_warnings(res) == [
        "acceptance: per_position rates cover 3 positions but num_speculative_tokens = 5: positions 4..5 are "
        "extrapolated geometrically (the last conditional rate repeats), not measured"]
    assert setting_warnings(_res(acc, "rollout.engine.speculative_config.num_speculative_tokens=3")) == []


def test_gpu_suggestion_prefers_the_family():
    with pytest.raises(ConfigError) as e:
        load_profile("b200")
    assert "did you mean 'b200_sxm'?" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_profile("h100")
    assert "did you mean 'h100_sxm'?" in str(e.value)


def test_acceptance_section_names_vllms_definitions():
    from typer.testing import CliRunner

    from rlsim.cli import app

    r = CliRunner().invoke(app, ["run", str(ROLL), "--set", "workload.num_prompts_per_step=2", "--set",
                                 "workload.num_generations_per_prompt=2", "--set", "workload.max_new_tokens=64"])
    assert r.exit_code == 0, r.output
    assert "(vLLM's Avg Draft acceptance rate: accepted / drafted tokens; not the scenario's per-token conditional " \
           "acceptance `rate`)" in r.output
    assert "(vLLM: 1 + accepted / drafts)" in r.output
