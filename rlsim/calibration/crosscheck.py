"""Cross-source check: a profile fitted on one data set predicting another (Vidur's H100
linear-op times for Llama-2-7B and -70B at TP 1-8; older sarathi-serve fp16 kernels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rlsim.calibration.fit import errors_of
from rlsim.calibration.predict import predict
from rlsim.calibration.readers import read_vidur_mlp
from rlsim.errors import CalibrationError
from rlsim.hardware.profile import HardwareProfile

__all__ = ["VIDUR_MODELS", "vidur_linear_check"]

VIDUR_MODELS = ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf")


def vidur_linear_check(hw: HardwareProfile, vidur_dir: str | Path, gpu: str = "h100",
                       models: tuple[str, ...] = VIDUR_MODELS, max_tokens: int | None = None) -> tuple[dict, pd.DataFrame]:
    """Errors of ``hw``'s GEMM model on Vidur's QKV / O / gate-up / down rows (TP 1-8).
    Returns ({"all": stats, "<op>": stats, "<model> tp<n>": stats}, rows with predictions)."""
    root = Path(vidur_dir)
    frames = []
    for m in models:
        f = root / "compute" / gpu / m / "mlp.csv"
        if not f.is_file():
            raise CalibrationError(f"{f}: not found")
        frames.append(read_vidur_mlp(f).assign(model=m))
    df = pd.concat(frames, ignore_index=True)
    df = df[(df.op_class == "gemm") & (df.moe_tp <= 8)].reset_index(drop=True)
    if max_tokens is not None:
        df = df[df.m <= max_tokens].reset_index(drop=True)
    pred = predict(hw, df)
    meas = df["measured_s"].to_numpy(float)
    df = df.assign(predicted_s=pred, abs_pct_err=np.abs(pred / meas - 1) * 100)
    out = {"all": errors_of(pred, meas)}
    for op, g in df.groupby("kernel_source"):
        out[str(op)] = errors_of(g.predicted_s.to_numpy(), g.measured_s.to_numpy())
    for (m, tp), g in df.groupby(["model", "moe_tp"]):
        out[f"{m.split('/')[-1]} tp{int(tp)}"] = errors_of(g.predicted_s.to_numpy(), g.measured_s.to_numpy())
    return out, df
