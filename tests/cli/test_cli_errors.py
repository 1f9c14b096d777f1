"""Bad input: one line naming file, field path, value and rule; exit code 2; no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.cli import app

runner = CliRunner()


@pytest.fixture
def scen(tmp_path: Path, repo: Path, monkeypatch) -> str:
    shutil.copy(repo / "scenarios" / "qwen8b_rollout.yaml", tmp_path / "s.yaml")
    monkeypatch.chdir(tmp_path)
    return "s.yaml"


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


CASES = [
    (["--set", "rollout.engine.tensor_paralel_size=2"],
     "error: s.yaml: rollout.engine.tensor_paralel_size = 2 is not a known key (did you mean 'tensor_parallel_size'?)"),
    (["--set", "rollout.engine.max_num_seqs=abc"],
     "error: s.yaml: rollout.engine.max_num_seqs = 'abc' input should be a valid integer"),
    (["--set", "rollout.engine.tensor_parallel_size=3"],
     "error: s.yaml: rollout.engine.tensor_parallel_size = 3 does not divide num_attention_heads = 32"),
    (["--set", "model.name=Qwen3-235B-A22B", "--set", "model.dtype=bf16"],
     "error: s.yaml: rollout.engine.tensor_parallel_size = 1 is too small: Qwen3-235B-A22B weights need 470.2 GB "
     "per GPU (bf16) + 2 GiB reserve, but h100_sxm x gpu_memory_utilization 0.85 leaves 73.0 GB "
     "(raise tensor_parallel_size or use fp8)"),
    (["--set", "rollout.engine.gpu_memory_utilization=0.24"],
     "error: s.yaml: rollout.engine.gpu_memory_utilization = 0.24 leaves KV cache for 14144 tokens per engine, "
     "less than one max-length sequence (max_model_len = 18432)"),
    (["--set", "cluster.hardware=h100"],
     "error: s.yaml: cluster.hardware = 'h100' is not a known profile (did you mean 'h100_sxm'?; "
     "known: b200_sxm, gb200, h100_sxm, h200_sxm)"),
    (["--set", "cluster.hardware=profiles/mi300x.yaml"],
     "error: s.yaml: cluster.hardware = 'profiles/mi300x.yaml': file not found"),
    (["--set", "workload.response_length.mean_tokens=-5"],
     "error: s.yaml: workload.response_length.mean_tokens = -5 input should be greater than 0"),
    (["--set", "workload.max_new_tokens=-1"],
     "error: s.yaml: workload.max_new_tokens = -1 input should be greater than or equal to 1"),
    (["--set", "rollout.num_gpus=64"],
     "error: s.yaml: rollout.num_gpus = 64 exceeds cluster.num_gpus = 32"),
    (["--set", "rollout.engine.gpu_memory_utilization=1.5"],
     "error: s.yaml: rollout.engine.gpu_memory_utilization = 1.5 input should be less than or equal to 1"),
    (["--set", "rollout.engine.max_num_batched_tokens=100"],
     "error: s.yaml: rollout.engine.max_num_batched_tokens = 100 must be >= max_num_seqs = 256 (vLLM's rule)"),
    (["--set", "workload.prompt_length={kind: fixed, tokens: -3}"],
     "error: s.yaml: workload.prompt_length.tokens = -3 input should be greater than or equal to 1"),
    (["--set", "cluster=8"],
     "error: s.yaml: cluster = 8 input should be a valid dictionary or instance of ClusterConfig"),
    (["--set", "rollout.engine.tensor_parallel_size=2", "--set", "cluster.num_gpus=3"],
     "error: s.yaml: cluster.num_gpus = 3 is not a multiple of rollout.engine.tensor_parallel_size = 2"),
]


@pytest.mark.parametrize("args,expected", CASES, ids=[c[0][-1][:40] for c in CASES])
def test_bad_values_give_one_exact_line(scen, args, expected):
    assert _error(["run", scen, *args]) == expected


def test_unknown_model_suggests_the_closest(scen):
    line = _error(["run", scen, "--set", "model.name=Qwen9-8B"])
    assert line.startswith("error: s.yaml: model.name = 'Qwen9-8B' is not a catalog model or a file (did you mean 'Qwen3-8B'?;")


def test_missing_scenario_file(scen):
    assert _error(["run", "nope.yaml"]) == "error: scenario = 'nope.yaml': file not found"


def test_yaml_syntax_error_names_file_and_line(scen, tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\n  bad: [\n")
    assert _error(["run", "bad.yaml"]) == "error: bad.yaml: line 2 invalid YAML: mapping values are not allowed here"


def test_missing_required_section(scen, tmp_path):
    (tmp_path / "m.yaml").write_text("name: x\nmodel: {name: Qwen3-8B}\nworkload: {num_prompts_per_step: 1, "
                                     "num_generations_per_prompt: 1, prompt_length: {kind: fixed, tokens: 5}, "
                                     "response_length: {kind: fixed, tokens: 5}, max_new_tokens: 5}\n")
    assert _error(["run", "m.yaml"]) == "error: m.yaml: cluster is required"


def test_malformed_set_expression(scen):
    assert _error(["run", scen, "--set", "seed"]) == "error: --set 'seed' must look like path.to.field=value"


def test_unknown_profile_on_profiles_show():
    assert _error(["profiles", "show", "a100"]).startswith("error: profile = 'a100' is not a known profile")


def test_duplicate_yaml_key_is_an_error(scen, tmp_path):
    (tmp_path / "d.yaml").write_text("name: x\nseed: 1\nseed: 2\n")
    assert _error(["run", "d.yaml"]) == "error: d.yaml: line 3 duplicate key 'seed' (first given on line 2)"
