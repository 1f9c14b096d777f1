"""Fitting NCCL collectives: per measured group size only, NVLS where the data show it, the
per-step latency that extrapolation uses, and the error held out *by group size*.

The physics is :mod:`rlsim.hardware.collectives`; this module decides what the fit may write:

* an op's per-size maps hold exactly the group sizes measured for it (no value at an unmeasured
  size is ever fitted or labelled fitted; larger groups are extrapolated by the model);
* NVLS (all-reduce) is kept only when it lowers the in-sample squared log error by at least
  :data:`NVLS_MIN_GAIN` -- a clear signature of NCCL switching algorithm, as on 8 H100s --
  else it is set to None (not modelled);
* ``collectives.nccl_step_us`` / ``nccl_large_step_us`` = mean over the measured sizes of
  ``(alpha_all_reduce(n) - alpha_all_gather(n)) / (n - 1)`` per protocol (a ring all-reduce has
  ``n - 1`` more steps than an all-gather over the same GPUs), floored at 0;
* :func:`group_size_holdout` refits every NCCL op on all measured sizes but the largest and
  predicts the largest (GB200: fit on 2 GPUs, check 4; H100: fit on 2 and 4, check 8) -- the
  error of the extrapolation physics itself.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import pandas as pd

from rlsim.hardware.profile import HardwareProfile

__all__ = ["NCCL_OPS", "NCCL_FIELDS", "NVLS_MIN_GAIN", "nccl_rows", "reset_sizes", "nvls_params_paths",
           "derive_step_latency", "group_size_holdout"]

NCCL_OPS = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
NCCL_FIELDS = ("alpha_us", "busbw_eff", "large_alpha_us", "large_busbw_eff")
#: Relative drop of the in-sample cost that NVLS must bring to be kept.
NVLS_MIN_GAIN = 0.2
NVLS_FIELDS = ("nvls_alpha_us", "nvls_algbw_eff")
_DEFAULT = {"alpha_us": 10.0, "busbw_eff": 0.5, "large_alpha_us": 25.0, "large_busbw_eff": 0.8}


def nccl_rows(df: pd.DataFrame, op: str | None = None) -> np.ndarray:
    """Mask of half-precision NCCL rows (of ``op``, or of every NCCL op)."""
    cls = df["op_class"]
    m = cls.isin([f"nccl_{o}" for o in NCCL_OPS]) if op is None else cls == f"nccl_{op}"
    return (m & df["dtype"].isin(["bf16", "fp16"])).to_numpy()


def _value_at(v, n: int, name: str) -> float:
    if isinstance(v, dict) and v:
        return float(v[min(v, key=lambda m: abs(m - n))])
    return float(v) if isinstance(v, (int, float)) else _DEFAULT[name]


def reset_sizes(data: dict, op: str, sizes: list[int]) -> dict:
    """A copy of profile ``data`` whose ``op`` maps hold exactly ``sizes`` (starting values from
    the nearest existing entry) and whose NVLS parameters are cleared."""
    out = copy.deepcopy(data)
    ab = out["collectives"]["nccl"][op]
    for name in NCCL_FIELDS:
        ab[name] = {int(n): _value_at(ab.get(name), int(n), name) for n in sizes}
    for name in NVLS_FIELDS:
        ab[name] = None
    return out


def nvls_params_paths() -> list[tuple[tuple, str]]:
    """(profile path, Param kind) of the all-reduce NVLS parameters."""
    base = ("collectives", "nccl", "all_reduce")
    return [(base + ("nvls_alpha_us",), "nonneg"), (base + ("nvls_algbw_eff",), "eff")]


#: Starting values of the NVLS parameters.
NVLS_START = (20.0, 0.6)


def derive_step_latency(data: dict) -> dict[str, float | None]:
    """``{nccl_step_us, nccl_large_step_us}`` from the fitted all-reduce and all-gather latency
    maps (module docstring); None where either op has no map."""
    nccl = data["collectives"]["nccl"]
    out: dict[str, float | None] = {}
    for key, name in (("nccl_step_us", "alpha_us"), ("nccl_large_step_us", "large_alpha_us")):
        ar, ag = nccl["all_reduce"].get(name), nccl["all_gather"].get(name)
        if not (isinstance(ar, dict) and isinstance(ag, dict)):
            out[key] = None
            continue
        common = sorted(set(ar) & set(ag) - {1})
        vals = [(ar[n] - ag[n]) / (n - 1) for n in common]
        out[key] = max(0.0, float(np.mean(vals))) if vals else None
    return out


def group_size_holdout(data: dict, df: pd.DataFrame, fit: Callable[[dict, str, pd.DataFrame], dict],
                       predict: Callable[[HardwareProfile, pd.DataFrame], np.ndarray],
                       errors_of: Callable[[np.ndarray, np.ndarray], dict]) -> dict[str, dict]:
    """Per NCCL op: ``{train_gpus, test_gpus, errors}`` when every op is refitted (``fit(data,
    op, rows) -> data``) on the measured sizes below the largest and the largest is predicted
    with the extrapolation physics.  Empty when fewer than two sizes were measured."""
    rows = df[nccl_rows(df)]
    sizes = sorted(int(n) for n in rows["num_gpus"].unique())
    if len(sizes) < 2:
        return {}
    train, test = sizes[:-1], sizes[-1]
    d = copy.deepcopy(data)
    ops_here = [op for op in NCCL_OPS if (rows["op_class"] == f"nccl_{op}").any()]
    for op in ops_here:
        sel = (rows["op_class"] == f"nccl_{op}") & rows["num_gpus"].isin(train)
        if sel.any():
            d = fit(d, op, rows[sel].reset_index(drop=True))
    d["collectives"].update(derive_step_latency(d))
    hw = HardwareProfile.model_validate(d)
    out = {}
    for op in ops_here:
        te = rows[(rows["op_class"] == f"nccl_{op}") & (rows["num_gpus"] == test)].reset_index(drop=True)
        if len(te):
            out[f"nccl_{op}"] = {"train_gpus": train, "test_gpus": test,
                                 "errors": errors_of(predict(hw, te), te["measured_s"].to_numpy(float))}
    return out
