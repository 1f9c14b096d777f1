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
to the fitted model (:mod:`rlsim.hardware.ops`); :meth:`KernelTables.report` counts the
distinct queries (op, shape, size) and how many fell back, per profile.  Several rows at one
size (repeats, kernel variants) are reduced to their median.  Curves keep what the
measurement did: MoE curves keep the benchmark's routing (aiconfigurator's "balanced" deals
rows round-robin, touching more experts at small batches than a real router: pessimistic
there).  Looking up records the query for the report; it never changes a result.

Not tabulated, on purpose (they stay on the fitted model): attention (the engine's fast
decode path needs decode time affine in the total context, and isolated decode-attention
rows carry the L2-residency effect that a real forward pass does not have: see
``../shared/traces/README.md``); ``fp8_block`` GEMM rows (their eager harness adds a host
floor of 60-310 us that CUDA graphs remove); MoE layers of group-limited routers such as
DeepSeek-V3 (the benchmark's tied router scores pile the work onto EP rank 0); collectives of
non-half-precision buffers (the simulator sends bf16).
"""

from __future__ import annotations

import copy
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
    """Rows table mode uses: positive times; no fp8_block GEMM (harness floor); collectives of
    half-precision buffers only (what the simulator sends); balanced-routing MoE, except layers of
    a group-limited router (DeepSeek-V3), whose benchmark routing piles the work on EP rank 0."""
    ok = (df["measured_s"] > 0) & df["op_class"].isin(list(_curve_specs()))
    ok &= ~((df["op_class"] == "gemm") & (df["dtype"] == "fp8_block"))
    comm = df["op_class"].str.startswith("nccl_") | (df["op_class"] == "custom_all_reduce")
    ok &= ~(comm & ~df["dtype"].fillna("bf16").isin(["bf16", "fp16"]))
    moe = df["op_class"] == "moe"
    ok &= ~(moe & (df["distribution"].fillna("balanced") != "balanced"))
    if moe.any():
        from rlsim.calibration.relevant import catalog_shapes  # calibration builds on hardware: import late

        groups = set(catalog_shapes()["moe_groups"])
        shape = df[["hidden_size", "inter_size", "num_experts", "topk"]].fillna(-1).astype(int).to_numpy()
        ok &= ~(moe & np.array([tuple(r) in groups for r in shape], dtype=bool))
    return df[ok]


class KernelTables:
    """Measured latency curves with log-log interpolation and fallback counting."""

    def __init__(self, curves: dict[tuple, tuple[np.ndarray, np.ndarray]], source: str) -> None:
        """``curves``: ``(op_key, *identity) -> (log sizes ascending, log seconds)``."""
        self._curves = curves
        self.source = source
        self.gpus: tuple[str, ...] = ()
        self._seen: dict[str, set] = {}
        self._fell: dict[str, set] = {}

    def with_fresh_counts(self) -> "KernelTables":
        """The same (shared, read-only) curves with counts of their own: one per profile."""
        new = copy.copy(self)
        new._seen, new._fell = {}, {}
        return new

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
        tables = cls(curves, source)
        tables.gpus = tuple(sorted({str(g) for g in df.get("gpu", pd.Series(dtype=object)).dropna().unique()}))
        return tables

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
        key = tuple(_norm_one(v) for v in ident)
        curve = self._curves.get((op_key, *key))
        hit = np.zeros_like(live)
        if curve is not None:
            lx, ly = curve
            with np.errstate(divide="ignore"):
                q = np.log(np.where(live, x, 1.0))
            hit = live & (q >= lx[0] - _EDGE) & (q <= lx[-1] + _EDGE)
            if hit.any():
                out[hit] = np.exp(np.interp(q[hit], lx, ly))
        self._seen.setdefault(op_key, set()).update((key, v) for v in x[live].tolist())
        self._fell.setdefault(op_key, set()).update((key, v) for v in x[live & ~hit].tolist())
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
        "lookups", "fallbacks", "fallback_frac"}``: *distinct* op queries (op, shape, size) since
        load or :meth:`reset_counts` and how many of them the fitted model answered -- the same
        numbers whatever the caching or the order of evaluation."""
        ops = {}
        for k in sorted(self._seen):
            n, f = len(self._seen[k]), len(self._fell.get(k, ()))
            ops[k] = {"lookups": n, "fallbacks": f, "fallback_frac": f / n if n else 0.0}
        n = sum(v["lookups"] for v in ops.values())
        f = sum(v["fallbacks"] for v in ops.values())
        return {"source": self.source, "curves": self.num_curves, "ops": ops, "lookups": n, "fallbacks": f,
                "fallback_frac": f / n if n else 0.0}

    def reset_counts(self) -> None:
        self._seen.clear()
        self._fell.clear()


def _norm_one(v: Any) -> Any:
    """Identity values as hashable, comparable scalars (floats for numbers, str otherwise)."""
    if isinstance(v, str) or v is None:
        return "" if v is None else v
    f = float(v)
    return -1.0 if np.isnan(f) else f


def _norm(col: pd.Series) -> list:
    return [_norm_one(v) for v in col.to_numpy(dtype=object)]
