"""`rlsim run --out`: files, schemas, and byte-identical summaries for the same seed."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from rlsim.cli import app

runner = CliRunner()


def _run(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_out_dir_has_every_file_with_the_contract_keys(small_scenario, tmp_path):
    out = tmp_path / "o"
    text = _run(["run", str(small_scenario), "--out", str(out)])
    assert "batch wall time (s)" in text and "time after 90% finished (s)" in text and "preemptions" in text
    summary = json.loads((out / "summary.json").read_text())
    for key in ("scenario", "seed", "rollout_time_s", "generated_tokens", "output_tokens_per_s",
                "num_sequences", "preemptions", "tail_time_s", "mean_running_batch", "peak_running_batch"):
        assert key in summary
    assert summary["scenario"] == "small" and summary["seed"] == 3
    seqs = pd.read_parquet(out / "sequences.parquet")
    assert len(seqs) == summary["num_sequences"]
    assert {"seq_id", "group_id", "engine", "prompt_len", "response_len", "finish_s", "preemptions"} <= set(seqs.columns)
    trace = json.loads((out / "trace.json").read_text())
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert slices and all(e["dur"] >= 0 for e in slices)
    assert {e["tid"] for e in slices} == {0, 1}
    assert (out / "running_batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_byte_identical_summary_and_other_seed_differs(small_scenario, tmp_path):
    _run(["run", str(small_scenario), "--out", str(tmp_path / "a")])
    _run(["run", str(small_scenario), "--out", str(tmp_path / "b")])
    _run(["run", str(small_scenario), "--out", str(tmp_path / "c"), "--seed", "4"])
    a, b, c = ((tmp_path / d / "summary.json").read_bytes() for d in "abc")
    assert a == b
    assert a != c
    assert json.loads(c)["seed"] == 4


def test_json_flag_prints_the_summary(small_scenario):
    out = _run(["run", str(small_scenario), "--json"])
    assert json.loads(out)["num_sequences"] == 32


def test_profiles_and_models_commands():
    assert "h100_sxm" in _run(["profiles", "list"])
    shown = json.loads(_run(["profiles", "show", "gb200"]))
    assert shown["name"] == "gb200"
    listing = _run(["models", "list"])
    assert "Qwen3-235B-A22B" in listing and "EAGLE3-Llama-3.1-8B" in listing
    model = json.loads(_run(["models", "show", "Qwen3-8B"]))
    assert model["name"] == "Qwen3-8B"


def test_help_explains_every_option():
    text = _run(["run", "--help"])
    for opt in ("--set", "--out", "--seed", "--json"):
        assert opt in text
