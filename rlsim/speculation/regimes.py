"""Where speculation pays, from the cost model alone: the steady-state speed-up of a decode-only
batch and the batch size at which a method stops paying.

At ``B`` running requests of ``ctx`` tokens each, a plain decode step costs ``step(target(B, 1))``
and a speculative round ``step(verify(B, 1 + k) + drafting + verification extras, host +
speculative host) + critical-path drafting host`` (the engine's own rule,
:meth:`rlsim.engine.EngineParams.step_s`), and yields ``AL(k)`` tokens per request instead of 1:

    speed-up(B) = AL(k) x step_plain(B) / step_spec(B, k)

It is below 1 where the verify pass's extra tokens (compute-bound at large ``B x (1 + k)``), the
drafting and the overheads cost more than the accepted tokens save.  Used by the regime tests and
``benchmarks/spec_regimes.py``; the simulator reproduces it for fixed batches.
"""

from __future__ import annotations

import numpy as np

__all__ = ["predicted_speedup", "break_even_batch"]


def predicted_speedup(runtime, params, batch: int, ctx_per_seq: float, k: int | None = None) -> float:
    """Steady-state speed-up at ``batch`` requests of ``ctx_per_seq`` tokens (``k``: the runtime's
    ``k_max`` by default), acceptance from the runtime's base model."""
    k = runtime.k_max if k is None else k
    ctx = float(batch * ctx_per_seq)
    plain_gpu = float(runtime.target.decode_times_s(batch, np.array([ctx + batch]))[0])
    plain = float(params.step_s(plain_gpu, params.host_s(batch, 0), batch))
    c = np.array([ctx + batch * (1 + k)])
    gpu = (float(runtime.target_times_s(batch, c, k)[0]) + float(runtime.drafter.propose_times_s(batch, c, k)[0])
           + runtime.verify_extra_s(batch, k))
    overlap, serial = runtime.host_parts_s(batch, k, c)
    spec = float(params.step_s(gpu, params.host_s(batch, 0) + overlap, batch)) + float(np.asarray(serial).ravel()[0])
    return runtime.sampler.model.mean_acceptance_length(k) * plain / spec


def break_even_batch(runtime, params, ctx_per_seq: float, k: int | None = None, max_batch: int = 1024) -> int | None:
    """The smallest power-of-two batch at which the predicted speed-up falls below 1 (None: it
    pays up to ``max_batch``)."""
    b = 1
    while b <= max_batch:
        if predicted_speedup(runtime, params, b, ctx_per_seq, k) < 1.0:
            return b
        b *= 2
    return None
