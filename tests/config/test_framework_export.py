"""rlsim export vllm / nemo-rl: a scenario as `vllm serve` flags and a NeMo-RL fragment."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.config import load_scenario
from rlsim.config.exporters import nemo_rl_fragment, vllm_serve_command
from rlsim.config.importers import import_config

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_vllm_flags_of_the_235b_scenario():
    cmd = vllm_serve_command(load_scenario(REPO / "scenarios" / "qwen235b_async.yaml"))
    argv = shlex.split(cmd)
    assert argv[:5] == ["vllm", "serve", "Qwen/Qwen3-235B-A22B", "--tensor-parallel-size", "8"]
    for flag, value in (("--max-num-seqs", "256"), ("--max-num-batched-tokens", "8192"), ("--dtype", "bfloat16"),
                        ("--gpu-memory-utilization", "0.9"), ("--block-size", "16")):
        assert argv[argv.index(flag) + 1] == value
    assert "--enable-expert-parallel" in argv and "--enable-prefix-caching" in argv and "--async-scheduling" in argv
    spec = json.loads(argv[argv.index("--speculative-config") + 1])
    assert spec["method"] == "eagle3" and spec["num_speculative_tokens"] == 3 and "acceptance" not in spec


def test_nemo_rl_fragment_round_trips_through_the_importer():
    loaded = load_scenario(REPO / "scenarios" / "qwen8b_async.yaml")
    frag = yaml.safe_load(nemo_rl_fragment(loaded))
    assert frag["grpo"]["async_grpo"] == {"enabled": True, "max_trajectory_age_steps": 1, "in_flight_weight_updates": True}
    assert frag["policy"]["generation"]["colocated"] == {"enabled": False, "resources": {"gpus_per_node": 8, "num_nodes": 2}}
    rep = import_config("nemo-rl", frag, "gb200")
    sc = rep.scenario
    assert rep.unknown == []
    assert sc["model"]["name"] == "Qwen3-8B" and sc["rl"]["pipeline"] == "async"
    assert (sc["cluster"]["num_gpus"], sc["rollout"]["num_gpus"], sc["rl"]["training"]["num_gpus"]) == (32, 16, 16)
    assert sc["rollout"]["engine"]["speculative_config"]["num_speculative_tokens"] == 3


def test_cli_export_with_overrides():
    r = runner.invoke(app, ["export", "vllm", str(REPO / "scenarios" / "qwen8b_async.yaml"), "--set",
                            "rollout.engine.tensor_parallel_size=2"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("vllm serve Qwen/Qwen3-8B --tensor-parallel-size 2 ")
    r = runner.invoke(app, ["export", "sglang", str(REPO / "scenarios" / "qwen8b_async.yaml")])
    assert r.exit_code == 2 and r.stderr.strip() == "error: export: target 'sglang' must be vllm or nemo-rl"
