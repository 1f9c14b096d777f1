"""``vllm bench serve``'s metrics from simulated per-request times (vllm/benchmarks/serve.py
``calculate_metrics``), with its key names, so a saved result diffs against a real one.

Per request (times from when the client sends it, i.e. after the concurrency cap):
TTFT = first token - send; E2EL = last token - send; TPOT = (E2EL - TTFT) / (output - 1) for
outputs of more than one token; ITL = every gap between successive streamed chunks of a request
(one chunk per engine step: with speculative decoding a chunk carries 1 + accepted tokens).
Duration = from the first send to the last completion.  Mean / median / std / percentiles are
numpy's (``np.percentile`` with linear interpolation), in milliseconds; ITL statistics weight
each (request, step) pair once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PERCENTILE_METRICS", "bench_metrics", "weighted_percentile"]

#: The metrics vLLM reports mean / median / std / percentiles of.
PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """``np.percentile(np.repeat(values, weights), q)`` without building the repeated array."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    pos = q / 100.0 * (cum[-1] - 1)  # 0-based position in the expanded sorted array
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    v_lo, v_hi = v[np.searchsorted(cum, lo, side="right")], v[np.searchsorted(cum, hi, side="right")]
    return float(v_lo + (v_hi - v_lo) * (pos - lo))


def _stats(name: str, values_ms: np.ndarray, percentiles: tuple[float, ...], weights: np.ndarray | None = None) -> dict:
    if len(values_ms) == 0:
        return {f"{s}_{name}_ms": 0.0 for s in ("mean", "median", "std")} | {f"p{_pct(p)}_{name}_ms": 0.0 for p in percentiles}
    w = np.ones(len(values_ms), dtype=np.int64) if weights is None else weights
    mean = float(np.average(values_ms, weights=w))
    out = {f"mean_{name}_ms": mean, f"median_{name}_ms": weighted_percentile(values_ms, w, 50.0),
           f"std_{name}_ms": float(np.sqrt(np.average((values_ms - mean) ** 2, weights=w)))}
    for p in percentiles:
        out[f"p{_pct(p)}_{name}_ms"] = weighted_percentile(values_ms, w, p)
    return out


def _pct(p: float) -> str:
    """vLLM's key spelling of a percentile: 99 -> '99', 99.9 -> '99.9'."""
    return f"{p:g}"


def bench_metrics(seqs: pd.DataFrame, gaps_s: np.ndarray, gap_weights: np.ndarray,
                  percentiles: tuple[float, ...] = (99.0,)) -> dict:
    """vLLM's result keys from the sequences table (``send_s``, ``first_token_s``,
    ``finish_s``, ``prompt_len``, ``response_len``) and the inter-token gaps."""
    send, first, last = (seqs[c].to_numpy() for c in ("send_s", "first_token_s", "finish_s"))
    out_len = seqs["response_len"].to_numpy()
    ttft, e2el = first - send, last - send
    many = out_len > 1
    tpot = (e2el[many] - ttft[many]) / (out_len[many] - 1)
    duration = float(last.max() - send.min())
    total_in, total_out = int(seqs["prompt_len"].sum()), int(out_len.sum())
    result = {
        "duration": duration, "completed": int(len(seqs)), "failed": 0,
        "total_input_tokens": total_in, "total_output_tokens": total_out,
        "request_throughput": len(seqs) / duration, "output_throughput": total_out / duration,
        "total_token_throughput": (total_in + total_out) / duration,
        "max_concurrent_requests": _peak_in_flight(send, last),
    }
    for name, vals, w in (("ttft", ttft, None), ("tpot", tpot, None), ("itl", gaps_s, gap_weights), ("e2el", e2el, None)):
        result.update(_stats(name, vals * 1000.0, percentiles, w))
    return result


def _peak_in_flight(send: np.ndarray, done: np.ndarray) -> int:
    """Most requests in flight at once (a completion at t frees its slot before a send at t)."""
    times = np.concatenate([send, done])
    delta = np.concatenate([np.ones(len(send), dtype=np.int64), -np.ones(len(done), dtype=np.int64)])
    order = np.lexsort((delta, times))  # at equal times, -1 (completion) first
    return int(np.cumsum(delta[order]).max())
