"""`rlsim validate`: cases compute, report published vs simulated, and fail honestly."""

from __future__ import annotations

from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.validation import CASE_NAMES, cases, run_validation


def test_case_list_matches_the_names():
    assert [c.name for c in cases()] == list(CASE_NAMES)


def test_leviathan_case_passes_within_three_percent():
    (r,) = run_validation(["leviathan_batch1"])
    assert r.passed and abs(r.delta_pct) < 3.0


def test_cli_prints_published_simulated_delta_and_result():
    result = CliRunner().invoke(app, ["validate", "--case", "leviathan_batch1", "--case", "vllm_v1_llama8b_bs1_tpot_ms"])
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["case", "published", "simulated", "delta", "result", "tolerance"]
    assert any(line.startswith("leviathan_batch1") and " pass " in line for line in lines)
    assert result.stdout.rstrip().endswith("failed")
    assert result.exit_code in (0, 1)


def test_unknown_case_is_a_one_line_error():
    result = CliRunner().invoke(app, ["validate", "--case", "nope"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --case = 'nope' is not a validation case (cases: 8b_sync_generation_share")
