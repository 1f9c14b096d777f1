"""The trainer's per-operation model against the measured kernel tables it is built from.

:mod:`rlsim.training.perop` calls :func:`rlsim.hardware.ops.gemm_time_s` and
:func:`~rlsim.hardware.ops.collective_time_s` -- the functions ``rlsim calibrate check``
validates.  This check keeps the measured rows whose shapes the trainer actually runs for a
layout (every forward / dgrad / wgrad GEMM ``(n, k)`` at training-size ``m``; NCCL collectives
over its TP / EP / DP group sizes) and reports the error of the trainer's own kernel calls on
them (:func:`rlsim.calibration.predict.predict`, the same code path).  It also compares the
trainer's grouped expert GEMMs (each local expert as a dense GEMM) with the measured vLLM
fused-MoE table at the model's expert shape -- a cross-check of two different kernels, not a fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlsim.calibration.fit import errors_of
from rlsim.calibration.predict import predict

__all__ = ["trainer_kernel_check", "trainer_gemm_shapes"]

#: Smallest GEMM ``m`` the trainer runs (micro-batches of thousands of tokens).
MIN_TRAIN_M = 1024


def trainer_gemm_shapes(arch, lay, tokens: float) -> set[tuple[int, int]]:
    """``(n, k)`` of every GEMM of a training step at ``tokens`` per micro-batch and GPU: the
    forward ``(n, k)``, dgrad ``(k, n)`` and wgrad ``(n, tokens)`` (its ``m`` is ``k``)."""
    from rlsim.training.perop import gemm_shapes

    out: set[tuple[int, int]] = set()
    for _, m, n, k in gemm_shapes(arch, lay, tokens):
        out |= {(int(n), int(k)), (int(k), int(n)), (int(n), int(m))}
    return out


def _moe_rows(df: pd.DataFrame, arch, lay) -> pd.DataFrame:
    if not arch.is_moe:
        return df.iloc[:0]
    m = (df["op_class"] == "moe") & (df["dtype"] == "bf16") & (df["hidden_size"] == arch.hidden_size) & \
        (df["inter_size"] == arch.moe_intermediate_size) & (df["num_experts"] == arch.num_experts) & \
        (df["topk"] == arch.num_experts_per_tok) & (df["distribution"].fillna("balanced") == "balanced") & \
        (df["num_tokens"] >= MIN_TRAIN_M)
    return df[m].reset_index(drop=True)


def _expert_forward_s(hw, arch, rows: pd.DataFrame) -> np.ndarray:
    """The trainer's expert forward (grouped GEMMs + SwiGLU + permute / un-permute) for each
    fused-MoE row's tokens and split."""
    from rlsim.hardware import ops
    from rlsim.training.perop import expert_gemms

    out = []
    for r in rows.itertuples(index=False):
        tp, ep = int(r.moe_tp), int(r.moe_ep)
        routed = r.num_tokens * arch.num_experts_per_tok / ep  # rows this rank computes (balanced)
        f, _ = expert_gemms(hw, arch, routed, tp, ep)
        ew = float(ops.elementwise_time_s(hw, routed * (6.0 * arch.moe_intermediate_size / tp + 8.0 * arch.hidden_size)))
        out.append(f + ew)
    return np.array(out)


def trainer_kernel_check(hw, df: pd.DataFrame, arch, lay, tokens: float) -> dict[str, dict]:
    """Error per kernel class of the trainer's calls on the measured rows of its shapes (see the
    module docstring); ``df``: tidy measurements (:func:`rlsim.calibration.read_traces`)."""
    out: dict[str, dict] = {}
    shapes = trainer_gemm_shapes(arch, lay, tokens)
    g = df[(df["op_class"] == "gemm") & df["dtype"].isin(["bf16", "fp16"]) & (df["m"] >= MIN_TRAIN_M)]
    g = g[[(int(n), int(k)) in shapes for n, k in zip(g["n"], g["k"])]].reset_index(drop=True)
    if len(g):
        out["gemm:bf16"] = errors_of(predict(hw, g), g["measured_s"].to_numpy(float))
    sizes = {lay.tp, lay.ep, lay.dp * lay.cp, lay.edp} - {1}
    for op in ("all_gather", "reduce_scatter", "all_reduce", "alltoall"):
        c = df[(df["op_class"] == f"nccl_{op}") & df["dtype"].isin(["bf16", "fp16"]) & df["num_gpus"].isin(sizes)]
        if len(c):
            c = c.reset_index(drop=True)
            out[f"nccl_{op}"] = errors_of(predict(hw, c), c["measured_s"].to_numpy(float))
    moe = _moe_rows(df, arch, lay)
    if len(moe):
        out["moe:bf16 (grouped GEMM vs fused MoE)"] = errors_of(_expert_forward_s(hw, arch, moe),
                                                               moe["measured_s"].to_numpy(float))
    return out
