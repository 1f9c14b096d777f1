"""The fused-MoE time of a real, skewed router against the uniform spread the MoE formula assumes.

A trained router is not uniform.  Kernel tables time fused MoE under *balanced* routing (rows
dealt round-robin, which the MoE fit uses) and under power-law expert popularity, which
AIConfigurator's tables carry as their stand-in for real routing (``power_law_1.01``,
``power_law_1.2``).  The MoE formula (:func:`rlsim.hardware.ops.moe_time_s`) with the uniform
spread of :func:`~rlsim.hardware.ops.expected_experts_touched` misses two effects the
power-law rows show: at a few routed rows per expert a skewed router touches fewer experts (less
weight traffic: measured / uniform-model 0.8-0.9 around 1-4 rows per expert), and at many rows
its busiest experts' tiles run longer (1.05-1.6 above 16 rows per expert; larger for the
Hopper W4A16 kernels).  Both depend mostly on routed rows per expert ``x = T * topk / E``.

:func:`fit_skewed_routing` takes, per MoE profile key, the median of measured / uniform-model
time of the ``power_law_1.01`` rows in bins of ``round(log2 x)`` (a bin needs
:data:`MIN_ROWS` rows) -- an efficiency curve as data, stored as ``efficiency.moe.<key>.
skewed_routing`` and applied by ``moe_layer_time_s(routing="random")``, the simulator's
default.  Assumed: real routing behaves like the tables' power law with exponent 1.01
(AIConfigurator's own choice for realistic routing; the 1.2 rows give factors within a few
per cent).  Error reported on the power-law rows: before (factor 1), in sample, and held out
leaving one MoE layer shape (hidden, intermediate, experts, top-k) out at a time; a key keeps
its factors only if the held-out median error is below the one before (a key measured on one
shape has no held-out evidence and keeps factor 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlsim.calibration.predict import _moe
from rlsim.hardware.kernels import params_key
from rlsim.hardware.profile import HardwareProfile

__all__ = ["fit_skewed_routing", "factors_from_ratios", "DISTRIBUTION", "MIN_ROWS", "BIN_RANGE"]

#: The tables' routing taken to stand for a real router.
DISTRIBUTION = "power_law_1.01"
#: Rows a bin needs for its factor.
MIN_ROWS = 8
#: Bins kept: log2(routed rows per expert) from 1/64 to 256.
BIN_RANGE = (-6, 8)
_SHAPE = ["hidden_size", "inter_size", "num_experts", "topk"]


def factors_from_ratios(log2_rows: np.ndarray, ratio: np.ndarray) -> dict[int, float]:
    """Median ``ratio`` per ``round(log2 rows per expert)`` bin (bins with >= MIN_ROWS rows)."""
    bins = np.clip(np.round(log2_rows), *BIN_RANGE).astype(int)
    out = {}
    for b in np.unique(bins):
        r = ratio[(bins == b) & np.isfinite(ratio)]
        if len(r) >= MIN_ROWS:
            out[int(b)] = round(float(np.median(r)), 4)
    return out


def _errors(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    e = np.abs(predicted / measured - 1.0) * 100
    e = e[np.isfinite(e)]
    return {"rows": int(len(e)), "median_abs_pct_err": round(float(np.median(e)), 2) if len(e) else float("nan"),
            "p90_abs_pct_err": round(float(np.percentile(e, 90)), 2) if len(e) else float("nan")}


def _factor(f: dict[int, float], log2_rows: np.ndarray) -> np.ndarray:
    if not f:
        return np.ones_like(log2_rows)
    bins = np.array(sorted(f), dtype=float)
    return np.interp(log2_rows, bins, [f[int(b)] for b in bins])


def fit_skewed_routing(hw: HardwareProfile, df: pd.DataFrame) -> tuple[dict[str, dict[int, float]], dict[str, dict]]:
    """Per MoE profile key of ``hw`` with power-law rows in ``df`` (the tidy kernel-table frame):
    the fitted factors and the error report ``{key: {"before", "in_sample", "held_out"}}``."""
    rows = df[(df["op_class"] == "moe") & (df["distribution"] == DISTRIBUTION)]
    factors: dict[str, dict[int, float]] = {}
    report: dict[str, dict] = {}
    for key in sorted({params_key(d) for d in rows["dtype"].dropna().unique()} - {None}):
        if getattr(hw.efficiency.moe, key, None) is None:
            continue
        sub = rows[rows["dtype"].map(params_key) == key]
        uniform = np.concatenate([_moe(hw, sub[sub["dtype"] == d], d, benchmark=False, routing="uniform")
                                  for d in sub["dtype"].unique()])
        sub = pd.concat([sub[sub["dtype"] == d] for d in sub["dtype"].unique()])
        measured = sub["measured_s"].to_numpy(dtype=float)
        lx = np.log2(sub["num_tokens"].to_numpy(float) * sub["topk"].to_numpy(float) / sub["num_experts"].to_numpy(float))
        ratio = measured / uniform
        f = factors_from_ratios(lx, ratio)
        if not f:
            continue
        held = np.full(len(sub), np.nan)
        shapes = sub[_SHAPE].astype(float).to_numpy()
        for shape in np.unique(shapes, axis=0):
            out = (shapes == shape).all(axis=1)
            held[out] = uniform[out] * _factor(factors_from_ratios(lx[~out], ratio[~out]), lx[out])
        report[key] = {"before": _errors(measured, uniform), "in_sample": _errors(measured, uniform * _factor(f, lx)),
                       "held_out": _errors(measured, held)}
        # kept only where it helps a layer shape it did not see (one shape alone gives no such evidence)
        report[key]["kept"] = report[key]["held_out"]["median_abs_pct_err"] < report[key]["before"]["median_abs_pct_err"]
        if report[key]["kept"]:
            factors[key] = f
    return factors, report


def write_skewed_routing(profile: str, traces: str, out: str | None = None) -> tuple[HardwareProfile, dict[str, dict]]:
    """Fit the skewed-routing factors of ``profile`` (name or path) on the kernel tables under
    ``traces`` and write them into the profile (in place, or to ``out``) with provenance: the
    factors of every MoE key with power-law rows (None where not kept) and their error in
    ``calibration.errors`` as ``moe_skewed_routing:<key>``.  Run after ``rlsim calibrate fit``
    (it calls this itself)."""
    from pathlib import Path

    from rlsim.calibration import describe_dataset
    from rlsim.calibration.profile_io import write_profile
    from rlsim.calibration.readers import read_traces
    from rlsim.hardware.profile import load_profile

    hw = load_profile(str(profile), path="--profile")
    df = read_traces(traces)
    factors, report = fit_skewed_routing(hw, df)
    if not report:  # no power-law rows of a key the profile has
        return hw, report
    desc, _ = describe_dataset(df, traces)
    data = hw.model_dump(mode="python")
    comments, errors = {}, dict(data["calibration"].get("errors") or {})
    for key, rep in report.items():
        data["efficiency"]["moe"][key]["skewed_routing"] = factors.get(key)
        b, i, h = rep["before"], rep["in_sample"], rep["held_out"]
        comments[("efficiency", "moe", key, "skewed_routing")] = (
            f"fit: {DISTRIBUTION} rows of {desc}, {b['rows']} rows; |err| median/p90 uniform {b['median_abs_pct_err']:.1f}/"
            f"{b['p90_abs_pct_err']:.1f} %, in-sample {i['median_abs_pct_err']:.1f}/{i['p90_abs_pct_err']:.1f} %, "
            f"held out by layer shape {h['median_abs_pct_err']:.1f}/{h['p90_abs_pct_err']:.1f} %"
            + ("" if rep["kept"] else " -> not kept (no held-out gain)"))
        errors[f"moe_skewed_routing:{key}"] = {
            "rows": float(b["rows"]), "median_ape": round(i["median_abs_pct_err"] / 100, 4),
            "p90_ape": round(i["p90_abs_pct_err"] / 100, 4), "cv_median_ape": round(h["median_abs_pct_err"] / 100, 4),
            "cv_p90_ape": round(h["p90_abs_pct_err"] / 100, 4)}
    data["calibration"] = {**data["calibration"], "errors": errors}
    target = Path(out) if out is not None else Path(hw.source)
    note = [f"skewed_routing: MoE time of a real router over the uniform spread, fitted on the {DISTRIBUTION} rows of {desc} "
            "(rlsim.calibration.routing)."]
    return write_profile(Path(hw.source), data, target, comments, note), report
