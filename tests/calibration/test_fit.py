"""Fitting: synthetic measurements from known parameters are recovered (within 2 %); the
fitted profile stays physical; grouped folds never split a shape."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from rlsim.calibration.fit import cv_groups, errors_of, fit_key, fit_profile, key_specs, set_params
from rlsim.calibration.predict import predict
from rlsim.calibration.readers import _tidy
from rlsim.hardware import load_profile
from rlsim.hardware.profile import HardwareProfile


def _gemm_rows(dtype: str) -> pd.DataFrame:
    ms = [1, 4, 16, 64, 256, 1024, 4096, 16384]
    nks = [(1024, 1024), (4096, 4096), (6144, 4096), (4096, 12288), (8192, 8192), (512, 2048)]
    rows = [{"op_class": "gemm", "dtype": dtype, "m": m, "n": n, "k": k, "measured_s": 1.0} for m, (n, k) in itertools.product(ms, nks)]
    return _tidy(pd.DataFrame(rows))


def _synthetic(data: dict, spec, truth: list[float], df: pd.DataFrame) -> pd.DataFrame:
    hw = HardwareProfile.model_validate(set_params(data, spec.params, np.array(truth)))
    return df.assign(measured_s=predict(hw, df))


def _assert_recovers(data: dict, df: pd.DataFrame, key: str, truth: list[float]):
    """Measurements generated from ``truth`` (``key``'s parameters in order) are fitted back
    within 2 %; returns the fit."""
    spec = next(s for s in key_specs(df) if s.key == key)
    df = _synthetic(data, spec, truth, df)
    r = fit_key(data, spec, df, cv=False)
    np.testing.assert_allclose([r.params[p.name] for p in spec.params], truth, rtol=0.02)
    return r


def test_gemm_recovers_known_parameters():
    data = load_profile("h100_sxm").model_dump()
    df = _gemm_rows("fp8")
    spec = next(s for s in key_specs(df) if s.key == "gemm:fp8")
    # compute_eff, mem_eff, latency_us, k_loop_ns, overlap_loss, act_quant_row_ns, act_quant_pass_ns
    truth = [0.71, 0.87, 5.0, 0.6, 0.3, 2.5, 4.0]
    df = _synthetic(data, spec, truth, df)
    start = set_params(data, spec.params, np.array([0.5, 0.6, 2.0, 0.2, 0.1, 1.0, 1.0]))
    r = fit_key(start, spec, df, cv=False)
    got = [r.params[p.name] for p in spec.params]
    np.testing.assert_allclose(got, truth, rtol=0.02)
    assert r.in_sample["median_abs_pct_err"] < 0.1


def test_moe_recovers_known_parameters_and_block_m():
    data = load_profile("b200_sxm").model_dump()
    rows = [{"op_class": "moe", "dtype": "fp8", "num_tokens": t, "hidden_size": h, "inter_size": i, "num_experts": 128,
             "topk": 8, "moe_tp": tp, "moe_ep": ep, "distribution": "balanced", "measured_s": 1.0}
            for t in (1, 4, 16, 64, 256, 1024, 4096, 8200, 16384) for h, i in ((2048, 768), (4096, 1536))
            for tp, ep in ((1, 1), (2, 1), (1, 4))]
    df = _tidy(pd.DataFrame(rows))
    spec = next(s for s in key_specs(df) if s.key == "moe:fp8")
    data["efficiency"]["moe"]["fp8"]["block_m_tokens"] = 32
    # compute_eff, mem_eff, latency_us, per_routed_token_us, per_expert_us
    truth = [0.45, 0.75, 15.0, 0.0015, 0.8]
    df = _synthetic(data, spec, truth, df)
    data["efficiency"]["moe"]["fp8"]["block_m_tokens"] = 128  # the fit must find 32 again
    r = fit_key(data, spec, df, cv=False)
    np.testing.assert_allclose([r.params[p.name] for p in spec.params], truth, rtol=0.02)
    assert r.data["efficiency"]["moe"]["fp8"]["block_m_tokens"] == 32


def _attention_rows(op: str, dtype: str = "bf16", window: int = 0) -> pd.DataFrame:
    rows = [{"op_class": op, "dtype": dtype, "batch_size": b, "seq_len": s, "num_heads": h,
             "num_kv_heads": kv, "head_dim": d, "window_size": window, "measured_s": 1.0}
            for b, s, (h, kv, d) in itertools.product([1, 4, 16, 64, 256, 1024], [16, 128, 1024, 4096, 16384],
                                                      [(32, 8, 128), (8, 2, 128), (64, 8, 128), (4, 1, 128), (64, 8, 64),
                                                       (8, 1, 64)])]
    return _tidy(pd.DataFrame(rows))


def test_fp8_kv_attention_recovers_its_own_parameters_and_leaves_bf16_alone():
    """The fp8-KV keys fit decode_attention_fp8 / prefill_attention_fp8, starting from a profile
    without them (copied from the bf16 entries), and never move the bf16 parameters; window rows
    are not fitted."""
    data = load_profile("b200_sxm").model_dump()
    data["efficiency"]["decode_attention_fp8"] = data["efficiency"]["prefill_attention_fp8"] = None
    bf16 = (data["efficiency"]["decode_attention"], data["efficiency"]["prefill_attention"])
    dec = pd.concat([_attention_rows("generation_attention", "fp8"), _attention_rows("generation_attention", "fp8", 128)])
    pre = _attention_rows("context_attention", "fp8")
    truth_dec, truth_pre = [0.6, 2.5, 12.0, 0.5], [0.5, 14.0, 2.0, 3.0, 120.0, 0.4, 0.3]
    start = {**data, "efficiency": {**data["efficiency"], "decode_attention_fp8": dict(bf16[0]),
                                    "prefill_attention_fp8": dict(bf16[1])}}
    for df, key, truth in ((dec, "generation_attention:fp8", truth_dec), (pre, "context_attention:fp8", truth_pre)):
        df = df.reset_index(drop=True)
        spec = next(s for s in key_specs(df) if s.key == key)
        assert spec.select(df).sum() == (df["window_size"] == 0).sum()
        df = _synthetic(start, spec, truth, df)
        r = fit_key(start, spec, df, cv=False)
        np.testing.assert_allclose([r.params[p.name] for p in spec.params], truth, rtol=0.02)
        assert (r.data["efficiency"]["decode_attention"], r.data["efficiency"]["prefill_attention"]) == bf16
    fitted, results = fit_profile(HardwareProfile.model_validate(data), _synthetic(
        start, next(s for s in key_specs(pre) if s.key == "context_attention:fp8"), truth_pre, pre),
        keys=["context_attention:fp8"], cv=False)
    assert fitted["efficiency"]["prefill_attention_fp8"]["compute_eff"] == pytest.approx(0.5, rel=0.02)


def test_new_moe_dtypes_fit_their_own_entries():
    """int4 rows of any group size fit moe.int4; mxfp4 rows moe.mxfp4 (both W4A16, bf16 peak)."""
    data = load_profile("h100_sxm").model_dump()
    data["efficiency"]["moe"]["int4"] = data["efficiency"]["moe"]["mxfp4"] = None
    rows = [{"op_class": "moe", "dtype": d, "num_tokens": t, "hidden_size": 2880, "inter_size": 2880, "num_experts": 128,
             "topk": 4, "moe_tp": tp, "moe_ep": 1, "distribution": "balanced", "measured_s": 1.0}
            for d in ("int4_g32", "mxfp4") for t in (1, 4, 16, 64, 256, 1024, 4096, 16384) for tp in (1, 2, 4)]
    df = _tidy(pd.DataFrame(rows))
    keys = [s.key for s in key_specs(df)]
    assert "moe:int4" in keys and "moe:mxfp4" in keys
    start = {**data, "efficiency": {**data["efficiency"], "moe": {**data["efficiency"]["moe"],
                                                                  "int4": dict(data["efficiency"]["moe"]["bf16"]),
                                                                  "mxfp4": dict(data["efficiency"]["moe"]["bf16"])}}}
    spec = next(s for s in key_specs(df) if s.key == "moe:int4")
    assert spec.select(df).sum() == 24
    truth = [0.6, 0.3, 20.0, 0.002, 0.5]  # memory-bound at small T, compute-bound at large T
    r = fit_key(start, spec, _synthetic(start, spec, truth, df), cv=False)
    np.testing.assert_allclose([r.params[p.name] for p in spec.params], truth, rtol=0.02)


def test_prefill_attention_recovers_known_parameters():
    data = load_profile("b200_sxm").model_dump()
    # compute_eff, latency_us, tile_us, tok_head_ns, tok_kvhead_ns, crit_eff, head_dim_frac
    _assert_recovers(data, _attention_rows("context_attention"), "context_attention:bf16",
                     [0.62, 12.0, 3.0, 2.0, 90.0, 0.3, 0.4])


def test_decode_attention_recovers_known_parameters():
    data = load_profile("gb200").model_dump()
    # mem_eff, cta_us, latency_us, head_dim_frac, decode_attention_l2_speedup
    _assert_recovers(data, _attention_rows("generation_attention"), "generation_attention:bf16", [0.85, 1.6, 10.0, 0.6, 1.3])


def test_custom_all_reduce_recovers_known_parameters():
    data = load_profile("h100_sxm").model_dump()
    rows = [{"op_class": "custom_all_reduce", "dtype": "bf16", "num_gpus": n, "nbytes": 2.0 ** e, "backend": be,
             "measured_s": 1.0} for n in (2, 4, 8) for e in range(10, 24) for be in ("graph", "eager")]
    df = _tidy(pd.DataFrame(rows))
    # alpha, barrier per peer, one-shot link eff, pass time, two-shot extra, two-shot eff, eager floor / extra / per peer
    r = _assert_recovers(data, df, "custom_all_reduce", [4.0, 0.15, 0.65, 1.3, 5.0, 0.7, 21.0, 6.0, 5.5])
    assert list(r.params)[-1].endswith("eager_twoshot_floor_per_peer_us")


def test_fit_keeps_parameters_physical():
    data = load_profile("h100_sxm").model_dump()
    df = _gemm_rows("fp8")
    rng = np.random.default_rng(1)
    df["measured_s"] = rng.uniform(1e-6, 1e-2, len(df))  # nonsense data: bounds must hold
    spec = next(s for s in key_specs(df) if s.key == "gemm:fp8")
    r = fit_key(data, spec, df, cv=False)
    HardwareProfile.model_validate(r.data)  # validators: eff in (0, 1], latencies >= 0
    for p in spec.params:
        lo, hi = p.bounds()
        assert lo <= r.params[p.name] <= hi


def test_folds_group_by_shape():
    df = _gemm_rows("bf16")
    folds = cv_groups(df, ["n", "k"], 5)
    per_shape = df.assign(f=folds).groupby(["n", "k"])["f"].nunique()
    assert (per_shape == 1).all()
    assert len(set(folds)) == 5
    np.testing.assert_array_equal(folds, cv_groups(df, ["n", "k"], 5))  # deterministic


def test_held_out_error_reported():
    data = load_profile("h100_sxm").model_dump()
    df = _gemm_rows("bf16")
    spec = next(s for s in key_specs(df) if s.key == "gemm:bf16")
    df = _synthetic(data, spec, [0.7, 0.9, 4.0, 0.5, 0.2, 0.0, 0.0], df)
    df["measured_s"] *= np.exp(np.random.default_rng(0).normal(0, 0.05, len(df)))
    r = fit_key(data, spec, df, n_folds=3)
    assert r.held_out["n"] == len(df)
    assert 1.0 < r.in_sample["median_abs_pct_err"] < 8.0
    assert r.held_out["median_abs_pct_err"] >= r.in_sample["median_abs_pct_err"] * 0.8


def test_errors_of():
    e = errors_of(np.array([1.1, 0.9, np.nan, 2.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    assert e["n"] == 3 and e["median_abs_pct_err"] == pytest.approx(10.0)


def test_two_protocol_fits_are_ordered_low_latency_first():
    """min(LL, Simple) is symmetric in its two (alpha, eff) pairs: the fit orders each group
    size's pair so that large_alpha_us >= alpha_us (what extrapolation to other sizes assumes)."""
    from rlsim.calibration.fit import Param, _canonical_protocols

    base = ("collectives", "nccl", "all_reduce")
    ps = [Param(base + (name, n), "nonneg" if "alpha" in name else "eff")
          for name in ("alpha_us", "busbw_eff", "large_alpha_us", "large_busbw_eff") for n in (2, 4)]
    x = np.array([10.0, 60.0, 0.2, 0.8, 25.0, 16.0, 0.6, 0.26])  # n=4's pair swapped
    np.testing.assert_array_equal(_canonical_protocols(ps, x), [10.0, 16.0, 0.2, 0.26, 25.0, 60.0, 0.6, 0.8])
