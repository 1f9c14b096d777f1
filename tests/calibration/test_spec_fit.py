"""rlsim calibrate spec: reading the measured decomposition, the fit and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlsim.calibration.spec import (default_source, fit_all, identified_k, read_decomposition, read_legacy_tpot,
                                    write_section)
from rlsim.cli import app
from rlsim.errors import CalibrationError
from rlsim.hardware import load_profile

pytestmark = pytest.mark.skipif(not default_source().is_file(),
                                reason="../shared/reference/spec_decode_measured.md is absent")


def test_reads_the_decomposition_table():
    dec = read_decomposition()
    assert dec.target == {"tokens_in_kv_cache": 3.93e-8, "num_batched_tokens": 2.10e-5, "const": 5.89e-3}
    assert dec.eagle_draft["const"] == 2.14e-3 and dec.overhead_s == 1.21e-3
    assert dec.ngram_fraction_of_verify == pytest.approx(0.0059)


def test_unreadable_term_names_the_file(tmp_path: Path):
    bad = tmp_path / "m.md"
    bad.write_text("| target forward | `3 x apples + 1` |\n| n-gram drafting | `1 % of the verify pass` |\n")
    with pytest.raises(CalibrationError) as err:
        read_decomposition(bad)
    assert str(err.value) == f"{bad}: cannot read term '3 x apples' (expected 'coef x tokens_in_kv_cache|num_batched_tokens|num_spec_tokens' or a constant)"


def test_fit_reproduces_the_profile_and_beats_the_model_before():
    hw = load_profile("h100_sxm")
    params, report = fit_all(hw, read_decomposition(), read_legacy_tpot())
    sp = hw.speculation
    for name, value in params.items():
        assert getattr(sp, name) == pytest.approx(value, rel=1e-3), name  # the shipped values are this fit
    t = report["terms"]
    for term in ("target", "overhead", "ngram", "eagle3_round"):
        assert t[term]["in_sample"]["median_abs_pct_err"] < t[term]["before"]["median_abs_pct_err"], term
    assert t["target"]["leave_one_batch_out"]["max_abs_pct_err"] < 15.0
    assert t["eagle3_round"]["in_sample"]["max_abs_pct_err"] < 20.0
    # drafting: fitted at the k the decomposition identifies, held out by batch and by context
    assert t["draft"]["identified_k"] == 2 and params["draft_step_us"] == 0.0
    assert t["draft"]["leave_one_batch_out"]["max_abs_pct_err"] < 15.0
    assert t["draft"]["leave_one_context_out"]["max_abs_pct_err"] < 15.0


def test_identified_k_reads_the_drafting_kv_coefficient_as_forwards_per_round():
    dec = read_decomposition()
    # one KV read of a 1-layer head at the target's per-layer rate: 3.93e-8 / 32 s per token
    assert identified_k(dec, 32, 1, 4096.0, 4096.0) == 2  # 2.38e-9 / 1.23e-9 = 1.94 reads
    assert identified_k(dec, 32, 1, 4096.0, 1024.0) == 8  # a head with a quarter of the KV: 4x the reads
    assert identified_k(dec, 32, 2, 4096.0, 4096.0) == 1  # never below 1


def test_cli_prints_the_table_and_writes_the_section(tmp_path: Path):
    prof = tmp_path / "p.yaml"
    prof.write_text(Path(load_profile("h100_sxm").source).read_text())
    result = CliRunner().invoke(app, ["calibrate", "spec", "--profile", str(prof), "--write"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[:2] == ["term", "before"]
    assert load_profile(str(prof)).speculation == load_profile("h100_sxm").speculation


def test_write_section_replaces_an_existing_block(tmp_path: Path):
    prof = tmp_path / "p.yaml"
    prof.write_text("name: x\nspeculation:\n  draft_round_us: 1\nother: 2\n")
    write_section(prof, {"verify_us_per_draft_token": 1.0, "draft_round_us": 2.0, "draft_step_us": 0.0,
                         "draft_seq_us": 0.0, "spec_host_us": 3.0, "ngram_round_us": 1.0, "ngram_seq_us": 0.0,
                         "ngram_us_per_draft_token": 0.2, "ngram_ns_per_context_token": 0.1},
                  {"terms": {t: {"in_sample": {"median_abs_pct_err": 1, "max_abs_pct_err": 2},
                                 "leave_one_batch_out": {"max_abs_pct_err": 3}} for t in ("target", "draft", "overhead", "ngram")}},
                  "0.11.1")
    text = prof.read_text()
    assert text.count("speculation:") == 1 and "other: 2" in text and "draft_round_us: 2" in text
