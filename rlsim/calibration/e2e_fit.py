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
  first-token segment, its TPOT from there to its finishing segment over ``output - 1``; the
  engine's idle gaps (waiting for an arrival) are kept as recorded, and a change of the API
  server's time per request shifts each TTFT by the difference (first order).

A pass without a CUDA graph takes ``max(GPU, dispatch)`` in the simulator
(:mod:`rlsim.cost.forward`); the trace shifts its recorded time by a routing change as if
additive, exact where the pass is GPU-bound, and the re-simulation between rounds (below) puts
the host-bound ones right.

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
PARAMS = ("step_us", "per_seq_us", "per_prefill_token_us", "async_exposed_us", "async_exposed_per_seq_us",
          "moe_routing_us_per_layer", "api_server_us", "api_server_us_per_prompt_token")
#: The ones fitted.  Kept at the profile's (assumed) values: ``per_prefill_token_us`` (~0.02 us a
#: token, tens of us a step, below what end-to-end times resolve) and the API server's times
#: (a request's delay before the engine moves its TTFT only when it crosses a step boundary, so
#: a trace with fixed steps cannot price it; they are re-simulated, not fitted).
FITTED = ("step_us", "per_seq_us", "async_exposed_us", "async_exposed_per_seq_us", "moe_routing_us_per_layer")
_SYNC = {"step_us", "per_seq_us"}
_ASYNC = {"async_exposed_us", "async_exposed_per_seq_us"}
_TTFT = {"api_server_us", "api_server_us_per_prompt_token"}
_HUBER_SCALE = 0.1


@dataclass(frozen=True)
class RowTrace:
    """One simulated row's composition (one engine)."""

    async_scheduling: bool
    iterations: np.ndarray
    idle_before_s: np.ndarray  # the engine's idle time before each segment (waiting for an arrival)
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
    prompt_len: np.ndarray
    moe_layers: int         # MoE layers of one pass (routing kernels)
    base: dict              # the overheads (us) the run was simulated with


def trace_from_run(segments, seqs, async_scheduling: bool, weights=None, moe_layers: int = 0,
                   base: dict | None = None) -> RowTrace | None:
    """The trace of a one-engine serving run (None with several engines); ``weights`` per
    request in seq_id order (default 1); ``base`` the overheads it ran with."""
    if len(segments) == 0 or segments["engine"].nunique() != 1:
        return None
    col = lambda c, dt=np.float64: segments[c].to_numpy(dtype=dt)  # noqa: E731
    ends = col("t1_s")
    send = seqs["send_s"].to_numpy()
    seg_send = np.searchsorted(ends, send, side="right") - 1  # the last segment ended by the send
    idle = np.maximum(col("t0_s") - np.concatenate([[0.0], ends[:-1]]), 0.0)
    return RowTrace(async_scheduling, col("iterations", np.int64), idle, col("scheduled", np.int64), col("prefill_tokens"),
                    col("gpu_s"), col("gpu_first_s"), col("gpu_last_s"), seg_send,
                    seqs["first_token_seg"].to_numpy(), seqs["finish_seg"].to_numpy(), seqs["response_len"].to_numpy(),
                    np.ones(len(seqs)) if weights is None else np.asarray(weights, dtype=np.float64),
                    seqs["prompt_len"].to_numpy(), int(moe_layers), dict(base or {}))


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
    routing = 1e-6 * t.moe_layers * (p["moe_routing_us_per_layer"] - t.base.get("moe_routing_us_per_layer", 0.0))
    gpu = t.gpu_s + m * routing
    if not t.async_scheduling:
        return gpu + m * host
    exposed = 1e-6 * (p["async_exposed_us"] + p["async_exposed_per_seq_us"] * t.scheduled)
    shifted = RowTrace(**{**t.__dict__, "gpu_s": gpu, "gpu_first_s": t.gpu_first_s + routing,
                          "gpu_last_s": t.gpu_last_s + routing})
    return _sum_max(shifted, host) + m * exposed


def trace_times(t: RowTrace, p: dict[str, float]) -> tuple[float, float]:
    """Mean TTFT and mean TPOT (ms) of the row under overheads ``p``."""
    end = np.concatenate([[0.0], np.cumsum(t.idle_before_s + segment_durations_s(t, p))])  # end[k + 1]: segment k's
    send, first, fin = end[t.seg_send + 1], end[t.seg_first + 1], end[t.seg_finish + 1]
    b = t.base
    frontend = 1e-6 * ((p["api_server_us"] - b.get("api_server_us", p["api_server_us"]))
                       + (p["api_server_us_per_prompt_token"] - b.get("api_server_us_per_prompt_token",
                                                                      p["api_server_us_per_prompt_token"])) * t.prompt_len)
    return weighted_means(first - send + frontend, fin - first, t.output_len, t.weights)


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


def _free_params(items) -> tuple[str, ...]:
    """The overheads some row informs: synchronous-scheduling terms need rows without async
    scheduling, async terms rows with it, the MoE routing term MoE rows, the API-server terms
    reachable TTFTs."""
    traces = [t for t, _, _ in items]
    informed = {"sync": any(not t.async_scheduling for t in traces), "async": any(t.async_scheduling for t in traces),
                "moe": any(t.moe_layers for t in traces), "ttft": any(v is not None for _, v, _ in items)}
    kind = lambda k: "sync" if k in _SYNC else "async" if k in _ASYNC else "ttft" if k in _TTFT else "moe"  # noqa: E731
    return tuple(k for k in FITTED if informed[kind(k)])


def fit_on_traces(items: list[tuple[RowTrace, float | None, float | None]], start: dict[str, float]) -> FitResult:
    """Least squares (Huber on log ratios) over ``(trace, measured ttft ms or None, measured tpot
    ms or None)``; parameters no row informs keep their ``start`` value."""
    free = _free_params(items)
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
                out.append(np.log(max(sim_tpot, 1e-9) / tpot))
            if ttft is not None:
                out.append(np.log(max(sim_ttft, 1e-9) / ttft))
        return np.array(out)

    sol = optimize.least_squares(residuals, x0, bounds=(0.0, np.inf), loss="huber", f_scale=_HUBER_SCALE,
                                 x_scale=np.maximum(x0, 1.0), max_nfev=200)
    return FitResult(unpack(sol.x), free, sum(1 for _, _, v in items if v is not None),
                     sum(1 for _, v, _ in items if v is not None))
