"""The lock-step pass of data-parallel attention ranks that share their MoE layers.

A :class:`~rlsim.engine.dp_group.DataParallelGroup` asks this timer for the GPU time of a step:
every rank runs the pass padded to the largest token count of the step (vLLM's
``num_tokens_across_dp``; a rank without work runs a dummy batch of that size), its attention on
its own sequences, and the MoE layers on all ranks' tokens (the busiest expert-parallel GPU,
dispatch and combine: :class:`~rlsim.cost.forward.ForwardModel` with ``dp``).  The step takes
as long as the slowest rank.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rlsim.cost.forward import ForwardModel, PassShape

__all__ = ["DataParallelForward"]


class DataParallelForward:
    """Lock-step pass times over a ForwardModel built with ``dp`` ranks."""

    def __init__(self, forward: ForwardModel) -> None:
        self.forward = forward

    def pass_time_s(self, shapes: list[PassShape | None]) -> tuple[float, dict[str, float]]:
        """GPU time of one pass (and the slowest rank's split); None: a rank with no work."""
        decode_only = all(s is None or s.prefill_seqs == 0 for s in shapes)
        T = self.forward.padded_tokens(max(1, max(s.num_tokens for s in shapes if s is not None)), decode_only)
        best, parts = -1.0, {}
        for s in shapes:
            shape = PassShape(T, 1, 0, 0.0) if s is None else dataclasses.replace(s, num_tokens=T)
            comps = self.forward.components(shape)
            total = sum(comps.values())
            if total > best:
                best, parts = total, comps
        return best, parts

    def decode_split_s(self, ranks: list[tuple[int, np.ndarray, int, int]],
                       idle_ranks: int) -> tuple[np.ndarray, int, list[np.ndarray | float]]:
        """GPU time per iteration of decode-only ranks ``(batch, total context per iteration, q,
        tokens its token-dependent kernels run on)`` (idle ranks run the padded dummy batch, never
        slower than a busy rank), the token count every rank runs (the largest rank's, padded)
        and each rank's exposed dispatch per iteration (:meth:`ForwardModel.decode_split_s`)."""
        T = self.forward.padded_tokens(max(t for *_, t in ranks), True)
        splits = [self.forward.decode_split_s(b, ctx, q, padded_tokens=T) for b, ctx, q, _ in ranks]
        return np.max(np.vstack([t for t, _ in splits]), axis=0), T, [launch for _, launch in splits]
