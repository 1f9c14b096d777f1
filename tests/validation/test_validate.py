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
    assert lines[0].split() == ["case", "published", "simulated", "delta", "result", "role", "tolerance"]
    assert any(line.startswith("leviathan_batch1") and " pass " in line and " independent " in line for line in lines)
    assert "passed, " in result.stdout and result.stdout.rstrip().endswith("independent = a prediction)")
    assert result.exit_code in (0, 1)


def test_unknown_case_is_a_one_line_error():
    result = CliRunner().invoke(app, ["validate", "--case", "nope"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --case = 'nope' is not a validation case (cases: 8b_sync_generation_share")


def test_cases_say_which_are_calibration():
    roles = {c.name: c.role for c in cases() if c is not None}
    assert roles["eagle3_llama8b_bs1_speedup"] == "calibration"  # legacy_draft_step_us is fitted on it
    assert roles["8b_sync_generation_share"] == "calibration"    # workload chosen to match it
    assert roles["8b_sync_generation_speedup"] == "independent"
    assert set(roles.values()) == {"calibration", "independent"}


def test_eagle3_batch1_case_passes_with_shipped_defaults():
    (r,) = run_validation(["eagle3_llama8b_bs1_speedup"])
    assert r.passed, r.simulated
