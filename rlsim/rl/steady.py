"""Steady state of an RL pipeline: warm-up, the convergence rule, and windowed statistics.

Pure functions of recorded times (no simpy).  Definitions (DESIGN 8; issue "true async steady
state"):

* **warm-up** ``W``: ``rl.warmup_steps`` or, by default, ``lag + 1`` steps for async (batches
  0..lag are all dispatched at t = 0 and share the pool) and 1 for sync (the first step has no
  weight sync before it).  An async warm-up shorter than ``lag + 1`` is an error.
* **dispatch cycle** ``c = lag + 1`` steps: async batches are released in waves one policy
  version apart, so step times repeat with period ``c``; windows are whole cycles.
* **window** of ``n`` steps ``W .. W+n-1``: from the end of step ``W-1``'s training to the end
  of step ``W+n-1``'s: ``mean step time m(n) = (train_end[W+n-1] - train_end[W-1]) / n``.
* **converged** at the first ``n`` (a multiple of ``c``, ``n >= max(min_window_steps, 2c)``)
  with ``|m(n) - m(n - c)| <= rel_tol * m(n)``; capped at ``max_steps`` steps in all.
* batches after the window's last step are dispatched and generated as in a longer run (the
  simulation stops when that step's training ends): the window has no wind-down.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rlsim.errors import ConfigError

__all__ = ["warmup_steps", "cycle_steps", "window_mean", "convergence", "planned_steps", "window_stats",
           "overlap_s", "policy_lag"]


def cycle_steps(lag: int) -> int:
    """Steps per dispatch cycle: ``lag + 1``."""
    return lag + 1


def warmup_steps(rl, lag: int, source: str | None, pipeline: str) -> int:
    """The warm-up (module docstring); an async warm-up below ``lag + 1`` is a ConfigError."""
    need = lag + 1 if pipeline == "async" else 1
    if rl.warmup_steps is None:
        return need
    if rl.warmup_steps < need:
        raise ConfigError.at(source, "rl.warmup_steps", rl.warmup_steps,
                             f"must be >= max_trajectory_age_steps + 1 = {need} for an async pipeline "
                             "(batches 0..lag start together at t = 0; their steps are not steady state)")
    return rl.warmup_steps


def planned_steps(rl, warmup: int, lag: int, source: str | None) -> int:
    """Most steps the run may train: ``num_steps`` (fixed) or ``convergence.max_steps`` (cap)."""
    n = rl.num_steps if rl.num_steps is not None else rl.convergence.max_steps
    field = "rl.num_steps" if rl.num_steps is not None else "rl.convergence.max_steps"
    if n <= warmup:
        raise ConfigError.at(source, field, n, f"must exceed the warm-up of {warmup} steps (no steady-state window left)")
    return n


def window_mean(train_end: np.ndarray, warmup: int, n: int) -> float:
    """``m(n)``: mean step time over the ``n`` steps after the warm-up."""
    start = train_end[warmup - 1] if warmup > 0 else 0.0
    return float((train_end[warmup + n - 1] - start) / n)


def convergence(train_end: np.ndarray, warmup: int, lag: int, cfg) -> tuple[bool, float | None]:
    """``(converged, relative change of m over the last cycle)`` for the steps trained so far."""
    c = cycle_steps(lag)
    n = len(train_end) - warmup
    first = max(cfg.min_window_steps, 2 * c)
    first = c * math.ceil(first / c)
    if n < first or n % c:
        return False, None
    m, prev = window_mean(train_end, warmup, n), window_mean(train_end, warmup, n - c)
    change = abs(m - prev) / m
    return change <= cfg.rel_tol, change


def overlap_s(t0: np.ndarray, t1: np.ndarray, a: float, b: float) -> np.ndarray:
    """Length of each interval ``[t0, t1]`` inside ``[a, b]``."""
    return np.clip(np.minimum(t1, b) - np.maximum(t0, a), 0.0, None)


def policy_lag(seqs: pd.DataFrame, version_start_s: np.ndarray) -> pd.DataFrame:
    """Per trajectory of step ``t``: the policy version that generated its first token
    (admission) and its last (finish), and the lags ``t - version``.  Version ``v`` serves from
    ``version_start_s[v]`` (v = 0 from 0 s; then the end of weight sync ``v - 1``)."""
    def version(times: np.ndarray) -> np.ndarray:
        return np.searchsorted(version_start_s, times, side="right") - 1

    out = seqs.copy()
    out["version_first"] = version(seqs["admit_s"].to_numpy())
    out["version_last"] = version(seqs["finish_s"].to_numpy())
    out["lag_first"] = out["step"] - out["version_first"]
    out["lag_last"] = out["step"] - out["version_last"]
    return out


def _pool_window(busy_iv: pd.DataFrame, pauses: pd.DataFrame, seqs: pd.DataFrame, engines: int, a: float, b: float) -> dict:
    """Rollout pool over ``[a, b]``: tokens emitted per second (each trajectory's tokens spread
    evenly over its life, admission to finish -- or to ``b`` while still running), busy,
    weight-update and idle fractions of the engines' time (busy: engine segments and the
    iterations still running at ``b``)."""
    d = b - a
    busy = float(overlap_s(busy_iv["t0_s"].to_numpy(), busy_iv["t1_s"].to_numpy(), a, b).sum()) if len(busy_iv) else 0.0
    t0 = seqs["admit_s"].to_numpy()
    t1 = np.where(np.isnan(seqs["finish_s"].to_numpy()), b, seqs["finish_s"].to_numpy())
    ok = ~np.isnan(t0)
    life = np.maximum(t1[ok] - t0[ok], 1e-12)
    tokens = float((seqs["generated"].to_numpy()[ok] * overlap_s(t0[ok], t1[ok], a, b) / life).sum())
    paused = float(overlap_s(pauses["t0_s"].to_numpy(), pauses["t1_s"].to_numpy(), a, b).sum()) if len(pauses) else 0.0
    return {"rollout_tokens_per_s": tokens / d,
            "rollout_busy_tokens_per_s": tokens * engines / busy if busy > 0 else None,
            "rollout_busy_frac": busy / (engines * d), "rollout_weight_update_frac": paused / (engines * d),
            "rollout_idle_frac": max(0.0, 1.0 - (busy + paused) / (engines * d))}


def window_stats(steps: pd.DataFrame, busy: pd.DataFrame, pauses: pd.DataFrame, lags: pd.DataFrame,
                 engines: int, warmup: int) -> dict:
    """Throughput and spread over the steady-state window (module docstring); ``lags``: every
    dispatched trajectory with its policy versions (:func:`policy_lag`)."""
    win = steps[~steps["warmup"]]
    end = steps["train_end_s"].to_numpy()
    a = float(end[warmup - 1]) if warmup > 0 else 0.0
    b = float(end[-1])
    d, n = b - a, len(win)
    st = win["step_time_s"].to_numpy()
    out = {"window_steps": n, "window_start_s": a, "window_end_s": b, "step_time_s": d / n,
           "steps_per_hour": 3600.0 * n / d, "step_time_std_s": float(st.std(ddof=1)) if n > 1 else 0.0,
           "step_time_min_s": float(st.min()), "step_time_max_s": float(st.max()),
           "trainer_idle_frac": float((win["generation_time_s"] + win["reward_time_s"]).sum() / d),
           "trainer_weight_sync_frac": float(win["weight_sync_time_s"].sum() / d)}
    out.update(_pool_window(busy, pauses, lags, engines, a, b))
    w = lags[lags["step"].isin(win["step"])]
    out["policy_lag"] = {
        "mean_at_first_token": float(w["lag_first"].mean()), "max_at_first_token": int(w["lag_first"].max()),
        "mean_at_last_token": float(w["lag_last"].mean()),
        "multi_version_frac": float((w["version_first"] != w["version_last"]).mean()),
        "histogram_at_first_token": {int(k): int(v) for k, v in w["lag_first"].value_counts().sort_index().items()},
    }
    return out
