"""End-to-end calibration: traces reproduce the simulation, the fit recovers known overheads."""

from __future__ import annotations

import pytest

from rlsim.calibration.e2e import calibrate_e2e, error_report, simulate_rows
from rlsim.calibration.e2e_fit import FITTED, PARAMS, trace_times
from rlsim.serving.measured import MeasuredRun

TRUE_ASYNC = {"step_us": 1000.0, "per_seq_us": 4.0, "per_prefill_token_us": 0.02, "async_exposed_us": 600.0,
              "async_exposed_per_seq_us": 5.0, "moe_routing_us_per_layer": 25.0, "api_server_us": 1500.0,
              "api_server_us_per_prompt_token": 3.0, "api_server_cv": 0.0}
TRUE_SYNC = TRUE_ASYNC | {"step_us": 2500.0, "per_seq_us": 12.0}


def _run(i: int, c: int, isl: int, version: str, model: str = "Qwen/Qwen3-8B") -> MeasuredRun:
    return MeasuredRun(f"r{i}", "h100_sxm", model, version, "bf16", "", "", isl, 128, c, 1, 1, 1, 1, 1, 1.0, 1.0)


def _rows() -> list[MeasuredRun]:
    out = []
    for i, (c, isl, v) in enumerate([(2, 512, "0.19.0"), (8, 2048, "0.19.0"), (32, 1024, "0.19.0"), (64, 256, "0.19.0"),
                                     (4, 512, "0.11.0"), (16, 1024, "0.11.0"), (48, 256, "0.11.0")]):
        out.append(_run(i, c, isl, v))
    out += [_run(10 + i, c, 512, "0.19.0", "Qwen/Qwen3-30B-A3B") for i, c in enumerate((2, 16))]
    return out


def _synthetic(true: dict) -> list[MeasuredRun]:
    """Measurements made by the simulator itself with known overheads."""
    rows = _rows()
    sims = simulate_rows(rows, overheads={r.id: true for r in rows})
    return [MeasuredRun(**{**r.__dict__, "ttft_ms": s.sim_ttft_ms, "tpot_ms": s.sim_tpot_ms}) for r, s in zip(rows, sims)]


def test_trace_reproduces_the_simulation():
    rows = _rows()[:2]
    res = simulate_rows(rows, record=True, overheads={r.id: TRUE_ASYNC for r in rows})
    for r in res:
        ttft, tpot = trace_times(r.trace, TRUE_ASYNC)
        assert tpot == pytest.approx(r.sim_tpot_ms, rel=1e-9)
        assert ttft == pytest.approx(r.sim_ttft_ms, rel=1e-3)  # the API server's time rides on the send


def test_fit_recovers_known_overheads_within_2_percent():
    truth = {k: TRUE_SYNC[k] if k in ("step_us", "per_seq_us") else TRUE_ASYNC[k] for k in PARAMS} | {"api_server_cv": 0.0}
    measured = _synthetic(truth)
    start = {k: 0.5 * v if k in FITTED else v for k, v in truth.items()}
    params, fit, results = calibrate_e2e(measured, "h100_sxm", start, rounds=3)
    assert fit.free == FITTED
    for k in FITTED:
        assert params[k] == pytest.approx(truth[k], rel=0.02), (k, params[k], truth[k])
    for k in set(PARAMS) - set(FITTED):
        assert params[k] == start[k]  # not fitted: kept
    rep = error_report(results)["pooled"]
    assert rep["tpot_median_abs_pct_err"] < 0.5


