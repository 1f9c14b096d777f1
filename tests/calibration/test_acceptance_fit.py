"""rlsim calibrate acceptance: the fitted bursty models reproduce the measured traces' summary."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from rlsim.calibration.acceptance import (CATALOG, RESPONSE_TOKENS, default_traces, load_fitted, read_traces,
                                          simulate_request_al)
from rlsim.errors import CalibrationError

pytestmark = pytest.mark.skipif(not default_traces().is_file(),
                                reason="../shared/reference/acceptance_llama31_8b_h100.csv is absent")


def test_every_fitted_model_matches_al_within_3pct_for_every_k():
    traces = read_traces()
    assert len(traces) == 8
    for (dataset, method), rows in traces.items():
        m = load_fitted(f"{dataset}/{method}")
        for r in rows:
            assert m.mean_acceptance_length(r["k"]) == pytest.approx(r["al"], rel=0.03), (dataset, method, r["k"])


def test_catalog_errors_meet_the_spread_target():
    errors = yaml.safe_load(CATALOG.read_text())["errors"]
    assert max(abs(e["spread_err_pct"]) for per_k in errors.values() for e in per_k.values()) < 20.0


def test_ngram_is_bursty_and_its_spread_is_reproduced():
    (row,) = [r for r in read_traces()[("instructcoder", "ngram")] if r["k"] == 3]
    m = load_fitted("instructcoder/ngram")
    assert m.hard_rate == 0.0 and m.easy_rate > 0.9  # no match -> nothing; a match -> long copy runs
    al = simulate_request_al(m, 3, tokens=RESPONSE_TOKENS)
    p10, p90 = np.percentile(al, [10, 90])
    assert (p90 - p10) == pytest.approx(row["p90"] - row["p10"], rel=0.2)


def test_unknown_model_names_the_catalog():
    with pytest.raises(CalibrationError) as err:
        load_fitted("mtbench/eagle")
    assert str(err.value).startswith(f"{CATALOG}: no fitted acceptance model 'mtbench/eagle' (have: gsm8k/eagle, ")
