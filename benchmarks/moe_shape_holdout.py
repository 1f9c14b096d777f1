"""Leave-one-layer-shape-out error of one fused-MoE kernel key on one system's kernel tables.

The grouped k-fold error ``rlsim calibrate fit`` stores splits rows by (shape, TP, EP), so a
held-out fold can share its layer shape with the fit.  For a kernel measured on few layer shapes
(``moe:mxfp4_mxfp8``: two, neither a catalog model's) the figure that says how it transfers to
another shape is this one: fit on every other shape, predict the rows of the one left out.  Not a
test; prints one line per shape (median / p90 |error|, %).

    python benchmarks/moe_shape_holdout.py [--system b200_sxm] [--key moe:mxfp4_mxfp8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "aiconfigurator"
SHAPE = ["hidden_size", "inter_size", "num_experts", "topk"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="b200_sxm")
    ap.add_argument("--key", default="moe:mxfp4_mxfp8")
    args = ap.parse_args()
    from rlsim.calibration.fit import _profile, errors_of, fit_profile, key_specs
    from rlsim.calibration.predict import predict
    from rlsim.calibration.readers import read_traces
    from rlsim.calibration.relevant import relevant_mask
    from rlsim.hardware.profile import load_profile

    hw = load_profile(args.system)
    df = read_traces(TRACES / args.system)
    df = df[relevant_mask(df, hw.collectives.custom_all_reduce.max_bytes)].reset_index(drop=True)
    spec = next(s for s in key_specs(df) if s.key == args.key)
    rows = df[spec.select(df)].reset_index(drop=True)
    for shape, test in rows.groupby(SHAPE):
        data, _ = fit_profile(hw, rows.drop(test.index), keys=[args.key], cv=False)
        e = errors_of(predict(_profile(data), test), test["measured_s"].to_numpy())
        print(f"{args.system} {args.key} shape {tuple(int(v) for v in shape)} left out: {e['n']} rows, "
              f"|error| median {e['median_abs_pct_err']:.1f} %, p90 {e['p90_abs_pct_err']:.1f} %")


if __name__ == "__main__":
    main()
