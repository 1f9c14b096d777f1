"""Readers of measured kernel latencies into one tidy DataFrame.

Every reader returns rows with the columns of :data:`COLUMNS` (missing fields are NaN / None):

``op_class``
    ``gemm``, ``moe``, ``generation_attention``, ``context_attention``, ``nccl_all_reduce``,
    ``nccl_all_gather``, ``nccl_reduce_scatter``, ``nccl_alltoall``, ``custom_all_reduce``,
    ``elementwise`` (Chrome traces), ``other``.
``dtype``
    weight dtype for GEMM / MoE (``bf16``, ``fp8``, ``fp8_block``, ...), KV-cache dtype for
    attention, element dtype for collectives (``bf16``, ``int8``).
shape fields
    GEMM ``m, n, k``; attention ``batch_size, seq_len`` (context length incl. the new token for
    decode, input length for prefill), ``num_heads, num_kv_heads, head_dim, window_size`` (heads
    per GPU); MoE ``num_tokens, hidden_size, inter_size, topk, num_experts, moe_tp, moe_ep,
    distribution``; collectives ``num_gpus, nbytes`` (bytes of the buffer per GPU) and
    ``backend`` (``nccl``, ``graph``, ``eager``).
``measured_s``
    the measured latency in seconds.
``source`` / ``gpu`` / ``version`` / ``kernel_source`` / ``label``
    data set, system folder name, kernel framework version, kernel implementation, free text.

Supported inputs (:func:`read_traces` detects them from a folder):

- aiconfigurator ``systems/data/<system>/`` folders (vLLM kernel tables, parquet; ms);
- Vidur ``data/profiling`` CSVs: ``compute/<gpu>/<org>/<model>/mlp.csv`` and
  ``network/<node>/{all_reduce,send_recv}.csv`` (ms; sizes in fp16 elements);
- Chrome-trace JSON from ``torch.profiler`` / vLLM's profiler (kernel events mapped to op
  classes by a name-pattern table, shapes from ``args`` where present).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from rlsim.errors import CalibrationError

__all__ = [
    "COLUMNS",
    "DEFAULT_KERNEL_PATTERNS",
    "read_aiconfigurator",
    "read_vidur",
    "read_vidur_mlp",
    "read_vidur_network",
    "read_chrome_trace",
    "read_traces",
    "detect_format",
]

COLUMNS = [
    "op_class", "dtype", "m", "n", "k",
    "batch_size", "seq_len", "num_heads", "num_kv_heads", "head_dim", "window_size",
    "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp", "moe_ep", "distribution",
    "num_gpus", "nbytes", "backend",
    "measured_s", "source", "gpu", "version", "kernel_source", "label",
]
_STR_COLS = {"op_class", "dtype", "distribution", "backend", "source", "gpu", "version", "kernel_source", "label"}

_DTYPE = {
    "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "half": "fp16", "fp16": "fp16",
    "fp8": "fp8", "float8_e4m3fn": "fp8", "fp8_block": "fp8_block", "int8": "int8",
    "nvfp4": "fp4", "fp4": "fp4", "float": "fp32", "float32": "fp32",
    # aiconfigurator's MoE kernel names: MXFP4 weights x bf16 activations (gpt-oss), INT4
    # weight-only Marlin (Kimi-K2 / K2.5 checkpoints: groups of 32, assumed from those
    # checkpoints' quantization_config), MXFP4 weights x MXFP8 activations (Blackwell; ``moe.mxfp4_mxfp8``)
    "w4a16_mxfp4": "mxfp4", "int4_wo": "int4_g32", "w4a8_mxfp4_mxfp8": "mxfp4_mxfp8",
}
#: bytes per element of the element dtypes the comm tables use.
_ELEM_BYTES = {"bf16": 2.0, "fp16": 2.0, "int8": 1.0, "fp32": 4.0, "fp8": 1.0}


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Add the missing columns, order them, fix dtypes."""
    out = pd.DataFrame(index=range(len(df)))
    df = df.reset_index(drop=True)
    for c in COLUMNS:
        if c in df.columns:
            out[c] = df[c].values
        else:
            out[c] = None if c in _STR_COLS else np.nan
    for c in COLUMNS:
        if c in _STR_COLS:
            out[c] = out[c].astype(object)
        else:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    return out


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types
        raise CalibrationError(f"{path}: cannot read parquet table ({exc})") from None


def _need(df: pd.DataFrame, cols: Iterable[str], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise CalibrationError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))})")


def _dtype(x: object) -> str:
    s = str(x).lower()
    return _DTYPE.get(s, s)


# --------------------------------------------------------------------------- aiconfigurator


def _latest(folder: Path, pattern: str) -> Path | None:
    """The file matching ``pattern`` under ``folder`` (newest version folder when several)."""
    hits = sorted(folder.glob(pattern))
    return hits[-1] if hits else None


def read_aiconfigurator(folder: str | Path) -> pd.DataFrame:
    """All kernel tables of one aiconfigurator system folder (``.../data/h100_sxm``)."""
    root = Path(folder)
    if not root.is_dir():
        raise CalibrationError(f"--traces = {str(folder)!r}: not a folder")
    gpu = root.name
    frames = []
    readers = [
        ("gemm/*/*/gemm_perf.parquet", _aic_gemm),
        ("attention/*/*/generation_attention_perf.parquet", _aic_generation),
        ("attention/*/*/context_attention_perf.parquet", _aic_context),
        ("moe/*/*/moe_perf.parquet", _aic_moe),
        ("comm/nccl/*/nccl_perf.parquet", _aic_nccl),
        ("comm/*/*/custom_allreduce_perf.parquet", _aic_custom_ar),
    ]
    for pattern, fn in readers:
        f = _latest(root, pattern)
        if f is None:
            continue
        df = fn(_read_parquet(f), f)
        df["gpu"] = gpu
        df["source"] = f"aiconfigurator:{gpu}/{f.relative_to(root)}"
        frames.append(_tidy(df))
    if not frames:
        raise CalibrationError(f"{root}: no aiconfigurator tables found (expected e.g. gemm/vllm/<version>/gemm_perf.parquet)")
    return pd.concat(frames, ignore_index=True)


def _ms(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=float) * 1e-3


def _aic_gemm(d: pd.DataFrame, path: Path) -> pd.DataFrame:
    _need(d, ["gemm_dtype", "m", "n", "k", "latency"], path)
    return pd.DataFrame({
        "op_class": "gemm", "dtype": d["gemm_dtype"].map(_dtype), "m": d["m"], "n": d["n"], "k": d["k"],
        "measured_s": _ms(d["latency"]), "version": d.get("version"), "kernel_source": d.get("kernel_source"),
    })


def _aic_attention(d: pd.DataFrame, path: Path, op: str) -> pd.DataFrame:
    cols = ["batch_size", "num_heads", "num_key_value_heads", "head_dim", "kv_cache_dtype", "latency"]
    _need(d, cols + (["step"] if op == "generation_attention" else ["isl"]), path)
    # generation: ``step`` tokens are cached, the new one is attended too -> context step + 1
    seq = d["step"] + 1 if op == "generation_attention" else d["isl"]
    return pd.DataFrame({
        "op_class": op, "dtype": d["kv_cache_dtype"].map(_dtype), "batch_size": d["batch_size"], "seq_len": seq,
        "num_heads": d["num_heads"], "num_kv_heads": d["num_key_value_heads"], "head_dim": d["head_dim"],
        "window_size": d.get("window_size", 0), "measured_s": _ms(d["latency"]), "version": d.get("version"),
        "kernel_source": d.get("kernel_source"),
    })


def _aic_generation(d: pd.DataFrame, path: Path) -> pd.DataFrame:
    return _aic_attention(d, path, "generation_attention")


def _aic_context(d: pd.DataFrame, path: Path) -> pd.DataFrame:
    return _aic_attention(d, path, "context_attention")


def _aic_moe(d: pd.DataFrame, path: Path) -> pd.DataFrame:
    cols = ["moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size", "latency"]
    _need(d, cols, path)
    return pd.DataFrame({
        "op_class": "moe", "dtype": d["moe_dtype"].map(_dtype), "num_tokens": d["num_tokens"],
        "hidden_size": d["hidden_size"], "inter_size": d["inter_size"], "topk": d["topk"],
        "num_experts": d["num_experts"], "moe_tp": d["moe_tp_size"], "moe_ep": d["moe_ep_size"],
        "distribution": d.get("distribution", "balanced"), "measured_s": _ms(d["latency"]),
        "version": d.get("version"), "kernel_source": d.get("kernel_source"),
    })


def _aic_nccl(d: pd.DataFrame, path: Path) -> pd.DataFrame:
    _need(d, ["op_name", "nccl_dtype", "num_gpus", "message_size", "latency"], path)
    dt = d["nccl_dtype"].map(_dtype)
    elem = dt.map(_ELEM_BYTES)
    if elem.isna().any():
        bad = sorted(set(d["nccl_dtype"][elem.isna()]))
        raise CalibrationError(f"{path}: nccl_dtype {bad} has no known element size")
    # message_size counts elements (traces README): bytes = elements x element size
    return pd.DataFrame({
        "op_class": "nccl_" + d["op_name"].astype(str), "dtype": dt, "num_gpus": d["num_gpus"],
        "nbytes": d["message_size"].to_numpy(float) * elem.to_numpy(float), "backend": "nccl",
        "measured_s": _ms(d["latency"]), "version": d.get("version"), "kernel_source": d.get("kernel_source"),
    })


def _aic_custom_ar(d: pd.DataFrame, path: Path) -> pd.DataFrame:
    _need(d, ["num_gpus", "message_size", "latency", "backend"], path)
    dt = d["allreduce_dtype"].map(_dtype) if "allreduce_dtype" in d.columns else pd.Series("bf16", index=d.index)
    elem = dt.map(_ELEM_BYTES).fillna(2.0)
    backend = d["backend"].astype(str).str.replace("vllm_", "", regex=False)
    return pd.DataFrame({
        "op_class": "custom_all_reduce", "dtype": dt, "num_gpus": d["num_gpus"],
        "nbytes": d["message_size"].to_numpy(float) * elem.to_numpy(float), "backend": backend,
        "measured_s": _ms(d["latency"]), "version": d.get("version"), "kernel_source": d.get("kernel_source"),
    })


# --------------------------------------------------------------------------- Vidur

#: Vidur mlp.csv op name -> (op_class, weight name) for the token-level GEMMs.
VIDUR_GEMM_OPS = {"attn_pre_proj": "qkv_proj", "attn_post_proj": "o_proj", "mlp_up_proj": "gate_up_proj", "mlp_down_proj": "down_proj"}
VIDUR_ELEMENTWISE_OPS = ("input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add")


def read_vidur_mlp(path: str | Path, stat: str = "median") -> pd.DataFrame:
    """One Vidur ``mlp.csv``: the four linear ops as GEMM rows (per-GPU m, n, k under the
    file's TP) and the elementwise ops (with the bytes they move, bf16 activations)."""
    p = Path(path)
    try:
        d = pd.read_csv(p)
    except Exception as exc:
        raise CalibrationError(f"{p}: cannot read CSV ({exc})") from None
    _need(d, ["n_head", "n_kv_head", "n_embd", "n_expanded_embd", "num_tokens", "num_tensor_parallel_workers"], p)
    gated = d["use_gated_mlp"].astype(bool) if "use_gated_mlp" in d.columns else pd.Series(True, index=d.index)
    tp = d["num_tensor_parallel_workers"].to_numpy(int)
    h = d["n_embd"].to_numpy(int)
    heads = d["n_head"].to_numpy(int)
    kv = d["n_kv_head"].to_numpy(int)
    hd = h // heads
    inter = d["n_expanded_embd"].to_numpy(int)
    T = d["num_tokens"].to_numpy(int)
    kvl = np.maximum(1, kv // tp)
    shapes = {
        "attn_pre_proj": ((heads // tp + 2 * kvl) * hd, h),
        "attn_post_proj": (h, heads // tp * hd),
        "mlp_up_proj": (np.where(gated, 2, 1) * inter // tp, h),
        "mlp_down_proj": (h, inter // tp),
    }
    model = f"{p.parent.parent.name}/{p.parent.name}"
    gpu = p.parent.parent.parent.name
    frames = []
    for op, (n, k) in shapes.items():
        col = f"time_stats.{op}.{stat}"
        if col not in d.columns:
            continue
        frames.append(pd.DataFrame({
            "op_class": "gemm", "dtype": "fp16", "m": T, "n": n, "k": k, "measured_s": d[col].to_numpy(float) * 1e-3,
            "label": f"{model} {VIDUR_GEMM_OPS[op]} tp{tp[0] if len(set(tp)) == 1 else ''}".rstrip(),
            "moe_tp": tp, "kernel_source": op,
        }))
    for op in VIDUR_ELEMENTWISE_OPS:
        col = f"time_stats.{op}.{stat}"
        if col not in d.columns:
            continue
        width = np.where(op == "mlp_act", inter // tp * 3, h * (3 if op == "add" else 2))
        frames.append(pd.DataFrame({
            "op_class": "elementwise", "dtype": "fp16", "num_tokens": T, "nbytes": T * width * 2.0,
            "measured_s": d[col].to_numpy(float) * 1e-3, "label": f"{model} {op}", "moe_tp": tp, "kernel_source": op,
        }))
    if not frames:
        raise CalibrationError(f"{p}: no time_stats.<op>.{stat} columns found")
    out = pd.concat(frames, ignore_index=True)
    out["label"] = [f"{model} {ks} tp{t}" for ks, t in zip(out["kernel_source"], out["moe_tp"].astype(int))]
    out["source"] = f"vidur:{gpu}/{model}/mlp.csv"
    out["gpu"] = gpu
    out["version"] = "sarathi-serve"
    return _tidy(out)


def read_vidur_network(path: str | Path, stat: str = "median") -> pd.DataFrame:
    """Vidur ``all_reduce.csv`` / ``send_recv.csv`` (``size`` counts fp16 elements)."""
    p = Path(path)
    try:
        d = pd.read_csv(p)
    except Exception as exc:
        raise CalibrationError(f"{p}: cannot read CSV ({exc})") from None
    _need(d, ["size", "num_workers", "collective"], p)
    coll = str(d["collective"].iloc[0])
    col = f"time_stats.{coll}.{stat}"
    _need(d, [col], p)
    op = "nccl_all_reduce" if coll == "all_reduce" else "p2p"
    out = pd.DataFrame({
        "op_class": op, "dtype": "fp16", "num_gpus": d["num_workers"], "nbytes": d["size"].to_numpy(float) * 2.0,
        "backend": "nccl", "measured_s": d[col].to_numpy(float) * 1e-3, "kernel_source": coll,
    })
    out["gpu"] = p.parent.name
    out["source"] = f"vidur:network/{p.parent.name}/{p.name}"
    out["version"] = "sarathi-serve"
    return _tidy(out)


def read_vidur(folder: str | Path, stat: str = "median") -> pd.DataFrame:
    """Every ``mlp.csv`` and network CSV under a Vidur ``profiling`` folder (or a sub-folder)."""
    root = Path(folder)
    frames = [read_vidur_mlp(f, stat) for f in sorted(root.rglob("mlp.csv"))]
    frames += [read_vidur_network(f, stat) for f in sorted(root.rglob("all_reduce.csv"))]
    frames += [read_vidur_network(f, stat) for f in sorted(root.rglob("send_recv.csv"))]
    if not frames:
        raise CalibrationError(f"{root}: no Vidur mlp.csv / all_reduce.csv / send_recv.csv found")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- Chrome traces

#: Kernel-name regular expressions (searched, case-insensitive) -> op class, first match wins.
#: Override with ``patterns=`` (a list of (regex, op_class) pairs or a JSON/YAML file of them).
DEFAULT_KERNEL_PATTERNS: list[tuple[str, str]] = [
    (r"cross_device_reduce|custom_?all_?reduce", "custom_all_reduce"),
    (r"nccl.*all_?reduce", "nccl_all_reduce"),
    (r"nccl.*all_?gather", "nccl_all_gather"),
    (r"nccl.*reduce_?scatter", "nccl_reduce_scatter"),
    (r"nccl.*(alltoall|sendrecv)", "nccl_alltoall"),
    (r"fused_moe|moe_align|topk_softmax|moe_sum|flashinfer.*moe|cutlass_moe", "moe"),
    (r"flash_fwd_splitkv|flash_?attn.*(splitkv|decode)|paged_attention|flashinfer.*decode|fmha.*decode", "generation_attention"),
    (r"flash_fwd|flash_?attn|fmha|flashinfer.*prefill|attention", "context_attention"),
    (r"gemm|cutlass|cublas|nvjet|xmma|sm\d+_.*(h|s)mma|deep_?gemm|scaled_mm|matmul", "gemm"),
    (r"rms_?norm|layer_?norm|rotary|silu|gelu|act_and_mul|elementwise|vectorized|reduce_kernel|add_kernel", "elementwise"),
]

_GEMM_CPU_OPS = ("aten::mm", "aten::addmm", "aten::linear", "aten::matmul", "aten::bmm", "aten::_scaled_mm")


def _load_patterns(patterns) -> list[tuple[re.Pattern, str]]:
    if patterns is None:
        pairs = DEFAULT_KERNEL_PATTERNS
    elif isinstance(patterns, (str, Path)):
        p = Path(patterns)
        try:
            text = p.read_text(encoding="utf-8")
            if p.suffix in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:
            raise CalibrationError(f"{p}: cannot read the kernel-pattern table ({exc})") from None
        pairs = list(raw.items()) if isinstance(raw, dict) else [tuple(x) for x in raw]
    else:
        pairs = list(patterns.items()) if isinstance(patterns, dict) else list(patterns)
    out = []
    for pat, cls in pairs:
        try:
            out.append((re.compile(str(pat), re.IGNORECASE), str(cls)))
        except re.error as exc:
            raise CalibrationError(f"kernel pattern {pat!r}: invalid regular expression ({exc})") from None
    return out


def _dims(args: dict) -> list | None:
    for key in ("Input Dims", "input_dims", "Input dims", "shapes"):
        if key in args and isinstance(args[key], list):
            return args[key]
    return None


def _gemm_shape(op_name: str, dims: list) -> tuple[float, float, float] | None:
    """(m, n, k) from a CPU op's input dims (torch.profiler ``record_shapes=True``)."""
    try:
        shapes = [list(d) for d in dims if isinstance(d, list) and len(d) > 0]
        if op_name == "aten::linear":  # x[..., k], W[n, k]
            x, w = shapes[0], shapes[1]
            return float(np.prod(x[:-1])), float(w[0]), float(x[-1])
        if op_name == "aten::addmm":  # bias, x[m, k], W[k, n]
            x, w = shapes[-2], shapes[-1]
            return float(x[0]), float(w[1]), float(x[1])
        if op_name in ("aten::bmm",):
            x, w = shapes[0], shapes[1]
            return float(x[0] * x[1]), float(w[-1]), float(x[-1])
        x, w = shapes[0], shapes[1]  # mm / matmul / _scaled_mm: x[..., m, k], W[k, n]
        return float(np.prod(x[:-1])), float(w[-1]), float(x[-1])
    except (IndexError, TypeError, ValueError):
        return None


_TORCH_DTYPE = {"c10::BFloat16": "bf16", "c10::Half": "fp16", "float": "fp32", "c10::Float8_e4m3fn": "fp8"}


def read_chrome_trace(path: str | Path, patterns=None, *, gpu: str | None = None) -> pd.DataFrame:
    """GPU kernel events of a Chrome-trace JSON (``torch.profiler`` ``export_chrome_trace``,
    vLLM's ``VLLM_TORCH_PROFILER_DIR`` output; ``.json`` or ``.json.gz``).

    Kernel events are the complete events (``ph == "X"``) whose ``cat`` is ``kernel`` (or
    ``gpu_op`` / ``cuda_runtime`` kernels in older exporters); each is mapped to an op class by
    the first matching pattern, unmatched kernels become ``other``.  ``dur`` is microseconds.
    Shapes: a GEMM kernel takes m, n, k from the CPU op that launched it (linked by the
    ``External id`` / ``correlation`` args; needs ``record_shapes=True``) or from ``m``,
    ``n``, ``k`` args on the kernel itself; collectives take ``nbytes`` / ``num_gpus`` from
    args when present (``In msg nelems`` and ``Group size`` in torch's NCCL records).
    """
    p = Path(path)
    try:
        if p.suffix == ".gz":
            import gzip

            raw = json.loads(gzip.decompress(p.read_bytes()).decode("utf-8"))
        else:
            raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"{p}: file not found") from None
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{p}: not a Chrome-trace JSON ({exc})") from None
    events = raw.get("traceEvents") if isinstance(raw, dict) else raw
    if not isinstance(events, list):
        raise CalibrationError(f"{p}: no traceEvents list")
    pats = _load_patterns(patterns)
    cpu_by_ext: dict = {}
    kernels = []
    for ev in events:
        if not isinstance(ev, dict) or ev.get("ph") != "X":
            continue
        cat = str(ev.get("cat", "")).lower()
        args = ev.get("args") or {}
        if cat in ("kernel", "gpu_op"):
            kernels.append(ev)
        elif cat in ("cpu_op", "operator", "user_annotation", ""):
            ext = args.get("External id")
            if ext is not None and str(ev.get("name", "")).startswith("aten::"):
                prev = cpu_by_ext.get(ext)
                # keep the innermost GEMM op (mm under linear) when several share an id
                if prev is None or str(ev.get("name")) in _GEMM_CPU_OPS:
                    cpu_by_ext[ext] = ev
    rows = []
    for ev in kernels:
        name = str(ev.get("name", ""))
        args = ev.get("args") or {}
        op = next((cls for rx, cls in pats if rx.search(name)), "other")
        row = {"op_class": op, "measured_s": float(ev.get("dur", 0.0)) * 1e-6, "kernel_source": name[:200]}
        cpu = cpu_by_ext.get(args.get("External id"))
        if op == "gemm":
            if all(x in args for x in ("m", "n", "k")):
                row.update(m=float(args["m"]), n=float(args["n"]), k=float(args["k"]))
            elif cpu is not None:
                cargs = cpu.get("args") or {}
                dims = _dims(cargs)
                shape = _gemm_shape(str(cpu.get("name")), dims) if dims else None
                if shape:
                    row.update(m=shape[0], n=shape[1], k=shape[2])
                types = cargs.get("Input type")
                if isinstance(types, list) and len(types) > 1:
                    row["dtype"] = _TORCH_DTYPE.get(str(types[1]), _dtype(types[1]))
            row.setdefault("dtype", _dtype(args["dtype"]) if "dtype" in args else "bf16")
        elif op.startswith("nccl_") or op == "custom_all_reduce":
            ne = args.get("In msg nelems", args.get("nelems"))
            if ne is not None:
                row["nbytes"] = float(ne) * _ELEM_BYTES.get(_dtype(args.get("dtype", "bf16")), 2.0)
            if "nbytes" in args:
                row["nbytes"] = float(args["nbytes"])
            gs = args.get("Group size", args.get("num_gpus"))
            if gs is not None:
                row["num_gpus"] = float(gs)
            row["backend"] = "nccl" if op.startswith("nccl_") else "graph"
        rows.append(row)
    if not rows:
        raise CalibrationError(f"{p}: no GPU kernel events (ph 'X', cat 'kernel') found")
    df = pd.DataFrame(rows)
    df["source"] = f"chrome:{p.name}"
    df["gpu"] = gpu
    return _tidy(df)


# --------------------------------------------------------------------------- dispatch


def detect_format(folder: str | Path) -> str:
    """``aiconfigurator``, ``vidur`` or ``chrome`` for a traces folder (or a single file)."""
    p = Path(folder)
    if p.is_file():
        if p.name.endswith((".json", ".json.gz")):
            return "chrome"
        if p.name == "mlp.csv" or p.name in ("all_reduce.csv", "send_recv.csv"):
            return "vidur"
        raise CalibrationError(f"--traces = {str(folder)!r}: unknown file type (expected a Chrome-trace .json or a Vidur CSV)")
    if not p.is_dir():
        raise CalibrationError(f"--traces = {str(folder)!r}: not a file or folder")
    if any(p.glob("*/*/*/*_perf.parquet")):
        return "aiconfigurator"
    if any(p.rglob("mlp.csv")) or any(p.rglob("all_reduce.csv")):
        return "vidur"
    if any(p.glob("*.json")) or any(p.glob("*.json.gz")):
        return "chrome"
    raise CalibrationError(
        f"--traces = {str(folder)!r}: no aiconfigurator tables (*/<framework>/<version>/*_perf.parquet), "
        "Vidur CSVs or Chrome-trace JSON found"
    )


def read_traces(folder: str | Path, *, patterns=None) -> pd.DataFrame:
    """Read every measurement under ``folder`` (format detected) into the tidy frame."""
    fmt = detect_format(folder)
    p = Path(folder)
    if fmt == "aiconfigurator":
        return read_aiconfigurator(p)
    if fmt == "vidur":
        if p.is_file():
            return read_vidur_mlp(p) if p.name == "mlp.csv" else read_vidur_network(p)
        return read_vidur(p)
    files = [p] if p.is_file() else sorted(list(p.glob("*.json")) + list(p.glob("*.json.gz")))
    return pd.concat([read_chrome_trace(f, patterns) for f in files], ignore_index=True)
