"""Which measured rows have shapes the catalog models produce (``--relevant``).

For every catalog model (``rlsim models list``) under tensor parallelism 1, 2, 4, 8 and passes
of up to :data:`MAX_TOKENS_PER_PASS` tokens:

- GEMM: the per-GPU ``(n, k)`` of every linear weight except the routed experts
  (:func:`rlsim.cost.memory.local_shape`), ``m <= 16384``;
- fused MoE: the MoE models' ``(hidden, moe_intermediate, experts, top-k)`` with the experts
  split by TP or by EP over ``tp * ep <= 8`` GPUs, ``num_tokens <= 16384``, balanced routing;
  a MoE kernel dtype measured on no catalog shape keeps every shape it was measured on (else the
  kernel would have no calibration: the MXFP4 x MXFP8 kernel, run for gpt-oss on Blackwell, is
  measured only on two other layer shapes);
- attention: head_dim and per-GPU (query heads, KV heads) of the GQA models, full attention or
  the sliding window of a catalog model with sliding layers (gpt-oss: 128), decode
  ``batch <= 16384``, prefill ``batch x isl <= 16384``;
- collectives: 2-8 GPUs, buffers of ``T x hidden x 2`` bytes (T <= 16384; bf16/fp16 only),
  the custom all-reduce up to the profile's ``custom_all_reduce.max_bytes``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = ["MAX_TOKENS_PER_PASS", "TP_SIZES", "relevant_mask", "catalog_shapes"]

MAX_TOKENS_PER_PASS = 16384
TP_SIZES = (1, 2, 4, 8)


@lru_cache(maxsize=1)
def catalog_shapes() -> dict:
    """``{"gemm": {(n, k)}, "moe": {(hidden, inter, E, topk)}, "attn": {(heads, kv_heads, head_dim)},
    "attn_window": {(heads, kv_heads, head_dim, window)}, "hidden": {hidden sizes}, "moe_groups":
    {(hidden, inter, E, topk): (n_group, topk_group)}}`` over the catalog models and :data:`TP_SIZES`."""
    from rlsim.cost.memory import kv_heads_per_gpu, local_shape
    from rlsim.models import list_models, load_model

    gemm, moe, attn, window, hidden, groups = set(), set(), set(), set(), set(), {}
    for name in list_models():
        a = load_model(name)
        if a.is_draft_head:
            continue
        hidden.add(a.hidden_size)
        if a.is_moe:
            moe.add((a.hidden_size, a.moe_intermediate_size, a.num_experts, a.num_experts_per_tok))
            if a.router_topk_groups < a.router_groups:
                groups[(a.hidden_size, a.moe_intermediate_size, a.num_experts, a.num_experts_per_tok)] = (
                    a.router_groups, a.router_topk_groups)
        for tp in TP_SIZES:
            for w in a.linear_weights():
                if w.group != "expert":
                    gemm.add(tuple(int(x) for x in local_shape(a, w, tp)))
            if a.attention_kind != "mla" and a.num_attention_heads % tp == 0:
                attn.add((a.num_attention_heads // tp, kv_heads_per_gpu(a, tp), a.head_dim))
                if a.num_sliding_layers:
                    window.add((a.num_attention_heads // tp, kv_heads_per_gpu(a, tp), a.head_dim, a.sliding_window))
    return {"gemm": gemm, "moe": moe, "attn": attn, "attn_window": window, "hidden": hidden, "moe_groups": groups}


def _pairs(df: pd.DataFrame, cols: list[str], allowed: set) -> np.ndarray:
    vals = df[cols].to_numpy(dtype=float)
    ok = ~np.isnan(vals).any(axis=1)
    out = np.zeros(len(df), dtype=bool)
    out[ok] = [tuple(int(x) for x in row) in allowed for row in vals[ok]]
    return out


def relevant_mask(df: pd.DataFrame, custom_max_bytes: float | None = None) -> np.ndarray:
    """Boolean mask of the rows with catalog-model shapes (see the module docstring)."""
    s = catalog_shapes()
    oc = df["op_class"]
    T = MAX_TOKENS_PER_PASS
    m = np.zeros(len(df), dtype=bool)
    g = (oc == "gemm").to_numpy()
    if g.any():
        m |= g & _pairs(df, ["n", "k"], s["gemm"]) & (df["m"] <= T).to_numpy()
    mo = (oc == "moe").to_numpy()
    if mo.any():
        tp, ep = df["moe_tp"].fillna(1), df["moe_ep"].fillna(1)
        split = ((tp == 1) | (ep == 1)) & (tp * ep <= 8)
        shape = _pairs(df, ["hidden_size", "inter_size", "num_experts", "topk"], s["moe"])
        dtypes = df["dtype"].fillna("").to_numpy()
        for d in set(dtypes[mo]) - set(dtypes[mo & shape]):  # a kernel seen on no catalog shape
            shape |= mo & (dtypes == d)
        m |= (mo & shape & (df["num_tokens"] <= T).to_numpy() & split.to_numpy()
              & (df["distribution"].fillna("balanced") == "balanced").to_numpy())
    at = oc.isin(["generation_attention", "context_attention"]).to_numpy()
    if at.any():
        full = (df["window_size"].fillna(0) == 0).to_numpy() & _pairs(df, ["num_heads", "num_kv_heads", "head_dim"], s["attn"])
        windowed = _pairs(df.assign(window_size=df["window_size"].fillna(0)),
                          ["num_heads", "num_kv_heads", "head_dim", "window_size"], s["attn_window"])
        dec = (oc == "generation_attention").to_numpy() & (df["batch_size"] <= T).to_numpy()
        pre = (oc == "context_attention").to_numpy() & ((df["batch_size"] * df["seq_len"]) <= T).to_numpy()
        m |= at & (full | windowed) & (dec | pre)
    co = (oc.str.startswith("nccl_") | (oc == "custom_all_reduce")).to_numpy()
    if co.any():
        lo, hi = 2.0 * min(s["hidden"]), 2.0 * T * max(s["hidden"])
        b = df["nbytes"].to_numpy(dtype=float)
        n = df["num_gpus"].to_numpy(dtype=float)
        half = df["dtype"].isin(["bf16", "fp16"]).to_numpy()
        ok = co & half & (b >= lo) & (b <= hi) & (n >= 2) & (n <= 8)
        if custom_max_bytes is not None:
            ok &= ~(oc == "custom_all_reduce").to_numpy() | (b <= custom_max_bytes)
        m |= ok
    return m
