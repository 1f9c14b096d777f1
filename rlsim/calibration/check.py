"""``rlsim calibrate check``: how far the simulator's op times are from measurements.

:func:`check` predicts every measured row with the normal cost-model path
(:func:`rlsim.calibration.predict.predict`) and summarises the absolute percentage error per
key (``<op_class>:<dtype>``; collectives without a dtype) -- rows, median, p90, worst shapes,
and the same per size band of the measured time.  :func:`parity_plots` writes one PNG per key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rlsim.calibration.fit import errors_of
from rlsim.calibration.predict import predict
from rlsim.calibration.relevant import relevant_mask
from rlsim.errors import CalibrationError
from rlsim.hardware.profile import HardwareProfile
from rlsim.hardware.tables import KernelTables
from rlsim.units import is_int4

__all__ = ["CONTRACT_KEYS", "row_keys", "check", "table_mode_errors", "render_check", "parity_plots", "shape_label", "SIZE_BANDS_S"]

#: Keys every report lists (in this order) when the data has them; others follow sorted.
CONTRACT_KEYS = [
    "gemm:bf16", "gemm:fp8", "gemm:fp8_block", "moe:bf16", "moe:fp8", "moe:fp8_block",
    "generation_attention:bf16", "context_attention:bf16", "nccl_all_reduce", "custom_all_reduce",
    "generation_attention:fp8", "context_attention:fp8", "moe:mxfp4", "moe:int4",
    "moe:mxfp4_mxfp8",
]
#: Size bands of the measured time (seconds) for the per-band breakdown.
SIZE_BANDS_S = [(0.0, 10e-6, "<10us"), (10e-6, 100e-6, "10-100us"), (100e-6, 1e-3, "0.1-1ms"), (1e-3, np.inf, ">=1ms")]

_NO_DTYPE = ("nccl_", "custom_all_reduce", "p2p")


def row_keys(df: pd.DataFrame) -> np.ndarray:
    """The report key of every row: ``op_class:dtype``, or ``op_class`` for collectives
    (only half-precision buffers; other element types get ``op_class:dtype``).  INT4 rows of any
    group size share ``<op>:int4`` (one kernel, one profile entry); sliding-window attention
    rows get ``:window`` (a check of the window physics, not a fitted key)."""
    oc = df["op_class"].astype(str).to_numpy()
    dt = df["dtype"].fillna("").astype(str).to_numpy()
    win = df["window_size"].fillna(0).to_numpy(dtype=float) if "window_size" in df else np.zeros(len(df))
    out = np.empty(len(df), dtype=object)
    for i, (o, d) in enumerate(zip(oc, dt)):
        d = "int4" if is_int4(d) else d
        if o.startswith(_NO_DTYPE):
            out[i] = o if d in ("bf16", "fp16", "") else f"{o}:{d}"
        else:
            out[i] = (f"{o}:{d}" if d else o) + (":window" if win[i] > 0 else "")
    return out


def shape_label(row: pd.Series) -> str:
    """A compact description of one measured row's shape."""
    o = row["op_class"]

    def i(c: str) -> int:
        return int(row[c])

    if o == "gemm":
        return f"m={i('m')} n={i('n')} k={i('k')}"
    if o == "moe":
        return (f"T={i('num_tokens')} h={i('hidden_size')} i={i('inter_size')} E={i('num_experts')} "
                f"top{i('topk')} tp{i('moe_tp')} ep{i('moe_ep')}")
    if o in ("generation_attention", "context_attention"):
        w = row.get("window_size")
        win = f" w={int(w)}" if w == w and w else ""
        return f"b={i('batch_size')} s={i('seq_len')} h={i('num_heads')}/{i('num_kv_heads')} d={i('head_dim')}{win}"
    if o.startswith("nccl_") or o == "custom_all_reduce":
        be = row.get("backend") or ""
        return f"n={i('num_gpus')} {row['nbytes']:.0f} B {be}".rstrip()
    if o == "elementwise":
        return f"{row.get('label') or ''} {row['nbytes']:.0f} B".strip()
    return str(row.get("kernel_source") or o)


def check(hw: HardwareProfile, df: pd.DataFrame, *, relevant: bool = False, worst: int = 3,
          table_mode: bool = False) -> dict:
    """Per-key error summary of the fitted model (a profile's kernel tables are ignored).
    Returns ``{"keys": {key: {n, median_abs_pct_err, p90_abs_pct_err}}, "worst": {key: [(shape,
    measured_us, predicted_us, err_pct)]}, "bands": {key: {band: stats}}, "rows": frame with
    predictions, "skipped": rows without a prediction}``; with ``table_mode`` also
    ``"table_mode": {key: stats}``, see :func:`table_mode_errors`."""
    if hw.tables is not None:
        hw = hw.with_kernel_tables(None)
    tables = KernelTables.from_frame(df, "measured rows") if table_mode else None
    if relevant:
        df = df[relevant_mask(df, hw.collectives.custom_all_reduce.max_bytes)]
    df = df.reset_index(drop=True)
    if df.empty:
        raise CalibrationError("no measured rows left to check" + (" with --relevant" if relevant else ""))
    pred = predict(hw, df)
    meas = df["measured_s"].to_numpy(dtype=float)
    keys = row_keys(df)
    frame = df.assign(key=keys, predicted_s=pred, abs_pct_err=np.abs(pred / meas - 1.0) * 100.0)
    present = [k for k in pd.unique(keys) if np.isfinite(pred[keys == k]).any()]
    order = [k for k in CONTRACT_KEYS if k in present] + sorted(k for k in present if k not in CONTRACT_KEYS)
    out_keys, out_worst, out_bands = {}, {}, {}
    for k in order:
        sel = keys == k
        out_keys[k] = errors_of(pred[sel], meas[sel])
        sub = frame[sel & np.isfinite(pred)]
        top = sub.nlargest(worst, "abs_pct_err")
        out_worst[k] = [(shape_label(r), r["measured_s"] * 1e6, r["predicted_s"] * 1e6, r["abs_pct_err"]) for _, r in top.iterrows()]
        bands = {}
        for lo, hi, name in SIZE_BANDS_S:
            b = (sub["measured_s"] >= lo) & (sub["measured_s"] < hi)
            if b.any():
                bands[name] = errors_of(sub["predicted_s"].to_numpy()[b.to_numpy()], sub["measured_s"].to_numpy()[b.to_numpy()])
        out_bands[k] = bands
    out = {"keys": out_keys, "worst": out_worst, "bands": out_bands, "rows": frame,
           "skipped": int((~np.isfinite(pred)).sum())}
    if tables is not None:
        out["table_mode"] = table_mode_errors(tables, df, pred, keys, order)
    return out


def table_mode_errors(tables: KernelTables, df: pd.DataFrame, pred: np.ndarray, keys: np.ndarray,
                      order: list[str]) -> dict[str, dict]:
    """Table mode's held-out error per key: each row predicted from its curve with its own size
    left out (:meth:`KernelTables.holdout_s`), the fitted model where that is impossible (curve
    end points, keys table mode does not serve) -- what a query at an unmeasured size gets.
    ``{key: {n, median_abs_pct_err, p90_abs_pct_err, table_rows, table_median_abs_pct_err,
    table_p90_abs_pct_err}}`` (``table_*``: the interpolated rows alone)."""
    held = tables.holdout_s(df)
    meas = df["measured_s"].to_numpy(dtype=float)
    out = {}
    for k in order:
        sel = keys == k
        hit = sel & np.isfinite(held)
        if not hit.any():
            continue
        both = np.where(np.isfinite(held), held, pred)
        e_all, e_tab = errors_of(both[sel], meas[sel]), errors_of(held[hit], meas[hit])
        out[k] = {**e_all, "table_rows": e_tab["n"], "table_median_abs_pct_err": e_tab["median_abs_pct_err"],
                  "table_p90_abs_pct_err": e_tab["p90_abs_pct_err"]}
    return out


def render_check(result: dict, hw: HardwareProfile, traces: str, relevant: bool) -> str:
    """The plain table ``rlsim calibrate check`` prints."""
    c = hw.calibration
    lines = [
        f"profile {hw.name} ({c.status}: {c.source})",
        f"traces  {traces}{'  [--relevant: catalog-model shapes only]' if relevant else ''}",
        "",
        f"  {'key':<28} {'rows':>7} {'median %':>9} {'p90 %':>8}   worst shapes (measured -> predicted us)",
    ]
    for k, e in result["keys"].items():
        worst = "; ".join(f"{s}: {m:.1f}->{p:.1f}" for s, m, p, _ in result["worst"][k][:2])
        lines.append(f"  {k:<28} {e['n']:>7,} {e['median_abs_pct_err']:>9.1f} {e['p90_abs_pct_err']:>8.1f}   {worst}")
        for band, b in result["bands"][k].items():
            lines.append(f"  {'  ' + band:<28} {b['n']:>7,} {b['median_abs_pct_err']:>9.1f} {b['p90_abs_pct_err']:>8.1f}")
    if "table_mode" in result:
        lines += ["", "table mode (kernel_tables), held out: each row interpolated from its curve without its own size;",
                  "curve end points and untabulated keys use the fitted model",
                  f"  {'key':<28} {'rows':>7} {'median %':>9} {'p90 %':>8}   {'interpolated rows':>17} {'median %':>9} {'p90 %':>8}"]
        for k, e in result["table_mode"].items():
            lines.append(f"  {k:<28} {e['n']:>7,} {e['median_abs_pct_err']:>9.1f} {e['p90_abs_pct_err']:>8.1f}   "
                         f"{e['table_rows']:>17,} {e['table_median_abs_pct_err']:>9.1f} {e['table_p90_abs_pct_err']:>8.1f}")
    if result["skipped"]:
        lines.append(f"\n{result['skipped']:,} rows have no model prediction (unknown dtypes, skewed routing, "
                     "unmapped kernels) and are not scored")
    return "\n".join(lines)


def parity_plots(result: dict, out_dir: str | Path, title: str = "") -> list[Path]:
    """One parity PNG per key (measured vs predicted, log-log, +-25 % band) and an overview."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = result["rows"]
    paths = []
    keys = list(result["keys"])
    ncol = min(4, max(1, len(keys)))
    nrow = int(np.ceil(len(keys) / ncol))
    fig_all, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.6 * nrow), squeeze=False)
    for i, k in enumerate(keys):
        sub = frame[(frame["key"] == k) & np.isfinite(frame["predicted_s"])]
        e = result["keys"][k]
        for ax_, own in ((None, True), (axes[i // ncol][i % ncol], False)):
            if own:
                fig, ax = plt.subplots(figsize=(4.5, 4.2))
            else:
                ax = ax_
            x, y = sub["measured_s"].to_numpy() * 1e6, sub["predicted_s"].to_numpy() * 1e6
            ax.scatter(x, y, s=3, alpha=0.35, lw=0)
            lo, hi = max(min(x.min(), y.min()), 1e-2), max(x.max(), y.max())
            g = np.array([lo, hi])
            ax.plot(g, g, "k-", lw=0.8)
            ax.plot(g, g * 1.25, "k:", lw=0.6)
            ax.plot(g, g / 1.25, "k:", lw=0.6)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{k}  n={e['n']}  med {e['median_abs_pct_err']:.1f}%  p90 {e['p90_abs_pct_err']:.1f}%", fontsize=8)
            ax.set_xlabel("measured (us)", fontsize=8)
            ax.set_ylabel("predicted (us)", fontsize=8)
            ax.tick_params(labelsize=7)
            if own:
                fig.suptitle(title, fontsize=9)
                fig.tight_layout()
                p = out / f"parity_{k.replace(':', '_')}.png"
                fig.savefig(p, dpi=110)
                plt.close(fig)
                paths.append(p)
    for j in range(len(keys), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    fig_all.suptitle(title, fontsize=10)
    fig_all.tight_layout()
    p = out / "parity_all.png"
    fig_all.savefig(p, dpi=90)
    plt.close(fig_all)
    return paths + [p]
