"""Table mode: measured kernel latencies interpolated in log space, the fitted model outside.

A user with their own measurements sets ``kernel_tables: DIR`` in a hardware profile (or
``cluster.kernel_tables`` in a scenario); ``DIR`` is anything ``rlsim calibrate`` reads (an
aiconfigurator system folder, Vidur CSVs, Chrome traces).  The measured rows become *curves*:
one per op and fixed shape, latency against the one size that varies, interpolated linearly in
(log size, log time):

===================  ==========================================================  =============
op key               curve identity                                              size (x)
===================  ==========================================================  =============
``gemm:<dtype>``     ``(n, k)``                                                  ``m``
``moe:<dtype>``      ``(hidden, inter, experts, top-k, moe_tp, moe_ep)``,        ``num_tokens``
                     balanced routing
``nccl_<op>``        ``num_gpus``                                                ``nbytes``
``custom_all_reduce`` ``(num_gpus, graph or eager)``                             ``nbytes``
===================  ==========================================================  =============

A query whose curve is missing, or whose size lies outside the measured range, *falls back*
to the fitted model (:mod:`rlsim.hardware.ops`); :meth:`KernelTables.report` counts lookups
and fallbacks per op key (each distinct op evaluation once: the forward model caches op
times per token count).  Several rows at one size (repeats, kernel variants) are reduced to
their median.

Not tabulated, on purpose: attention (the engine's fast decode path needs decode time affine
in the total context, and isolated decode-attention rows carry the L2-residency effect that a
real forward pass does not have: see ``../shared/traces/README.md``), and ``fp8_block`` GEMM
rows (their eager harness adds a host floor of 60-310 us that CUDA graphs remove).  Both stay
on the fitted model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["KernelTables", "TABLE_OPS", "load_kernel_tables"]

#: Op keys table mode can serve (``<op>:<dtype>`` for GEMM / MoE).
TABLE_OPS = ("gemm", "moe", "nccl_all_reduce", "nccl_all_gather", "nccl_reduce_scatter", "nccl_alltoall",
             "custom_all_reduce")
#: Relative slack on the measured size range (a query at exactly the end point is inside).
_EDGE = 1e-9


def _curve_specs() -> dict[str, tuple[list[str], str]]:
    """op_class -> (identity columns, size column) of the tidy frame."""
    moe_id = ["hidden_size", "inter_size", "num_experts", "topk", "moe_tp", "moe_ep"]
    specs = {"gemm": (["n", "k"], "m"), "moe": (moe_id, "num_tokens"), "custom_all_reduce": (["num_gpus", "backend"], "nbytes")}
    for op in ("all_reduce", "all_gather", "reduce_scatter", "alltoall"):
        specs[f"nccl_{op}"] = (["num_gpus"], "nbytes")
    return specs


def _op_key(op_class: str, dtype: Any) -> str:
    return f"{op_class}:{dtype}" if op_class in ("gemm", "moe") else op_class


def load_kernel_tables(path: str) -> "KernelTables":
    """Read ``path`` with :func:`rlsim.calibration.readers.read_traces` (cached per path).
    Raises :class:`~rlsim.errors.CalibrationError` for an unreadable folder."""
    return _load_cached(str(Path(path).expanduser().resolve()))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> "KernelTables":
    from rlsim.calibration.readers import read_traces  # calibration builds on hardware: import late

    return KernelTables.from_frame(read_traces(path), path)


def _usable(df: pd.DataFrame) -> pd.DataFrame:
    """Rows table mode uses: positive times, balanced MoE, no fp8_block GEMM (harness floor)."""
    ok = (df["measured_s"] > 0) & df["op_class"].isin(list(_curve_specs()))
    ok &= ~((df["op_class"] == "gemm") & (df["dtype"] == "fp8_block"))
    ok &= ~((df["op_class"] == "moe") & (df["distribution"].fillna("balanced") != "balanced"))
    return df[ok]


class KernelTables:
    """Measured latency curves with log-log interpolation and fallback counting."""

    def __init__(self, curves: dict[tuple, tuple[np.ndarray, np.ndarray]], source: str) -> None:
        """``curves``: ``(op_key, *identity) -> (log sizes ascending, log seconds)``."""
        self._curves = curves
        self.source = source
        self._counts: dict[str, list[int]] = {}

    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str) -> "KernelTables":
        """Curves from a tidy frame (:mod:`rlsim.calibration.readers`)."""
        curves: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        rows = _usable(df)
        for op_class, (ids, size) in _curve_specs().items():
            sub = rows[rows["op_class"] == op_class]
            if sub.empty:
                continue
            if op_class == "moe":  # no split given = one GPU
                sub = sub.assign(moe_tp=sub["moe_tp"].fillna(1.0), moe_ep=sub["moe_ep"].fillna(1.0))
            sub = sub.assign(dtype=sub["dtype"].replace({"fp16": "bf16"}))  # fp16 kernels serve bf16 queries
            sub = sub.assign(_dtype=sub["dtype"].fillna(""), _id=list(zip(*(_norm(sub[c]) for c in ids))))
            sub = sub[sub[size] > 0]
            med = sub.groupby(["_dtype", "_id", size], sort=True)["measured_s"].median()
            for (dtype, ident), g in med.groupby(level=[0, 1], sort=True):
                x = g.index.get_level_values(2).to_numpy(dtype=float)
                curves[(_op_key(op_class, dtype), *ident)] = (np.log(x), np.log(g.to_numpy(dtype=float)))
        return cls(curves, source)

    # ---------------------------------------------------------------- queries
    @property
    def num_curves(self) -> int:
        return len(self._curves)

    def has(self, op_key: str) -> bool:
        """True when some curve serves ``op_key`` (``gemm:bf16``, ``nccl_all_reduce``, ...)."""
        return any(c[0] == op_key for c in self._curves)

    def lookup(self, op_key: str, ident: tuple, size: Any, fallback: Any) -> np.ndarray:
        """Measured time at ``size`` on the curve ``(op_key, *ident)`` where it is covered,
        ``fallback`` (the fitted model's seconds, same shape) elsewhere.  Sizes <= 0 keep the
        fallback and are not counted."""
        x = np.asarray(size, dtype=float)
        fb = np.asarray(fallback, dtype=float)
        x, fb = np.broadcast_arrays(x, fb)
        out = fb.copy()
        live = x > 0
        n_live = int(live.sum())
        if n_live == 0:
            return out
        curve = self._curves.get((op_key, *(_norm_one(v) for v in ident)))
        hit = np.zeros_like(live)
        if curve is not None:
            lx, ly = curve
            with np.errstate(divide="ignore"):
                q = np.log(np.where(live, x, 1.0))
            hit = live & (q >= lx[0] - _EDGE) & (q <= lx[-1] + _EDGE)
            if hit.any():
                out[hit] = np.exp(np.interp(q[hit], lx, ly))
        c = self._counts.setdefault(op_key, [0, 0])
        c[0] += n_live
        c[1] += n_live - int(hit.sum())
        return out

    def holdout_s(self, df: pd.DataFrame) -> np.ndarray:
        """Leave-one-size-out prediction of every row of ``df`` (tidy frame): the row's curve
        with that size removed, interpolated from its two neighbours; NaN where the size is a
        curve's end point (a query there would fall back) or no curve covers the row.  This is
        table mode's held-out error on its own data."""
        out = np.full(len(df), np.nan)
        pos = np.flatnonzero(df.index.isin(_usable(df).index))
        for op_class, (ids, size) in _curve_specs().items():
            sel = pos[(df["op_class"].to_numpy()[pos] == op_class)]
            if not len(sel):
                continue
            sub = df.iloc[sel]
            if op_class == "moe":
                sub = sub.assign(moe_tp=sub["moe_tp"].fillna(1.0), moe_ep=sub["moe_ep"].fillna(1.0))
            dtypes = sub["dtype"].replace({"fp16": "bf16"}).fillna("").to_numpy(dtype=object)
            idents = list(zip(*(_norm(sub[c]) for c in ids)))
            x = np.log(np.maximum(sub[size].to_numpy(dtype=float), 1e-300))
            for j, (d, ident) in enumerate(zip(dtypes, idents)):
                curve = self._curves.get((_op_key(op_class, d), *ident))
                if curve is None:
                    continue
                lx, ly = curve
                i = int(np.searchsorted(lx, x[j]))
                if 0 < i < len(lx) - 1 and abs(lx[i] - x[j]) < 1e-12:
                    w = (x[j] - lx[i - 1]) / (lx[i + 1] - lx[i - 1])
                    out[sel[j]] = float(np.exp(ly[i - 1] + w * (ly[i + 1] - ly[i - 1])))
        return out

    def report(self) -> dict[str, Any]:
        """``{"source", "curves", "ops": {op_key: {"lookups", "fallbacks", "fallback_frac"}},
        "lookups", "fallbacks", "fallback_frac"}`` since load (or :meth:`reset_counts`)."""
        ops = {k: {"lookups": n, "fallbacks": f, "fallback_frac": f / n if n else 0.0}
               for k, (n, f) in sorted(self._counts.items())}
        n = sum(v["lookups"] for v in ops.values())
        f = sum(v["fallbacks"] for v in ops.values())
        return {"source": self.source, "curves": self.num_curves, "ops": ops, "lookups": n, "fallbacks": f,
                "fallback_frac": f / n if n else 0.0}

    def reset_counts(self) -> None:
        self._counts.clear()


def _norm_one(v: Any) -> Any:
    """Identity values as hashable, comparable scalars (floats for numbers, str otherwise)."""
    if isinstance(v, str) or v is None:
        return "" if v is None else v
    f = float(v)
    return -1.0 if np.isnan(f) else f


def _norm(col: pd.Series) -> list:
    return [_norm_one(v) for v in col.to_numpy(dtype=object)]
