"""NCCL collectives inside one NVLink domain: a physical model of the switch fabric, fitted
where measured and extrapolated by physics (never by the fit) beyond.

The fabric
----------
An HGX node (8 GPUs) and a GB200 NVL72 rack (72 GPUs: 18 trays of 4, each GPU with 18 NVLink-5
links into the rack's 18 NVSwitch chips; hardware_and_models.md A2) are *non-blocking* switch
fabrics: every GPU reaches every other at its full per-GPU link bandwidth ``nvlink_bw`` (per
direction), whatever the group size and whichever trays the members sit in.  A 4-GPU group in one
GB200 tray already goes through the NVSwitches, so the measured tray rows exercise the same links
and switches as a 72-GPU group.

Algorithms (NCCL's, per op)
---------------------------
* **ring** -- all-reduce = reduce-scatter + all-gather, ``2(n-1)`` steps; all-gather and
  reduce-scatter ``n-1`` steps; all-to-all ``n-1`` concurrent peer exchanges.  Each GPU's link carries
  ``bytes * factor(op, n)`` (``2(n-1)/n`` for all-reduce, ``(n-1)/n`` otherwise: the nccl-tests
  bus-bandwidth convention), so with two protocols (LL: low latency; Simple: more latency, more
  bandwidth) and NCCL's tuner picking the faster::

      t_proto(n) = alpha_proto(n) + bytes * factor(op, n) / (nvlink_bw * eff_proto(n))

* **NVLS** (NVLink SHARP, all-reduce only, where the profile has ``nvls_*`` parameters): the
  switch does the reduction; every GPU sends its buffer into the fabric once and reads the result
  once, so the data term does not grow with ``n``::

      t_nvls = nvls_alpha_us + bytes / (nvlink_bw * nvls_algbw_eff)

  (each GPU also reads 1/n of the reduced buffer for the multicast store: a (1 + 1/n) traffic
  refinement is left out, which keeps NVLS time independent of ``n``).

Parameters by group size
------------------------
At the group sizes a profile *measured* (the keys of its per-size maps) ``alpha`` and ``eff``
are fitted per size (``rlsim calibrate fit``) and interpolated in log2(n) between them: the
latency directly, the bandwidth term as *time per byte* ``factor(op, n) / eff(n)``.  Beyond the
largest measured size ``n_m`` nothing is fitted; the physics above extrapolates::

    alpha(n) = alpha(n_m) + step_us * (steps(op, n) - steps(op, n_m))   one hop latency per extra ring step
    eff(n)   = eff(n_m)                                                   link-bound on a non-blocking switch

with ``step_us`` = ``collectives.nccl_step_us`` (LL) / ``nccl_large_step_us`` (Simple), derived by
the fit from the measured all-reduce vs all-gather latencies (a ring all-reduce has ``n-1`` more
steps than an all-gather over the same GPUs).  ``collectives.measured_max_gpus`` marks where
extrapolation starts; runs warn beyond it.

Monotone in the group size
--------------------------
At fixed bytes a collective over more GPUs of one fabric never costs less in the model: between
measured sizes the time is clipped to the (running-maximum) times at the two neighbouring sizes,
beyond them it is at least the time at the largest one, and the extrapolation itself only adds
steps.  (Real NCCL can break this where its algorithm changes: on 8 H100s the NVLS all-reduce of
256 MiB takes 1.09 ms, on 4 GPUs ring takes 1.18 ms (A3.3).  The NVLS term is what models that
gain; its time is the same at 4 and 8 GPUs.)
"""

from __future__ import annotations

import numpy as np

from rlsim import units
from rlsim.hardware.profile import AlphaBeta, HardwareProfile, by_group_size

__all__ = ["ring_steps", "bus_factor", "measured_sizes", "nccl_domain_time_s", "alpha_beta_split"]


def ring_steps(op: str, n: float) -> float:
    """Latency-bearing sequential steps of NCCL's algorithm for ``op`` over ``n`` GPUs: ring
    all-reduce ``2(n-1)``, all-gather / reduce-scatter ``n-1``; all-to-all 0 -- its ``n-1`` peer
    exchanges run concurrently (grouped send / receive), so beyond the measured sizes it adds no
    latency per peer (assumed; GB200's 2 -> 4 GPU rows add ~0.5 us per peer with LL, which the
    measured sizes themselves carry)."""
    if op == "alltoall":
        return 0.0
    return 2.0 * (n - 1) if op == "all_reduce" else float(n - 1)


def bus_factor(op: str, n: float) -> float:
    """Bytes on each GPU's link per byte of buffer (nccl-tests bus-bandwidth convention)."""
    return 2.0 * (n - 1) / n if op == "all_reduce" else (n - 1) / n


def measured_sizes(ab: AlphaBeta) -> list[int]:
    """Group sizes the op's parameters were given at (keys of its per-size maps), sorted."""
    keys: set[int] = set()
    for name in ("alpha_us", "busbw_eff", "large_alpha_us", "large_busbw_eff"):
        v = getattr(ab, name)
        if isinstance(v, dict):
            keys |= set(v)
    return sorted(keys)


def _alpha_at(value, op: str, n: int, step_us: float | None) -> float:
    """Latency (us) at ``n``: interpolated between measured sizes, held below the smallest, and
    beyond the largest ``alpha(n_m) + step_us * (steps(n) - steps(n_m))``."""
    if not isinstance(value, dict):
        return float(value)
    hi = max(value)
    if n <= hi:
        return by_group_size(value, n) if n >= min(value) else float(value[min(value)])
    return float(value[hi]) + (step_us or 0.0) * (ring_steps(op, n) - ring_steps(op, hi))


def _time_per_byte(value, op: str, n: int, bw: float) -> float:
    """Seconds per byte of buffer at ``n``: ``factor(op, n) / (bw * eff)``, the ratio
    interpolated in log2(n) between measured sizes, ``eff`` held beyond them."""
    if not isinstance(value, dict):
        return bus_factor(op, n) / (bw * float(value))
    lo, hi = min(value), max(value)
    if n < lo or n > hi:
        return bus_factor(op, n) / (bw * float(value[lo if n < lo else hi]))
    ratio = {m: bus_factor(op, m) / (bw * e) for m, e in value.items()}
    return by_group_size(ratio, n, clamp=True)


def _raw(hw: HardwareProfile, ab: AlphaBeta, op: str, b: np.ndarray, n: int) -> np.ndarray:
    """Fastest algorithm / protocol at ``n`` before the monotone clipping."""
    c, bw = hw.collectives, hw.nvlink_bw_bytes_per_s
    t = units.us(_alpha_at(ab.alpha_us, op, n, c.nccl_step_us)) + b * _time_per_byte(ab.busbw_eff, op, n, bw)
    if ab.large_alpha_us is not None and ab.large_busbw_eff is not None:
        t2 = units.us(_alpha_at(ab.large_alpha_us, op, n, c.nccl_large_step_us)) + b * _time_per_byte(ab.large_busbw_eff, op, n, bw)
        t = np.minimum(t, t2)
    if op == "all_reduce" and ab.nvls_alpha_us is not None and ab.nvls_algbw_eff is not None:
        t = np.minimum(t, units.us(ab.nvls_alpha_us) + b / (bw * ab.nvls_algbw_eff))
    return t


def nccl_domain_time_s(hw: HardwareProfile, op: str, nbytes: np.ndarray, n: int) -> np.ndarray:
    """NCCL ``op`` over ``n`` GPUs of one NVLink domain (module docstring), non-decreasing in
    ``n`` at fixed bytes::

        t(n) = min(R(n), U(n)),  R(n) = max_{2 <= j <= n} raw(j),  U(n) = max_{measured m <= m'} raw(m)

    with ``m'`` the smallest measured size >= ``n`` (no upper bound beyond the largest), so at a
    measured size ``t`` is the fitted time (or the larger time of a smaller measured size).
    Beyond the largest measured size ``raw`` only grows, so ``R`` needs ``raw`` at the measured
    range and at ``n``.  ``nbytes``: full buffer per GPU (array); 0 for ``n <= 1``."""
    b = np.asarray(nbytes, dtype=float)
    if n <= 1:
        return np.zeros_like(b)
    ab = getattr(hw.collectives.nccl, op)
    knots = [m for m in measured_sizes(ab) if m >= 2]
    if not knots:  # constant parameters: alpha fixed, time per byte grows with n
        return _raw(hw, ab, op, b, n)
    last = knots[-1]
    raw = {j: _raw(hw, ab, op, b, j) for j in range(2, min(n, last) + 1)}
    run = np.maximum.reduce(list(raw.values()))
    if n > last:
        return np.maximum(run, _raw(hw, ab, op, b, n))
    upper = next(m for m in knots if m >= n)
    bound = np.maximum.reduce([raw.get(m, None) if m in raw else _raw(hw, ab, op, b, m) for m in knots if m <= upper])
    return np.minimum(run, bound)


def alpha_beta_split(hw: HardwareProfile, op: str, nbytes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latency, bandwidth time)`` of :func:`nccl_domain_time_s`: the latency is the model's
    time at zero bytes, the rest is bandwidth (used to pipeline hierarchical stages on other links)."""
    b = np.asarray(nbytes, dtype=float)
    t = nccl_domain_time_s(hw, op, b, n)
    alpha = nccl_domain_time_s(hw, op, np.zeros_like(b), n)
    return alpha, np.maximum(t - alpha, 0.0)
