"""Fit a profile's engine-level overheads (``engine:`` section) to measured serving runs.

Fitting by re-simulating every row for every trial parameter is too slow, so the fit works on
each row's **trace**: the segments one simulation produced (iterations, scheduled requests,
prefill tokens, GPU time) and, per request, the segments it was sent after, got its first
token in and finished in.  For fixed batch compositions a row's times are a function of the
overheads alone:

* a segment of ``m`` iterations lasts ``gpu + m host`` without async scheduling, with host time
  ``step + per_seq x scheduled + per_prefill_token x prefill tokens``; with it
  ``sum_i max(gpu_i, host) + m (exposed + exposed_per_seq x scheduled)`` (GPU time taken linear
  between the segment's first and last iteration);
* a request's TTFT is the time from the end of the segment that freed its slot to the end of its
  first-token segment, its TPOT from there to its finishing segment over ``output - 1``.

The composition itself moves a little with the overheads (a longer step admits more arrivals),
so :func:`rlsim.calibration.e2e.calibrate_e2e` alternates: fit on the traces, re-simulate with the fitted values,
fit again (``rounds``).  The loss is robust (Huber, scale 10 %) on ``log(simulated /
measured)`` of every reachable TPOT and TTFT.  Parameters are physical and bounded (>= 0):
four (:data:`FITTED`), each fitted only if some row informs it (the synchronous-scheduling
terms need rows measured without async scheduling, i.e. vLLM before 0.12).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["RowTrace", "trace_from_run", "trace_times", "weighted_means", "fit_on_traces", "segment_durations_s", "PARAMS",
           "FITTED", "FitResult"]

#: The overheads a trace is timed with (``EngineOverheads`` field names, us).
PARAMS = ("step_us", "per_seq_us", "per_prefill_token_us", "async_exposed_us", "async_exposed_per_seq_us")
#: The ones fitted: ``per_prefill_token_us`` (~0.02 us a token, tens of us a step) is below what
#: end-to-end times resolve, so it keeps the profile's (assumed) value.
FITTED = ("step_us", "per_seq_us", "async_exposed_us", "async_exposed_per_seq_us")
_SYNC = {"step_us", "per_seq_us"}
_HUBER_SCALE = 0.1


@dataclass(frozen=True)
class RowTrace:
    """One simulated row's composition (one engine)."""

    async_scheduling: bool
    iterations: np.ndarray
    scheduled: np.ndarray
    prefill_tokens: np.ndarray
    gpu_s: np.ndarray
    gpu_first_s: np.ndarray
    gpu_last_s: np.ndarray
    seg_send: np.ndarray    # -1: sent at t = 0
    seg_first: np.ndarray
    seg_finish: np.ndarray
    output_len: np.ndarray
    weights: np.ndarray     # sent requests each simulated one stands for (rlsim.serving.rows.wave_weights)


def trace_from_run(segments, seqs, async_scheduling: bool, weights=None) -> RowTrace | None:
    """The trace of a one-engine serving run (None with several engines); ``weights`` per
    request in seq_id order (default 1)."""
    if len(segments) == 0 or segments["engine"].nunique() != 1:
        return None
    col = lambda c, dt=np.float64: segments[c].to_numpy(dtype=dt)  # noqa: E731
    ends = col("t1_s")
    send = seqs["send_s"].to_numpy()
    seg_send = np.searchsorted(ends, send, side="right") - 1  # the last segment ended by the send
    return RowTrace(async_scheduling, col("iterations", np.int64), col("scheduled", np.int64), col("prefill_tokens"),
                    col("gpu_s"), col("gpu_first_s"), col("gpu_last_s"), seg_send,
                    seqs["first_token_seg"].to_numpy(), seqs["finish_seg"].to_numpy(), seqs["response_len"].to_numpy(),
                    np.ones(len(seqs)) if weights is None else np.asarray(weights, dtype=np.float64))


def _sum_max(t: RowTrace, host: np.ndarray) -> np.ndarray:
    """sum over a segment's iterations of max(gpu_i, host), gpu linear from first to last."""
    m = t.iterations.astype(np.float64)
    lo, hi = np.minimum(t.gpu_first_s, t.gpu_last_s), np.maximum(t.gpu_first_s, t.gpu_last_s)
    span = np.maximum(hi - lo, 1e-18)
    frac = np.clip((host - lo) / span, 0.0, 1.0)  # share of iterations whose GPU time is below host
    partial = t.gpu_s + m * frac * np.maximum(host - lo, 0.0) / 2.0
    return np.where(host <= lo, t.gpu_s, np.where(host >= hi, m * host, partial))


def segment_durations_s(t: RowTrace, p: dict[str, float]) -> np.ndarray:
    """Each segment's duration under overheads ``p`` (us)."""
    host = 1e-6 * (p["step_us"] + p["per_seq_us"] * t.scheduled + p["per_prefill_token_us"] * t.prefill_tokens)
    m = t.iterations.astype(np.float64)
    if not t.async_scheduling:
        return t.gpu_s + m * host
    exposed = 1e-6 * (p["async_exposed_us"] + p["async_exposed_per_seq_us"] * t.scheduled)
    return _sum_max(t, host) + m * exposed


def trace_times(t: RowTrace, p: dict[str, float]) -> tuple[float, float]:
    """Mean TTFT and mean TPOT (ms) of the row under overheads ``p``."""
    end = np.concatenate([[0.0], np.cumsum(segment_durations_s(t, p))])  # end[k + 1] = end of segment k
    send, first, fin = end[t.seg_send + 1], end[t.seg_first + 1], end[t.seg_finish + 1]
    return weighted_means(first - send, fin - first, t.output_len, t.weights)


def weighted_means(ttft_s: np.ndarray, decode_s: np.ndarray, output_len: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Mean TTFT and mean TPOT (ms) over requests standing for ``weights`` sent ones each;
    TPOT over requests with more than one output token (vLLM's definition)."""
    many = output_len > 1
    ttft = 1e3 * float(np.average(ttft_s, weights=weights))
    if not many.any():
        return ttft, float("nan")
    return ttft, 1e3 * float(np.average(decode_s[many] / (output_len[many] - 1), weights=weights[many]))


@dataclass(frozen=True)
class FitResult:
    """Fitted overheads, which were free, and the rows used."""

    params: dict[str, float]
    free: tuple[str, ...]
    rows_tpot: int
    rows_ttft: int


def _free_params(traces: list[RowTrace]) -> tuple[str, ...]:
    sync = any(not t.async_scheduling for t in traces)
    asyn = any(t.async_scheduling for t in traces)
    return tuple(k for k in FITTED if (k in _SYNC and sync) or (k not in _SYNC and asyn))


def fit_on_traces(items: list[tuple[RowTrace, float | None, float | None]], start: dict[str, float]) -> FitResult:
    """Least squares (Huber on log ratios) over ``(trace, measured ttft ms or None, measured tpot
    ms or None)``; parameters no row informs keep their ``start`` value."""
    traces = [t for t, _, _ in items]
    free = _free_params(traces)
    if not free:
        return FitResult(dict(start), (), 0, 0)
    x0 = np.array([max(start[k], 1e-3) for k in free])

    def unpack(x):
        return start | dict(zip(free, x))

    def residuals(x):
        p = unpack(x)
        out = []
        for t, ttft, tpot in items:
            sim_ttft, sim_tpot = trace_times(t, p)
            if tpot is not None:
                out.append(np.log(sim_tpot / tpot))
            if ttft is not None:
                out.append(np.log(sim_ttft / ttft))
        return np.array(out)

    sol = optimize.least_squares(residuals, x0, bounds=(0.0, np.inf), loss="huber", f_scale=_HUBER_SCALE,
                                 x_scale=np.maximum(x0, 1.0), max_nfev=200)
    return FitResult(unpack(sol.x), free, sum(1 for _, _, v in items if v is not None),
                     sum(1 for _, v, _ in items if v is not None))
