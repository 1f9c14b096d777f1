"""End-to-end validation cases: which are independent checks and which calibration cases."""

import pytest

from rlsim.validation import Case
from rlsim.validation_e2e import E2E_CASES, _how, e2e_cases, measurements_path


def test_assumed_overheads_are_an_independent_check():
    assert _how(None, "openai/gpt-oss-120b") == \
        "engine overheads assumed, not fitted to these runs: an independent check"


def test_overheads_fitted_without_the_model_are_an_independent_check():
    fit = {"held_out_params": {"openai/gpt-oss-120b": {"step_us": 800.0}}}
    assert _how(fit, "openai/gpt-oss-120b") == "engine overheads fitted without gpt-oss-120b: an independent check"


def test_overheads_fitted_with_the_model_are_a_calibration_case():
    fit = {"held_out_params": {"meta-llama/Llama-3.1-70B": {"step_us": 800.0}}}
    assert _how(fit, "openai/gpt-oss-120b") == "engine overheads fitted on these runs: a calibration case"


def test_every_case_finds_its_measured_row():
    if not measurements_path().is_file():
        pytest.skip(f"{measurements_path()} absent (the ../shared reference data)")
    found = e2e_cases(Case)
    assert [c.name for c in found] == [c[0] for c in E2E_CASES]
    for c in found:
        assert c.low == pytest.approx(0.8 * c.published) and c.high == pytest.approx(1.2 * c.published)
