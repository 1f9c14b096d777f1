"""Measured end-to-end serving runs: the CSV layout of ``shared/e2e/`` or a folder of
``vllm bench serve --save-result`` JSON files, read into one row type.

CSV columns (``shared/e2e/README.md``): ``id, vllm_version, model, system, precision,
gemm_quant_mode, moe_quant_mode, isl, osl, concurrency, tp, pp, attention_dp, moe_tp, moe_ep,
ttft_ms, tpot_ms`` (``container_image`` and ``measured_date`` are kept when present).

A JSON folder: each ``NAME.json`` is a saved result (``model_id``, ``max_concurrency``,
``completed``, ``total_input_tokens``, ``total_output_tokens``, ``mean_ttft_ms``,
``mean_tpot_ms``), and ``NAME.serve.txt`` beside it holds the ``vllm serve`` command line it
was measured with, plus ``--hardware PROFILE`` (vLLM does not record the GPU) -- e.g.
``vllm serve meta-llama/Llama-3.1-70B -tp 4 --hardware h100_sxm``.  Lengths are the means per
request (a random dataset with fixed lengths).
"""

from __future__ import annotations

import csv
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from rlsim.errors import CalibrationError

__all__ = ["MeasuredRun", "read_measurements", "CSV_COLUMNS"]

#: Columns a measurement CSV must have.
CSV_COLUMNS = ("id", "vllm_version", "model", "system", "precision", "gemm_quant_mode", "moe_quant_mode", "isl",
               "osl", "concurrency", "tp", "pp", "attention_dp", "moe_tp", "moe_ep", "ttft_ms", "tpot_ms")


@dataclass(frozen=True)
class MeasuredRun:
    """One measured benchmark run (times in ms, as vLLM reports them)."""

    id: str
    system: str
    model: str
    vllm_version: str | None
    precision: str
    gemm_quant_mode: str
    moe_quant_mode: str
    isl: int
    osl: int
    concurrency: int
    tp: int
    pp: int
    attention_dp: int
    moe_tp: int
    moe_ep: int
    ttft_ms: float
    tpot_ms: float
    serve_flags: dict = field(default_factory=dict)  # further `vllm serve` flags (JSON folders)
    measured_date: str | None = None

    @property
    def group(self) -> str:
        """The (system, model) group the error report is broken down by."""
        return f"{self.system}:{self.model}"

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.attention_dp


def _int(row: dict, key: str, where: str) -> int:
    try:
        value = int(str(row[key]).strip())
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: {key} = {row[key]!r} must be an integer") from None
    if value < 1:
        raise CalibrationError(f"{where}: {key} = {value} must be >= 1")
    return value


def _time(row: dict, key: str, where: str) -> float:
    try:
        value = float(str(row[key]).strip())
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: {key} = {row[key]!r} must be a number") from None
    if not math.isfinite(value) or value <= 0:
        raise CalibrationError(f"{where}: {key} = {value!r} must be a positive time in ms")
    return value


def _run(row: dict, where: str, flags: dict | None = None) -> MeasuredRun:
    ints = {k: _int(row, k, where) for k in ("isl", "osl", "concurrency", "tp", "pp", "attention_dp", "moe_tp", "moe_ep")}
    version = str(row.get("vllm_version") or "").strip() or None
    date = str(row.get("measured_date") or "").strip() or None
    text = {k: str(row.get(k) or "").strip() for k in ("id", "system", "model", "precision", "gemm_quant_mode", "moe_quant_mode")}
    for k in ("system", "model"):
        if not text[k]:
            raise CalibrationError(f"{where}: {k} is empty")
    return MeasuredRun(**text, vllm_version=version, **ints, ttft_ms=_time(row, "ttft_ms", where),
                       tpot_ms=_time(row, "tpot_ms", where), serve_flags=flags or {}, measured_date=date)


def _read_csv(path: Path) -> list[MeasuredRun]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CalibrationError(f"{path}: missing columns {', '.join(missing)} (see rlsim.serving.measured)")
            return [_run(row, f"{path}: row {i}") for i, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CalibrationError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None


def _serve_flags(path: Path) -> tuple[str | None, dict]:
    """The model (first positional argument) and the ``--flag value`` pairs of a vllm serve line."""
    words = shlex.split(path.read_text(encoding="utf-8"))
    if words[:2] == ["vllm", "serve"]:
        words = words[2:]
    model, flags, i = None, {}, 0
    while i < len(words):
        w = words[i]
        if w.startswith("-"):
            key = w.lstrip("-").replace("-", "_")
            value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("-") else "true"
            flags[key] = value
            i += 2 if value != "true" else 1
        else:
            model = model or w
            i += 1
    return model, flags


_SHORT = {"tp": "tensor_parallel_size", "dp": "data_parallel_size", "pp": "pipeline_parallel_size"}


def _read_json(path: Path) -> MeasuredRun:
    serve = path.with_name(path.stem + ".serve.txt")
    if not serve.exists():
        raise CalibrationError(f"{path}: no {serve.name} beside it (the vllm serve command line + --hardware)")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        model, flags = _serve_flags(serve)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    flags = {_SHORT.get(k, k): v for k, v in flags.items()}
    if "hardware" not in flags:
        raise CalibrationError(f"{serve}: needs --hardware PROFILE (vLLM does not record the GPU)")
    n = result.get("completed") or 0
    if not n:
        raise CalibrationError(f"{path}: completed = {n!r} must be >= 1")
    tp, dp = int(flags.get("tensor_parallel_size", 1)), int(flags.get("data_parallel_size", 1))
    ep = flags.get("enable_expert_parallel") == "true"
    quant = flags.get("quantization", "")
    row = {"id": path.stem, "system": flags["hardware"], "model": result.get("model_id") or model or "",
           "vllm_version": flags.get("vllm_version"), "precision": quant, "gemm_quant_mode": quant, "moe_quant_mode": quant,
           "isl": round(result.get("total_input_tokens", 0) / n), "osl": round(result.get("total_output_tokens", 0) / n),
           "concurrency": result.get("max_concurrency") or n, "tp": tp, "pp": int(flags.get("pipeline_parallel_size", 1)),
           "attention_dp": dp, "moe_tp": 1 if ep else tp, "moe_ep": tp * dp if ep else 1,
           "ttft_ms": result.get("mean_ttft_ms"), "tpot_ms": result.get("mean_tpot_ms")}
    return _run(row, str(path), flags)


def read_measurements(path: str | Path) -> list[MeasuredRun]:
    """Every measured run in a CSV file or a folder of saved ``vllm bench serve`` results."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.json"))
        if not files:
            raise CalibrationError(f"{p}: no *.json results in the folder")
        return [_read_json(f) for f in files]
    if not p.is_file():
        raise CalibrationError(f"--measurements = {str(path)!r}: not a file or folder")
    runs = _read_csv(p)
    if not runs:
        raise CalibrationError(f"{p}: no rows")
    return runs
