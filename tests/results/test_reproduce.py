"""Reproducible result folders: scenario.resolved.yaml + run.json, and `rlsim run --from DIR`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.results.reproduce import git_commit, load_reproduction

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
RL_TINY = ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2", "rl.num_steps=3",
           "workload.response_length.mean_tokens=300", "model.name=Qwen3-4B"]


def _run(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_rollout_folder_reruns_byte_identically(small_scenario, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    text = _run(["run", str(small_scenario), "--out", str(a), "--set", "rollout.engine.max_num_seqs=16", "--seed", "7"])
    assert text.startswith("rollout: small: Qwen3-0.6B on 2 x h100_sxm (seed 7)")
    resolved = yaml.safe_load((a / "scenario.resolved.yaml").read_text())
    assert resolved["rollout"]["engine"]["max_num_seqs"] == 16 and resolved["seed"] == 7
    info = json.loads((a / "run.json").read_text())
    assert info["scenario"]["overrides"] == ["rollout.engine.max_num_seqs=16"] and info["seed"] == 7
    assert info["command"]["argv"] and info["command"]["options"] == {"seeds": 1, "baseline": True,
                                                                      "baseline_mode": "no-spec"}
    assert info["rlsim_version"] != "unknown" and info["git_commit"] == git_commit()[0]
    hp = info["hardware_profile"]
    assert hp["name"] == "h100_sxm" and len(hp["sha256"]) == 64 and hp["calibration_status"] == "calibrated"
    _run(["run", "--from", str(a), "--out", str(b)])
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    assert (a / "scenario.resolved.yaml").read_bytes() == (b / "scenario.resolved.yaml").read_bytes()


def test_rl_folder_reruns_byte_identically_and_names_the_resolved_model(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["run", str(REPO / "scenarios" / "qwen8b_async.yaml"), "--no-baseline", "--out", str(a)]
    for s in RL_TINY:
        args += ["--set", s]
    text = _run(args)
    assert "RL: qwen8b_async: Qwen3-4B on gb200" in text  # the header names the resolved model, not the file's
    _run(["run", "--from", str(a), "--out", str(b)])
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    loaded, info = load_reproduction(a)
    assert loaded.scenario.model.name == "Qwen3-4B" and info["command"]["options"]["baseline"] is False


def _error(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "Traceback" not in r.output
    return r.stderr.strip()


def test_from_errors(tmp_path, small_scenario):
    assert _error(["run", "--from", str(tmp_path)]) == (
        f"error: --from = {str(tmp_path)!r}: scenario.resolved.yaml not found (write one with rlsim run --out)")
    assert _error(["run"]) == "error: rlsim run: give a SCENARIO file or --from DIR"
    assert _error(["run", str(small_scenario), "--from", str(tmp_path)]) == (
        f"error: rlsim run: give SCENARIO ({small_scenario}) or --from {tmp_path}, not both")
