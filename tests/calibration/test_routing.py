"""Skewed-router factors: interpolation, where the MoE time applies them, and their fit."""

import numpy as np
import pandas as pd
import pytest

from rlsim.calibration.predict import _moe
from rlsim.calibration.routing import DISTRIBUTION, MIN_ROWS, factors_from_ratios, fit_skewed_routing
from rlsim.hardware import load_profile, ops


def _with_factors(hw, key, factors):
    moe = hw.efficiency.moe
    entry = getattr(moe, key).model_copy(update={"skewed_routing": factors})
    return hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update={"moe": moe.model_copy(update={key: entry})})})


def test_factor_is_interpolated_in_log2_and_held_at_the_ends():
    f = {0: 0.8, 2: 1.2}
    got = ops.skewed_routing_factor(f, np.array([0.25, 1.0, 2.0, 4.0, 64.0, 0.0]))
    assert got == pytest.approx([0.8, 0.8, 1.0, 1.2, 1.2, 1.0])
    assert ops.skewed_routing_factor(None, 3.0) == 1.0


def test_a_real_router_is_the_uniform_spread_times_the_factor():
    hw = _with_factors(load_profile("h100_sxm"), "bf16", {0: 0.5, 8: 2.0})
    args = (np.array([8.0, 2048.0]), 128, 8, 4096, 1536, "bf16")
    uniform = ops.moe_layer_time_s(hw, *args, routing="uniform")
    random = ops.moe_layer_time_s(hw, *args, routing="random")
    x = np.array([8.0, 2048.0]) * 8 / 128
    assert random == pytest.approx(uniform * ops.skewed_routing_factor({0: 0.5, 8: 2.0}, x))
    # the benchmark's round-robin rows and the crude skew model are not rescaled
    assert ops.moe_layer_time_s(hw, *args, routing="round_robin") == pytest.approx(
        ops.moe_layer_time_s(load_profile("h100_sxm"), *args, routing="round_robin"))
    assert ops.moe_layer_time_s(hw, *args, routing="random", skew=0.5) == pytest.approx(
        ops.moe_layer_time_s(hw, *args, routing="uniform", skew=0.5))


def test_unknown_routing_is_refused():
    with pytest.raises(ValueError, match="routing = 'zipf'; expected random, uniform or round_robin"):
        ops.moe_layer_time_s(load_profile("h100_sxm"), 8.0, 128, 8, 4096, 1536, "bf16", routing="zipf")


def test_bins_need_enough_rows():
    lx = np.array([0.1] * MIN_ROWS + [3.0] * (MIN_ROWS - 1))
    ratio = np.array([0.9] * MIN_ROWS + [1.3] * (MIN_ROWS - 1))
    assert factors_from_ratios(lx, ratio) == {0: 0.9}


def _synthetic_rows(hw, truth):
    rows = []
    for hidden, inter, experts, topk in ((4096, 1536, 128, 8), (7168, 2048, 256, 8), (2048, 768, 64, 4)):
        for tokens in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192):
            for tp in (1, 2, 4, 8):
                rows.append({"op_class": "moe", "dtype": "bf16", "num_tokens": float(tokens), "hidden_size": float(hidden),
                             "inter_size": float(inter), "topk": float(topk), "num_experts": float(experts),
                             "moe_tp": float(tp), "moe_ep": 1.0, "distribution": DISTRIBUTION})
    df = pd.DataFrame(rows)
    uniform = _moe(hw, df, "bf16", benchmark=False, routing="uniform")
    x = df["num_tokens"] * df["topk"] / df["num_experts"]
    df["measured_s"] = uniform * ops.skewed_routing_factor(truth, x.to_numpy())
    return df


def test_fit_recovers_known_factors_and_keeps_them_held_out():
    hw = load_profile("h100_sxm")
    truth = {b: 1.0 + 0.05 * b for b in range(-6, 9)}
    factors, report = fit_skewed_routing(hw, _synthetic_rows(hw, truth))
    got = factors["bf16"]
    for b, v in got.items():
        assert v == pytest.approx(truth[b], rel=0.02)
    assert report["bf16"]["kept"]
    assert report["bf16"]["held_out"]["median_abs_pct_err"] < report["bf16"]["before"]["median_abs_pct_err"]


def test_no_gain_held_out_means_no_factor():
    hw = load_profile("h100_sxm")
    df = _synthetic_rows(hw, {0: 1.0})  # measured = the uniform model: nothing to correct
    factors, report = fit_skewed_routing(hw, df)
    assert factors == {} and report["bf16"]["kept"] is False
