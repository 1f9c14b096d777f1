"""Predict measured rows with the normal cost-model code path (:mod:`rlsim.hardware.ops`).

:func:`predict` maps each tidy row (see :mod:`rlsim.calibration.readers`) onto the op-time
function the simulator itself calls, with the same shape conventions as
:mod:`rlsim.cost.forward`:

- ``gemm``: ``gemm_time_s(hw, m, n, k, dtype)``;
- ``moe``: ``moe_layer_time_s`` with the table's ``tp x ep`` split (each of ``ep`` ranks owns
  ``E/ep`` experts and walks all ``T*topk`` routed rows; ``tp`` splits each expert's
  intermediate dimension) and the benchmark's routing (:data:`BENCHMARK_ROUTING`);
- ``generation_attention``: ``decode_attention_time_s`` with ``kv_bytes = batch x context x 2 x
  kv_heads x head_dim x bytes(kv dtype)`` and ``4 x heads x head_dim`` FLOPs per query-key pair
  (a sliding window ``W``: ``min(context, W)`` keys; fp8 KV: the fp8-KV parameters);
- ``context_attention``: ``prefill_attention_time_s`` with causal pairs ``s(s+1)/2`` per
  sequence, ``s`` keys per sequence (one-token prompts: the decode formula, as vLLM runs them;
  a sliding window: at most ``W`` keys per query, ``window_pairs``, and ``min(s, W + 128)``
  critical keys) -- the forward model's conventions;
- ``nccl_<op>``: ``collective_time_s(..., backend="nccl")``; ``custom_all_reduce``:
  ``collective_time_s("all_reduce", ..., backend="custom", cuda_graph=backend == "graph")``;
- ``elementwise``: ``elementwise_time_s(hw, nbytes)``.

Benchmark effects -- things the measurement harness adds that a real forward pass does not
have -- are applied on top only when ``benchmark=True`` and only from
``hw.calibration.benchmark_effects`` (see :data:`BENCHMARK_EFFECTS`); the simulator never uses
them.  Rows the model does not cover (power-law routing, unknown dtypes) get NaN; weight dtypes a
profile has no entry for are predicted by the fallback :mod:`rlsim.hardware.kernels` names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlsim import units
from rlsim.hardware import ops
from rlsim.hardware.profile import HardwareProfile

__all__ = ["predict", "BENCHMARK_EFFECTS", "BENCHMARK_ROUTING", "moe_router_groups", "decode_kv_bytes", "supported_mask"]

#: Benchmark-only terms in ``calibration.benchmark_effects`` (microseconds unless named):
#: the eager harness of fp8_block GEMMs, ``measured = max(GPU time + extra, floor(m))``, and
#: the L2 speed-up of decode attention timed alone.
BENCHMARK_EFFECTS = {
    "gemm_fp8_block_host_floor_us": "eager harness host floor of fp8_block GEMM rows, m <= 16",
    "gemm_fp8_block_host_floor_large_m_us": "same, m > 16",
    "gemm_fp8_block_host_floor_unaligned_extra_us": "extra floor when m % 4 != 0",
    "gemm_fp8_block_harness_extra_us": "constant the eager harness adds to every fp8_block row above the floor "
                                       "(activation-quant launch / sync; indistinguishable from a GPU latency in "
                                       "this data, attributed to the harness so CUDA-graph runs do not pay it)",
    "decode_attention_l2_speedup": "KV read speed-up when a decode-attention row's KV fits in L2 "
                                   "(the op is timed alone with the same inputs replayed)",
}
#: Benchmark properties with no parameter, applied by :func:`predict` with ``benchmark=True``
#: (inferred from the data; the simulator uses a real router's expected spread instead):
#: fused-MoE tables' *balanced* routing deals rows to experts round-robin (times go flat
#: exactly at T x top-k = E), and for group-limited routers the tied scores that routing
#: produces keep the lowest-index groups (see _group_limited_rank0).
BENCHMARK_ROUTING = ("moe_round_robin_routing", "moe_group_limited_ties")

_KV_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}
_WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "fp8_block", "fp4")
_MOE_DTYPES = ("bf16", "fp16", "fp8", "fp8_block", "fp4", "mxfp4", "mxfp4_mxfp8", "int4", "int4_g32", "int4_g64")


def _col(df: pd.DataFrame, c: str) -> np.ndarray:
    return df[c].to_numpy(dtype=float)


def _window(df: pd.DataFrame) -> np.ndarray:
    """Sliding window per row (inf for full attention)."""
    w = np.nan_to_num(_col(df, "window_size"), nan=0.0)
    return np.where(w > 0, w, np.inf)


def decode_kv_bytes(df: pd.DataFrame) -> np.ndarray:
    """KV bytes one decode-attention row reads (all sequences, one layer; the last ``window``
    keys of each sequence on a sliding-window row)."""
    kvb = df["dtype"].map(_KV_BYTES).to_numpy(dtype=float)
    keys = np.minimum(_col(df, "seq_len"), _window(df))
    return _col(df, "batch_size") * keys * 2.0 * _col(df, "num_kv_heads") * _col(df, "head_dim") * kvb


def supported_mask(df: pd.DataFrame, hw: HardwareProfile | None = None) -> np.ndarray:
    """Rows the cost model predicts (the others get NaN)."""
    oc, dt = df["op_class"], df["dtype"]
    ok = np.zeros(len(df), dtype=bool)
    has = set()
    if hw is not None:
        has = {d for d in _WEIGHT_DTYPES if getattr(hw.efficiency.gemm, _key(d), None) is not None}
    for d in _WEIGHT_DTYPES:
        if hw is None or d in has:
            ok |= ((oc == "gemm") & (dt == d)).to_numpy()
    dist = df["distribution"].fillna("balanced")
    ok |= ((oc == "moe") & dt.isin(list(_MOE_DTYPES)) & (dist == "balanced")).to_numpy()
    ok |= (oc.isin(["generation_attention", "context_attention"]) & dt.isin(list(_KV_BYTES))).to_numpy()
    ok |= (oc.str.startswith("nccl_") & oc.isin([f"nccl_{o}" for o in ops.COLLECTIVE_OPS])).to_numpy()
    ok |= (oc == "custom_all_reduce").to_numpy()
    ok |= (oc == "elementwise").to_numpy()
    return ok


def _key(d: str) -> str:
    return "bf16" if d == "fp16" else d


def predict(hw: HardwareProfile, df: pd.DataFrame, *, benchmark: bool = True) -> np.ndarray:
    """Predicted seconds for every row of ``df`` (NaN where the model has no prediction)."""
    out = np.full(len(df), np.nan)
    ok = supported_mask(df, hw)
    oc = df["op_class"].to_numpy(dtype=object)
    dt = df["dtype"].to_numpy(dtype=object)
    for cls in pd.unique(oc[ok]):
        sel_c = ok & (oc == cls)
        if cls in ("gemm", "moe"):
            for d in pd.unique(dt[sel_c]):
                idx = np.flatnonzero(sel_c & (dt == d))
                sub = df.iloc[idx]
                out[idx] = _gemm(hw, sub, d, benchmark) if cls == "gemm" else _moe(hw, sub, d, benchmark)
            continue
        idx = np.flatnonzero(sel_c)
        sub = df.iloc[idx]
        if cls == "generation_attention":
            out[idx] = _decode(hw, sub, benchmark)
        elif cls == "context_attention":
            out[idx] = _prefill(hw, sub, benchmark)
        elif cls == "custom_all_reduce":
            out[idx] = _custom_ar(hw, sub)
        elif cls.startswith("nccl_"):
            out[idx] = _nccl(hw, sub, cls[len("nccl_"):])
        elif cls == "elementwise":
            out[idx] = np.asarray(ops.elementwise_time_s(hw, _col(sub, "nbytes")), dtype=float)
    return out


def _gemm(hw: HardwareProfile, sub: pd.DataFrame, dtype: str, benchmark: bool) -> np.ndarray:
    m, n, k = _col(sub, "m"), _col(sub, "n"), _col(sub, "k")
    t = np.asarray(ops.gemm_time_s(hw, m, n, k, dtype), dtype=float)
    if benchmark and dtype == "fp8_block":
        fx = hw.calibration.benchmark_effects
        if "gemm_fp8_block_host_floor_us" in fx:
            small = fx["gemm_fp8_block_host_floor_us"]
            large = fx.get("gemm_fp8_block_host_floor_large_m_us", small)
            extra = fx.get("gemm_fp8_block_host_floor_unaligned_extra_us", 0.0)
            floor = np.where(m <= 16, small, large) + np.where(np.mod(m, 4) != 0, extra, 0.0)
            extra = fx.get("gemm_fp8_block_harness_extra_us", 0.0)
            t = np.maximum(t + units.us(extra), units.us(floor))
    return t


def _moe(hw: HardwareProfile, sub: pd.DataFrame, dtype: str, benchmark: bool = True,
         routing: str = "random") -> np.ndarray:
    """Fused-MoE rows.  With ``benchmark`` the tables' *balanced* routing is modelled as the
    benchmark deals it (:data:`BENCHMARK_ROUTING`): round-robin, and for layers of a catalog
    model with a group-limited router :func:`_group_limited_rank0`; without, ``routing`` (see
    :func:`rlsim.hardware.ops.moe_layer_time_s`)."""
    T, E, k = _col(sub, "num_tokens"), _col(sub, "num_experts"), _col(sub, "topk")
    tp, ep = np.nan_to_num(_col(sub, "moe_tp"), nan=1.0), np.nan_to_num(_col(sub, "moe_ep"), nan=1.0)
    h, inter = _col(sub, "hidden_size"), _col(sub, "inter_size")
    out = np.empty(len(sub))
    groups = moe_router_groups() if benchmark else {}
    # the op functions take scalar layer shapes: loop over the (few) distinct ones
    keys = np.stack([E, k, tp, ep, h, inter], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    for j, (e_, k_, tp_, ep_, h_, i_) in enumerate(uniq):
        sel = inv.ravel() == j
        shape = (int(h_), int(i_), int(e_), int(k_))
        if shape in groups and benchmark:
            tokens, touched, padded = _group_limited_rank0(T[sel], *shape[2:], int(ep_), *groups[shape],
                                                           hw.moe_eff(dtype).block_m_tokens)
            out[sel] = ops.moe_time_s(hw, tokens, e_ / ep_, touched, int(2 * i_ / tp_), int(h_), int(h_), dtype, int(k_),
                                      overhead_rows=T[sel] * k_, padded_rows=padded)
        else:
            out[sel] = ops.moe_layer_time_s(hw, T[sel], int(e_), int(k_), int(h_), int(i_), dtype, tp=int(tp_),
                                            ep=int(ep_), routing="round_robin" if benchmark else routing)
    return out


def _group_limited_rank0(T: np.ndarray, E: int, k: int, ep: int, n_group: int, topk_group: int,
                         block_m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What EP rank 0 computes for a *balanced* benchmark row of a group-limited router
    (DeepSeek-V3: 256 experts in 8 groups of 32, a token keeps its best 4 groups): returns
    (tokens x top-k = rows on rank 0, distinct experts touched there, rows padded to ``block_m``).

    The benchmark gives token t the experts ``(j(t) + 32 i) mod 256``, one per group; every
    group's score then ties and the router keeps the lowest-index ``topk_group`` groups, where
    the token has one real pick each; its other ``k - topk_group`` picks tie too and go to the
    lowest-index experts (about T rows each).  Rank 0 holds ``L = min(topk_group, (E/ep)/S)``
    kept groups (group size ``S = E / n_group``), so it receives ``T (L + k - topk_group)`` rows
    over ``min(L min(T, S) + k - topk_group, L S)`` experts.  Inferred from the tables: ep=1 and
    ep=2 rows time alike, ep1 times grow by ~4.4 fp8 experts' weights per token up to T = 32,
    and rank-0 work at T = 16384 goes 1 : 1 : 0.77 : 0.66 for ep 1, 2, 4, 8 (rule: 1 : 1 :
    0.75 : 0.625)."""
    S = E / n_group
    fill = k - topk_group
    L = min(topk_group, (E / ep) / S)
    touched = np.minimum(L * np.minimum(T, S) + fill, L * S if L >= 1 else E / ep)
    real = T * L  # one real pick per kept group, dealt round-robin over its L*S experts
    padded = np.asarray(ops.moe_padded_rows(real, np.full_like(T, L * S), block_m), dtype=float)
    padded = padded + fill * np.ceil(T / block_m) * block_m
    return T * (L + fill) / k, touched, padded


def moe_router_groups() -> dict[tuple[int, int, int, int], tuple[int, int]]:
    """``{(hidden, moe_intermediate, experts, top-k): (n_group, topk_group)}`` of the catalog's
    MoE models with group-limited routing."""
    from rlsim.calibration.relevant import catalog_shapes

    return catalog_shapes()["moe_groups"]


def _by_kv_dtype(sub: pd.DataFrame, fn) -> np.ndarray:
    """``fn(rows, kv_dtype)`` for each KV dtype of ``sub``'s rows, in row order."""
    out = np.empty(len(sub))
    dt = sub["dtype"].to_numpy(dtype=object)
    for d in pd.unique(dt):
        sel = dt == d
        out[sel] = fn(sub[sel], "fp8" if d == "fp8" else "bf16")
    return out


def _decode(hw: HardwareProfile, sub: pd.DataFrame, benchmark: bool = True) -> np.ndarray:
    def one(rows: pd.DataFrame, kv_dtype: str) -> np.ndarray:
        kv = decode_kv_bytes(rows)
        l2 = hw.calibration.benchmark_effects.get("decode_attention_l2_speedup")
        if benchmark and l2:
            kv = np.where(kv <= hw.l2_bytes, kv / max(l2, 1e-3), kv)
        pairs = _col(rows, "batch_size") * np.minimum(_col(rows, "seq_len"), _window(rows))
        flops = pairs * 4.0 * _col(rows, "num_heads") * _col(rows, "head_dim")
        return np.asarray(ops.decode_attention_time_s(hw, kv, _col(rows, "batch_size"), flops, _col(rows, "num_kv_heads"),
                                                      kv_dtype, _col(rows, "head_dim")), dtype=float)

    return _by_kv_dtype(sub, one)


def _prefill(hw: HardwareProfile, sub: pd.DataFrame, benchmark: bool = True) -> np.ndarray:
    """Prefill rows; one-token prompts run vLLM's decode kernel (the tables' kernel_source says
    so on Blackwell, and H100 times match decode rows), so they take the decode formula."""
    def chunks(rows: pd.DataFrame, kv_dtype: str) -> np.ndarray:
        b, s = _col(rows, "batch_size"), _col(rows, "seq_len")
        h, kh, d = _col(rows, "num_heads"), _col(rows, "num_kv_heads"), _col(rows, "head_dim")
        w = _window(rows)
        pairs = np.where(np.isfinite(w), ops.window_pairs(b * s * (s + 1) / 2.0, b * s, np.where(np.isfinite(w), w, 1.0)),
                         b * s * (s + 1) / 2.0)
        keys = np.minimum(s, w + ops.ATTN_TILE_M)
        tiles = b * np.ceil(s / ops.ATTN_TILE_M)
        return np.asarray(ops.prefill_attention_time_s(hw, b * s, pairs * 4.0 * h * d, tiles, keys, h, kh, 4.0 * d,
                                                       kv_dtype), dtype=float)

    out = _by_kv_dtype(sub, chunks)
    one = (_col(sub, "seq_len") <= 1)
    if one.any():
        out[one] = _decode(hw, sub[one], benchmark)
    return out


def _nccl(hw: HardwareProfile, sub: pd.DataFrame, op: str) -> np.ndarray:
    n, b = _col(sub, "num_gpus"), _col(sub, "nbytes")
    out = np.empty(len(sub))
    for g in np.unique(n):
        sel = n == g
        out[sel] = ops.collective_time_s(hw, op, b[sel], int(g), backend="nccl")
    return out


def _custom_ar(hw: HardwareProfile, sub: pd.DataFrame) -> np.ndarray:
    n, b = _col(sub, "num_gpus"), _col(sub, "nbytes")
    graph = (sub["backend"].fillna("graph") != "eager").to_numpy()
    out = np.empty(len(sub))
    for g in np.unique(n):
        for gr in (True, False):
            sel = (n == g) & (graph == gr)
            if sel.any():
                out[sel] = ops.collective_time_s(hw, "all_reduce", b[sel], int(g), cuda_graph=gr, backend="custom")
    return out
