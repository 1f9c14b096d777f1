"""Calibration against measured kernel latencies (DESIGN.md section 9).

- :mod:`~rlsim.calibration.readers`: aiconfigurator tables, Vidur CSVs, Chrome traces -> one
  tidy DataFrame;
- :mod:`~rlsim.calibration.predict`: every row predicted by the simulator's own op functions;
- :mod:`~rlsim.calibration.fit`: deterministic least squares on log time per op class and
  dtype, grouped k-fold held-out error;
- :mod:`~rlsim.calibration.check`: error tables and parity plots;
- :mod:`~rlsim.calibration.profile_io`: write a fitted profile with provenance comments.

:func:`calibrate_profile` and :func:`check_profile` are what ``rlsim calibrate fit`` and
``rlsim calibrate check`` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from rlsim.calibration.check import CONTRACT_KEYS, check, parity_plots, render_check
from rlsim.calibration.fit import FP8_BLOCK_FROM_BF16, FitResult, fit_profile, key_specs
from rlsim.calibration.predict import predict
from rlsim.calibration.readers import read_aiconfigurator, read_chrome_trace, read_traces, read_vidur
from rlsim.calibration.relevant import relevant_mask
from rlsim.calibration.routing import write_skewed_routing
from rlsim.errors import CalibrationError
from rlsim.hardware.profile import HardwareProfile, load_profile

__all__ = [
    "CONTRACT_KEYS", "FitResult", "calibrate_profile", "check", "check_profile", "fit_profile", "key_specs",
    "parity_plots", "predict", "read_aiconfigurator", "read_chrome_trace", "read_traces", "read_vidur",
    "relevant_mask", "render_check", "describe_dataset",
]


def describe_dataset(df: pd.DataFrame, traces: str | Path) -> tuple[str, str | None]:
    """(data-set description, kernel framework version) for provenance."""
    gpus = sorted({str(g) for g in df["gpu"].dropna().unique()})
    srcs = sorted({str(s).split(":", 1)[0] for s in df["source"].dropna().unique()})
    versions = sorted({str(v) for v in df.loc[df["op_class"].isin(["gemm", "moe", "generation_attention",
                                                                   "context_attention", "custom_all_reduce"]), "version"].dropna().unique()})
    nccl = sorted({str(v) for v in df.loc[df["op_class"].str.startswith("nccl_"), "version"].dropna().unique()})
    desc = f"{'+'.join(srcs)} {'/'.join(gpus)}"
    if versions:
        desc += f" (vLLM {'/'.join(versions)} kernels" + (f", NCCL {'/'.join(nccl)}" if nccl else "") + ")"
    return desc, (versions[0] if len(versions) == 1 else None)


def calibrate_profile(
    profile: str | Path, traces: str | Path, *, out: str | Path | None = None, relevant: bool = True,
    keys: list[str] | None = None, n_folds: int = 5, patterns=None, progress: Callable[[str], None] | None = None,
) -> tuple[HardwareProfile, list[FitResult]]:
    """Fit ``profile``'s efficiencies to the measurements under ``traces`` and write the result
    to ``out`` (default: overwrite ``profile`` when it is a file path)."""
    from rlsim.calibration.profile_io import write_profile

    hw = load_profile(str(profile), path="--profile")
    df = read_traces(traces, patterns=patterns)
    if relevant:
        df = df[relevant_mask(df, hw.collectives.custom_all_reduce.max_bytes)].reset_index(drop=True)
    if df.empty:
        raise CalibrationError(f"--traces = {str(traces)!r}: no rows with catalog-model shapes (try --all-shapes)")
    data, results = fit_profile(hw, df, keys=keys, n_folds=n_folds, progress=progress)
    desc, version = describe_dataset(df, traces)
    shapes = "catalog-model shapes (tokens <= 16384, TP 1-8)" if relevant else "all shapes"
    fitted_comments: dict[tuple, str] = {}
    errors = dict(hw.calibration.errors)
    for r in results:
        e_in, e_cv = r.in_sample, r.held_out
        note = (f"fit: {r.key} on {desc}, {r.rows} rows of {shapes}; |err| median/p90 in-sample "
                f"{e_in['median_abs_pct_err']:.1f}/{e_in['p90_abs_pct_err']:.1f} %, {n_folds}-fold held-out "
                f"{e_cv['median_abs_pct_err']:.1f}/{e_cv['p90_abs_pct_err']:.1f} %")
        spec = next(s for s in key_specs(df) if s.key == r.key)
        for p in r.fitted or spec.params:
            path = p.path[:-1] if isinstance(p.path[-1], int) else p.path
            fitted_comments[path] = note
        for p in r.dropped:
            fitted_comments[p.path] = (f"not modelled: {r.key} rows show no gain from it "
                                       f"(kept only if it lowers the fit's log error by >= {100 * spec.optional_min_gain:.0f} %)")
        for path, options in spec.choices.items():
            fitted_comments[path] = f"{note}; chosen from {', '.join(str(o) for o in options)}"
        if r.key == "gemm:fp8_block":
            for name in FP8_BLOCK_FROM_BF16:
                fitted_comments[("efficiency", "gemm", "fp8_block", name)] = (
                    "copied from gemm.bf16 by rlsim calibrate fit (the eager harness constant hides it in fp8_block rows)")
        errors[r.key] = {
            "rows": float(r.rows),
            "median_ape": round(e_in["median_abs_pct_err"] / 100, 4), "p90_ape": round(e_in["p90_abs_pct_err"] / 100, 4),
            "cv_median_ape": round(e_cv["median_abs_pct_err"] / 100, 4), "cv_p90_ape": round(e_cv["p90_abs_pct_err"] / 100, 4),
        }
        gs = r.group_size_held_out
        if gs and gs["errors"]["n"]:
            errors[r.key].update({
                "group_size_test_gpus": float(gs["test_gpus"]),
                "group_size_median_ape": round(gs["errors"]["median_abs_pct_err"] / 100, 4),
                "group_size_p90_ape": round(gs["errors"]["p90_abs_pct_err"] / 100, 4),
            })
    worst = 100 * max((e["cv_median_ape"] for e in errors.values() if isinstance(e, dict) and "cv_median_ape" in e),
                      default=float("nan"))
    data["calibration"] = {
        **data["calibration"],
        "status": "calibrated",
        "source": f"fitted by rlsim calibrate fit on {desc}, {shapes}; held-out median |err| <= {worst:.0f} % per op class",
        "vllm_version": version,
        "errors": errors,
    }
    fitted_comments[("calibration",)] = ("written by rlsim calibrate fit; errors are fractions (0.05 = 5 %); "
                                         "group_size_* = fitted without the largest measured group size, checked on it")
    for name in ("nccl_step_us", "nccl_large_step_us"):
        if data["collectives"].get(name) is not None and {"nccl_all_reduce", "nccl_all_gather"} <= {r.key for r in results}:
            fitted_comments[("collectives", name)] = (
                f"fit: derived from the fitted nccl all_reduce - all_gather latencies per extra ring step "
                f"({'LL' if name == 'nccl_step_us' else 'Simple'} protocol), on {desc}; used only beyond the measured group sizes")
    target = Path(out) if out is not None else Path(hw.source)
    if out is None and not Path(str(profile)).suffix:
        target = Path(hw.source)
    note = [f"Efficiencies marked 'fit:' were fitted by `rlsim calibrate fit` on {desc};",
            "calibration.errors holds in-sample and held-out (grouped k-fold by shape) |error| fractions."]
    new = write_profile(Path(hw.source), data, target, fitted_comments, note)
    if any(r.key.startswith("moe:") for r in results):
        new, _ = write_skewed_routing(new.source, str(traces))  # the new MoE fit's skewed-router factors (all shapes)
    return new, results


def check_profile(profile: str | Path, traces: str | Path, *, relevant: bool = False, patterns=None,
                  table_mode: bool = False) -> tuple[HardwareProfile, dict]:
    """Load ``profile`` and the measurements under ``traces`` and :func:`check` one against the other."""
    hw = load_profile(str(profile), path="--profile")
    df = read_traces(traces, patterns=patterns)
    return hw, check(hw, df, relevant=relevant, table_mode=table_mode)
