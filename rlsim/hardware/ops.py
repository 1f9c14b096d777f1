"""Roofline op timing: pure functions of (hardware profile, shapes) -> seconds.

Every function takes a :class:`~rlsim.hardware.profile.HardwareProfile` plus shape arguments
that may be Python numbers or numpy arrays (broadcast together) and returns a ``float`` when all
of them are scalars, else an ``ndarray`` of seconds.  An op with nothing to do (zero tokens,
zero bytes) costs exactly 0 s.

Model (DESIGN.md section 3)::

    t = max(flops / (peak_d * eff_c), bytes / (hbm_bw * eff_m)) + latency

with the per-op-class parameters of ``profile.efficiency``.  ``latency`` is the GPU-side floor
of one kernel (as under CUDA graphs); host launch and dispatch costs are added by the forward
model (:mod:`rlsim.cost.forward`: piecewise launches, and the dispatch a pass without a CUDA
graph waits for), which knows how a pass is launched.  Collectives use alpha-beta per tier (NVLink domain, scale-out NIC).
In table mode (``hw.tables``, :mod:`rlsim.hardware.tables`) GEMM, fused-MoE and in-domain
collective times come from measured curves where those cover the query.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlsim import units
from rlsim.hardware.kernels import KernelChoice, gemm_kernel, moe_kernel
from rlsim.hardware.collectives import alpha_beta_split, bus_factor, nccl_domain_time_s
from rlsim.hardware.profile import AlphaBeta, HardwareProfile, by_group_size

__all__ = [
    "COLLECTIVE_OPS",
    "gemm_time_s",
    "moe_time_s",
    "moe_layer_time_s",
    "moe_padded_rows",
    "expected_experts_touched",
    "skewed_routing_factor",
    "decode_attention_time_s",
    "engine_gpu",
    "same_nvlink_domain",
    "prefill_attention_time_s",
    "window_pairs",
    "elementwise_time_s",
    "collective_time_s",
    "custom_all_reduce_time_s",
    "p2p_time_s",
]

ArrayLike = Any  # float | int | np.ndarray
COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
_ACT_BYTES = units.dtype_bytes("bf16")  # activations are bf16 in every op below


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def _tabulated(hw: HardwareProfile, op_key: str, ident: tuple, size: ArrayLike, t: ArrayLike) -> np.ndarray:
    """Table mode (:mod:`rlsim.hardware.tables`): measured time where ``hw``'s kernel tables
    cover ``(op_key, *ident)`` at ``size``, else the model's ``t``.  Identity entries may be
    arrays (one lookup per distinct combination)."""
    tab = hw.tables
    t = _f(t)
    if tab is None:
        return t
    arrays = np.broadcast_arrays(*[np.asarray(v, dtype=object) for v in ident], _f(size), t)
    *ids, x, t = (a.ravel() for a in arrays)
    out = t.copy()
    combos = {tuple(c) for c in zip(*ids)} if ids else {()}
    for combo in sorted(combos, key=str):
        sel = np.ones(len(x), dtype=bool)
        for col, v in zip(ids, combo):
            sel &= col == v
        out[sel] = tab.lookup(op_key, combo, x[sel], t[sel])
    return out.reshape(arrays[-1].shape)


# --------------------------------------------------------------------------- GEMM / MoE


#: Output-tile rows of the GEMM kernels for m > 128 (CUTLASS switches kernels at m = 129;
#: ../shared/traces/README.md): m is padded to a multiple of this above 128.
GEMM_TILE_M = 128
#: Elements of one activation row the quantisation kernel handles per pass (chosen from the
#: data among 1,024-4,096 on all three GPUs; 256 threads x 8 fp8 values).
ACT_QUANT_PASS_ELEMS = 2048


def gemm_time_s(hw: HardwareProfile, m: ArrayLike, n: ArrayLike, k: ArrayLike, dtype: str,
                kernel: KernelChoice | None = None) -> float | np.ndarray:
    """Dense GEMM ``y[m,n] = x[m,k] @ W[k,n]`` with weights in ``dtype``::

        m_pad = m if m <= 128 else ceil(m / 128) * 128         (128-row output tiles)
        C = 2 * n * k * m_pad / (peak(dtype) * compute_eff)
        M = ((m*k + m*n) * 2 + n*k * bytes(dtype)) / (hbm_bw * mem_eff)
        t = latency_us + k * k_loop_ns + max(C, M) + overlap_loss * min(C, M)
            + m * (act_quant_row_ns + act_quant_pass_ns * ceil(k / 2048))

    (bf16 activations in and out; the last term is the dynamic activation quantisation of
    quantised GEMMs, 0 for bf16).  Parameters: :class:`~rlsim.hardware.profile.GemmEff` of the
    kernel :func:`~rlsim.hardware.kernels.gemm_kernel` picks (its peak and bytes per weight,
    scales included; fp8_block uses the fp8 peak; weight-only 4-bit dtypes the bf16 entry).  In
    table mode a measured curve for ``(n, k)`` replaces the model inside its m range.  Any zero
    dimension gives 0 s.  ``kernel``: that choice made once by the caller (a forward model asks
    for the same one on every pass).
    """
    kc = kernel or gemm_kernel(hw, dtype)
    e = hw.gemm_eff(kc.params_key)
    peak = hw.peak_flops(kc.compute_dtype)
    wb = kc.weight_bytes
    m, n, k = _f(m), _f(n), _f(k)
    m_pad = np.where(m > GEMM_TILE_M, np.ceil(m / GEMM_TILE_M) * GEMM_TILE_M, m)
    compute = 2.0 * n * k * m_pad / (peak * e.compute_eff)
    memory = ((m * k + m * n) * _ACT_BYTES + n * k * wb) / (hw.hbm_bandwidth_bytes_per_s * e.mem_eff)
    quant = m * (e.act_quant_row_ns + e.act_quant_pass_ns * np.ceil(k / ACT_QUANT_PASS_ELEMS)) * 1e-9
    t = (units.us(e.latency_us) + k * e.k_loop_ns * 1e-9 + np.maximum(compute, memory)
         + e.overlap_loss * np.minimum(compute, memory) + quant)
    if dtype != "fp8_block" and kc.fallback is None:  # fp8_block tables carry the eager harness floor
        t = _tabulated(hw, f"gemm:{kc.params_key}", (n, k), m, t)
    return _out(np.where((m == 0) | (n == 0) | (k == 0), 0.0, t))  # NaN shapes stay NaN


def moe_padded_rows(rows: ArrayLike, touched: ArrayLike, block_m: int) -> np.ndarray:
    """Rows the grouped GEMMs compute when ``rows`` routed rows are spread as evenly as possible
    over ``touched`` experts and every expert's rows are padded to a multiple of ``block_m``
    (vLLM's moe_align_block_size): ``r`` experts get ``q+1`` rows and the rest ``q``, with
    ``q = floor(rows / touched)``, ``r = rows - q * touched``."""
    rows, touched = _f(rows), _f(touched)
    safe = np.where(touched > 0, touched, 1.0)
    q = np.floor(rows / safe)
    r = rows - q * safe
    padded = (r * np.ceil((q + 1) / block_m) + (safe - r) * np.ceil(q / block_m)) * block_m
    return _out(np.where((touched > 0) & (rows > 0), padded, 0.0))


def moe_time_s(
    hw: HardwareProfile,
    tokens: ArrayLike,
    num_experts_local: ArrayLike,
    experts_touched_local: ArrayLike,
    n_gate_up: int,
    k_hidden: int,
    n_down: int,
    dtype: str,
    topk: int,
    *,
    overhead_rows: ArrayLike | None = None,
    gated: bool = True,
    padded_rows: ArrayLike | None = None,
    kernel: KernelChoice | None = None,
) -> float | np.ndarray:
    """One fused-MoE layer (experts only: gate_up GEMM + activation + down GEMM) on one GPU.

    Shapes per expert (after TP split): gate_up ``[k_hidden, n_gate_up]`` (n_gate_up = 2 x
    intermediate for a gated activation such as SwiGLU), down ``[k_inter, n_down]`` with
    ``k_inter = n_gate_up / 2`` if ``gated`` else ``n_gate_up``.  Let ``W = k_hidden*n_gate_up
    + k_inter*n_down`` (weight elements per expert).  Parameters:
    :class:`~rlsim.hardware.profile.MoeEff`.

    - routed rows computed here: ``rows = tokens * topk`` -- the caller passes the *local* share
      of tokens (e.g. ``T / ep_size`` for balanced expert parallelism);
    - FLOPs ``= 2 * W * padded`` with ``padded`` = :func:`moe_padded_rows` (each touched
      expert's rows padded to ``block_m_tokens``), at ``peak * compute_eff``;
    - bytes ``= touched * W * bytes(dtype)`` (each touched expert's weights read once)
      ``+ rows * (k_hidden + n_gate_up + k_inter + n_down) * 2`` (bf16 activations), at
      ``hbm_bw * mem_eff``;
    - ``t = max(compute, memory) + latency + per_routed_token_us * overhead_rows +
      per_expert_us * touched`` where ``overhead_rows`` (default ``rows``) counts the routed rows
      the sort / align / combine kernels walk (with vLLM's all-gather EP dispatch every rank
      walks all ``T * topk`` rows, so pass that there) and ``touched`` the local experts with
      rows (one grouped-GEMM problem each).

    ``experts_touched_local`` (see :func:`expected_experts_touched`) is clipped to
    ``num_experts_local`` and to ``rows``.  ``padded_rows`` overrides the even spread when the
    caller knows the per-expert row counts (uneven routing).  The kernel, its peak and bytes per
    weight (scales included) are :func:`~rlsim.hardware.kernels.moe_kernel`'s choice for
    ``dtype`` (or ``kernel``, made once by the caller).  Zero tokens and zero overhead rows give 0 s.
    """
    kc = kernel or moe_kernel(hw, dtype)
    e = hw.moe_eff(kc.params_key)
    peak = hw.peak_flops(kc.compute_dtype)
    wb = kc.weight_bytes
    rows = _f(tokens) * topk
    touched = np.minimum(np.minimum(_f(experts_touched_local), _f(num_experts_local)), rows)
    k_inter = n_gate_up / 2 if gated else n_gate_up
    w = k_hidden * n_gate_up + k_inter * n_down
    padded = moe_padded_rows(rows, touched, e.block_m_tokens) if padded_rows is None else _f(padded_rows)
    compute = 2.0 * w * padded / (peak * e.compute_eff)
    nbytes = touched * w * wb + rows * (k_hidden + n_gate_up + k_inter + n_down) * _ACT_BYTES
    memory = nbytes / (hw.hbm_bandwidth_bytes_per_s * e.mem_eff)
    over = rows if overhead_rows is None else _f(overhead_rows)
    t = (np.maximum(compute, memory) + units.us(e.latency_us) + units.us(e.per_routed_token_us) * over
         + units.us(e.per_expert_us) * touched)
    return _out(np.where((rows == 0) & (over == 0), 0.0, t))  # NaN shapes stay NaN


def moe_layer_time_s(
    hw: HardwareProfile,
    num_tokens: ArrayLike,
    num_experts: int,
    topk: int,
    hidden: int,
    inter: int,
    dtype: str,
    *,
    tp: int = 1,
    ep: int = 1,
    skew: float = 0.0,
    gated: bool = True,
    routing: str = "random",
    kernel: KernelChoice | None = None,
    rank_rows: ArrayLike | None = None,
) -> float | np.ndarray:
    """One MoE layer's experts on one GPU of a ``tp x ep`` split, as vLLM's fused MoE runs it.

    Each of ``ep`` ranks owns ``E/ep`` whole experts and, with the all-gather dispatch, walks
    all ``T * topk`` routed rows while computing its share of them -- ``1/ep`` (the mean), or
    ``rank_rows`` routed rows when given (the busiest rank, :mod:`rlsim.cost.routing`), with the
    experts those rows touch; ``tp`` splits every expert's intermediate dimension ``inter``.
    Distinct experts touched: ``routing="uniform"`` follows :func:`expected_experts_touched`
    (each token's experts drawn uniformly; ``skew`` for a concentrated router);
    ``"round_robin"`` deals rows to experts in turn, ``min(E, T * topk)`` (what kernel
    benchmarks call *balanced* routing); ``"random"`` (a real router, the simulator's default)
    is the uniform spread times the profile's fitted ``skewed_routing`` factor at ``T * topk /
    E`` routed rows per expert (:func:`skewed_routing_factor`; 1 with ``skew`` set or no factor
    fitted): a trained router is not uniform, so at a few rows per expert it touches fewer
    experts (less weight traffic) and at many its busiest experts' tiles run longer (kernel
    tables' power-law rows, AIConfigurator's stand-in for real routing).  The time is
    :func:`moe_time_s`, or a measured curve in table mode (key ``moe:<dtype>``, identity
    ``(hidden, inter, E, topk, tp, ep)``).
    """
    T = _f(num_tokens)
    if routing == "round_robin":
        touched = np.minimum(float(num_experts), T * topk)
    elif routing in ("random", "uniform"):
        touched = _f(expected_experts_touched(T, num_experts, topk, skew))
    else:
        raise ValueError(f"routing = {routing!r}; expected random, uniform or round_robin")
    n_gate_up = int((2 if gated else 1) * inter // tp)
    kc = kernel or moe_kernel(hw, dtype)
    local_tokens, local_touched = T / ep, touched / ep
    if rank_rows is not None and ep > 1:
        from rlsim.cost.routing import rank_experts_touched

        rows = _f(rank_rows)
        local_tokens, local_touched = rows / topk, _f(rank_experts_touched(rows, num_experts, ep, skew))
    t = moe_time_s(hw, local_tokens, num_experts / ep, local_touched, n_gate_up, hidden, hidden, dtype, topk,
                   overhead_rows=T * topk, gated=gated, kernel=kc)
    if routing == "random" and skew == 0.0:
        t = t * skewed_routing_factor(hw.moe_eff(kc.params_key).skewed_routing, T * topk / num_experts)
    if kc.fallback is None:  # tables are keyed by the kernel's measured dtype (fp16 rows serve bf16)
        t = _tabulated(hw, f"moe:{'bf16' if kc.dtype == 'fp16' else kc.dtype}", (hidden, inter, num_experts, topk, tp, ep),
                       T, t)
    return _out(np.where(T > 0, t, 0.0))


def skewed_routing_factor(factors: dict[int, float] | None, rows_per_expert: ArrayLike) -> float | np.ndarray:
    """A real router's MoE time over the uniform spread's at ``rows_per_expert`` (routed rows
    per expert, ``T * topk / E``): ``factors`` maps ``round(log2(rows per expert))`` to the
    factor (see :class:`~rlsim.hardware.profile.MoeEff`); linear in log2 between bins, held at
    the end bins; 1 without factors or rows."""
    x = _f(rows_per_expert)
    if not factors:
        return _out(np.ones_like(x))
    bins = np.array(sorted(factors), dtype=float)
    vals = np.array([factors[int(b)] for b in bins])
    with np.errstate(divide="ignore"):
        lx = np.log2(np.where(x > 0, x, np.nan))
    return _out(np.where(x > 0, np.interp(np.nan_to_num(lx, nan=bins[0]), bins, vals), 1.0))


def expected_experts_touched(
    num_tokens: ArrayLike, num_experts: ArrayLike, topk: ArrayLike, skew: float = 0.0
) -> float | np.ndarray:
    """Expected number of distinct experts hit by ``num_tokens`` tokens routed top-``topk``.

    Balanced routing (each token picks ``topk`` distinct experts uniformly):
    ``E * (1 - (1 - k/E)^T)`` -- equals ``k`` at T = 1 and tends to ``E`` as T grows.

    ``skew`` in [0, 1) models a concentrated router crudely: tokens behave as if only
    ``E_eff = max(k, E * (1 - skew))`` experts existed, so fewer distinct experts (less weight
    traffic) at every batch size and at most ``E_eff`` in the limit.  For the local share under
    expert parallelism multiply by ``E_local / E``.
    """
    if not 0.0 <= skew < 1.0:
        raise ValueError(f"skew = {skew!r} must be in [0, 1)")
    t, e, k = _f(num_tokens), _f(num_experts), _f(topk)
    if np.any(k > e) or np.any(k < 1):
        raise ValueError("topk must be in [1, num_experts]")
    e_eff = np.maximum(k, e * (1.0 - skew))
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = -np.expm1(t * np.log1p(-k / e_eff))  # 1 - (1 - k/E)^T, exact for k == E too
    return _out(np.where(t > 0, e_eff * frac, 0.0))


# --------------------------------------------------------------------------- attention / elementwise


#: Query rows per prefill-attention tile (FlashAttention's M tile).
ATTN_TILE_M = 128


def decode_attention_time_s(
    hw: HardwareProfile, kv_bytes: ArrayLike, num_seqs: ArrayLike, flops: ArrayLike = 0.0, num_kv_heads: ArrayLike = 1,
    kv_dtype: str = "bf16", head_dim: ArrayLike = 128,
) -> float | np.ndarray:
    """Decode (or short-query, e.g. speculative verify) attention over a batch, one layer::

        t = latency_us + max(kv_bytes / (hbm_bw * mem_eff),
                             flops / (peak_bf16 * prefill.compute_eff),
                             cta_us * cta_scale(head_dim) * num_seqs * num_kv_heads / sm_count)

    ``kv_bytes`` = sum over sequences of context_len x 2 (K and V) x kv_heads_per_gpu x
    head_dim x bytes(kv dtype); ``flops`` (optional) matters only for multi-token queries.
    vLLM's decode kernels run one CTA per (sequence, KV head), each with a fixed cost (load Q and
    a first KV tile, softmax, write O) however short the context: the third term, spread over
    the SMs.  KV is always read from HBM (the L2 speed-up seen in isolated kernel benchmarks does
    not survive a real forward pass).  For a fixed batch the time is ``const + max(a * ctx, c *
    ctx + offset, cta)`` in the total context -- the engine's fast path relies on that.  An fp8
    KV cache (``kv_dtype="fp8"``) uses the profile's ``decode_attention_fp8`` /
    ``prefill_attention_fp8`` parameters where fitted (the kernel dequantises K and V: it reads
    half the bytes but not at the bf16 kernel's efficiency), else the bf16 ones.  The CTA cost is
    stated at head_dim 128; ``head_dim_frac`` of it scales with ``head_dim``.  Sliding-window
    layers pass the bytes and FLOPs of the keys inside the window.  Zero sequences give 0 s.
    """
    eff = hw.efficiency
    da = eff.decode_attention_for(kv_dtype)
    memory = _f(kv_bytes) / (hw.hbm_bandwidth_bytes_per_s * da.mem_eff)
    compute = _f(flops) / (hw.peak_flops("bf16") * eff.prefill_attention_for(kv_dtype).compute_eff)
    seqs = _f(num_seqs)
    cta = units.us(da.cta_us) * da.cta_scale(_f(head_dim)) * seqs * _f(num_kv_heads) / hw.gpu.sm_count
    t = np.maximum(np.maximum(memory, compute), cta) + units.us(da.latency_us)
    return _out(np.where(seqs > 0, t, 0.0))


def prefill_attention_time_s(
    hw: HardwareProfile,
    query_tokens: ArrayLike,
    flops: ArrayLike,
    query_tiles: ArrayLike,
    critical_keys: ArrayLike,
    num_heads: ArrayLike,
    num_kv_heads: ArrayLike,
    head_flops_per_pair: ArrayLike,
    kv_dtype: str = "bf16",
) -> float | np.ndarray:
    """Prefill attention (query chunks of one or more tokens), one layer, FlashAttention-style::

        tiles = query_tiles * num_heads                       (CTAs: one per 128-row query tile and head)
        work  = (tile_us * tiles + (tok_head_ns * heads + tok_kvhead_ns * kv_heads) * 1e-3 * query_tokens)
                / sm_count + flops / (peak_bf16 * compute_eff)
        crit  = tile_us + 128 * critical_keys * head_flops_per_pair / (peak_bf16 / sm_count * crit_eff)
        t     = latency_us + max(work, crit)

    ``query_tiles``: sum over the chunks of ``ceil(q / 128)`` for ``q`` new tokens each;
    ``flops``: causal FLOPs of all chunks (``head_flops_per_pair`` x heads per query-key pair:
    4 x head_dim for QK^T and PV); ``critical_keys``: keys of the chunk that attends to the most
    (cached + new).  The per-tile cost is tile quantisation (short chunks fill a 128-row tile
    partly), the per-token terms the Q / O traffic per head and the K / V traffic per KV head,
    and ``crit`` the critical path when too few CTAs fill the GPU: the last query tile of the
    longest sequence runs on one SM against all its keys.  Tile and token costs are stated at
    head_dim 128; ``head_dim_frac`` of them scales with ``head_flops_per_pair / 4``.
    ``kv_dtype="fp8"`` uses ``prefill_attention_fp8`` where fitted (FLOPs still against the bf16
    peak: the fitted efficiency says what the fp8-KV kernel achieves).  Sliding-window layers
    pass the FLOPs of the keys inside the window (:func:`window_pairs`) and their critical keys.
    Nothing to do gives 0 s.
    """
    pa = hw.efficiency.prefill_attention_for(kv_dtype)
    q, fl, tiles = _f(query_tokens), _f(flops), _f(query_tiles) * _f(num_heads)
    sms = hw.gpu.sm_count
    peak = hw.peak_flops("bf16")
    scale = pa.cost_scale(_f(head_flops_per_pair) / 4.0)  # head_dim: QK^T + PV = 4 x head_dim FLOPs per pair
    per_tok_us = (pa.tok_head_ns * _f(num_heads) + pa.tok_kvhead_ns * _f(num_kv_heads)) * 1e-3
    work = units.us(pa.tile_us * tiles + per_tok_us * q) * scale / sms + fl / (peak * pa.compute_eff)
    crit = units.us(pa.tile_us) + ATTN_TILE_M * _f(critical_keys) * _f(head_flops_per_pair) / (peak / sms * pa.crit_eff)
    t = np.maximum(work, crit) + units.us(pa.latency_us)
    return _out(np.where((tiles > 0) & (fl > 0), t, 0.0))


def window_pairs(causal_pairs: ArrayLike, query_tokens: ArrayLike, window: ArrayLike) -> float | np.ndarray:
    """Query-key pairs of prefill chunks on a sliding-window layer: every query attends to at most
    ``window`` keys, ``pairs = min(causal_pairs, query_tokens * window)`` (exact once a chunk's
    queries have ``window`` keys before them; the first ``window`` tokens of a sequence are
    over-counted by ``window^2 / 2``).

    FlashAttention's local-attention path visits ``ceil(window / 128) + 1`` key tiles per 128-row
    query tile, i.e. up to ``window + 128`` keys per row, masked; on the measured window-128
    rows (H100, B200; parameters fitted on full attention) the exact count predicts better
    (median bias +22 % vs +26 % on H100, +9 % vs +10 % on B200), so it is used -- a choice made
    on those rows, which are therefore not an independent check of this one binary choice."""
    return _out(np.minimum(_f(causal_pairs), _f(query_tokens) * _f(window)))


def elementwise_time_s(hw: HardwareProfile, nbytes: ArrayLike) -> float | np.ndarray:
    """Memory-bound elementwise kernel (norm, RoPE, activation, residual add):
    ``nbytes / (hbm_bw * mem_eff) + latency`` with ``nbytes`` read + written; 0 bytes -> 0 s."""
    ew = hw.efficiency.elementwise
    b = _f(nbytes)
    t = b / (hw.hbm_bandwidth_bytes_per_s * ew.mem_eff) + units.us(ew.latency_us)
    return _out(np.where(b > 0, t, 0.0))


# --------------------------------------------------------------------------- collectives


def _factor(op: str, n: float) -> float:
    """Bytes on the wire per byte of buffer (nccl-tests bus-bandwidth convention)."""
    return bus_factor(op, n)


def _alpha_beta(ab: AlphaBeta, op: str, nbytes: np.ndarray, n: float, bw: float) -> tuple[float, np.ndarray]:
    """``(alpha(n), nbytes * factor(op, n) / (bw * busbw_eff(n)))``; zeros for a group of <= 1."""
    if n <= 1:
        return 0.0, np.zeros_like(nbytes)
    ni = max(int(round(n)), 2)
    alpha = units.us(by_group_size(ab.alpha_us, ni))
    eff = by_group_size(ab.busbw_eff, ni, clamp=True)
    beta = nbytes * _factor(op, n) / (bw * eff)
    if ab.large_alpha_us is not None and ab.large_busbw_eff is not None:
        # faster of two protocols; returned as (alpha, beta) with the choice folded into beta
        alpha2 = units.us(by_group_size(ab.large_alpha_us, ni))
        beta2 = nbytes * _factor(op, n) / (bw * by_group_size(ab.large_busbw_eff, ni, clamp=True))
        return alpha, np.minimum(beta, alpha2 - alpha + beta2)
    return alpha, beta


def _nccl_domain(hw: HardwareProfile, op: str, nbytes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(latency, bandwidth time) of NCCL ``op`` inside one NVLink domain
    (:func:`rlsim.hardware.collectives.nccl_domain_time_s`)."""
    return alpha_beta_split(hw, op, nbytes, n)


def _scale_out(hw: HardwareProfile, op: str, nbytes: np.ndarray, peers: float) -> tuple[float, np.ndarray]:
    return _alpha_beta(hw.collectives.scale_out, op, nbytes, peers, hw.nic_bw_bytes_per_s)


def _hierarchical(nvlink: list[tuple], nic: tuple) -> np.ndarray:
    """Stages of a hierarchical collective: latencies add; stages on the same links (NVLink)
    add their bandwidth time too; NVLink and NIC stages pipeline (NCCL chunks the buffer), so
    the bandwidth part is the slower of the two link kinds."""
    nv_alpha = sum(a for a, _ in nvlink)
    nv_beta = sum(b for _, b in nvlink)
    return nv_alpha + nic[0] + np.maximum(nv_beta, nic[1])


#: vLLM custom all-reduce: one pass of the one-shot kernel moves 36 CTAs x 512 threads x 16 B.
CUSTOM_AR_PASS_BYTES = 36 * 512 * 16


def custom_all_reduce_two_shot(nbytes: ArrayLike, num_gpus: int) -> np.ndarray:
    """vLLM's algorithm choice (csrc/custom_all_reduce.cuh): one-shot for 2 GPUs; otherwise
    one-shot below 512 KiB (<= 4 GPUs) or 256 KiB (<= 8 GPUs), two-shot above."""
    b = _f(nbytes)
    n = num_gpus
    if n <= 2:
        return np.zeros(b.shape, dtype=bool)
    return b >= (512 * 1024 if n <= 4 else 256 * 1024)


def custom_all_reduce_time_s(hw: HardwareProfile, nbytes: ArrayLike, num_gpus: int, cuda_graph: bool = True) -> float | np.ndarray:
    """vLLM's custom all-reduce of ``nbytes`` per GPU over ``num_gpus`` GPUs of one NVLink
    domain (parameters and their physics: :class:`~rlsim.hardware.profile.CustomAllReduce`)::

        alpha    = alpha_us + barrier_per_peer_us * (n-1)
        one-shot = alpha + max((n-1) b / (nvlink_bw * oneshot_link_eff), b / 294,912 B * oneshot_iter_us)
        two-shot = alpha + twoshot_extra_us + 2(n-1)/n b / (nvlink_bw * twoshot_link_eff)
        eager    = max(floor, graph + eager_extra_us + 2 b / hbm_bw),
                   floor = eager_floor_us, or max(that, eager_twoshot_floor_per_peer_us * (n-1)) for two-shot

    with vLLM's fixed choice between one- and two-shot (:func:`custom_all_reduce_two_shot`).
    0 bytes or one GPU -> 0 s.
    """
    car = hw.collectives.custom_all_reduce
    b = _f(nbytes)
    n = int(num_gpus)
    if n <= 1:
        return _out(np.zeros_like(b))
    bw = hw.nvlink_bw_bytes_per_s
    alpha = units.us(car.alpha_us + car.barrier_per_peer_us * (n - 1))
    one = alpha + np.maximum((n - 1) * b / (bw * car.oneshot_link_eff), b / CUSTOM_AR_PASS_BYTES * units.us(car.oneshot_iter_us))
    two = alpha + units.us(car.twoshot_extra_us) + _factor("all_reduce", n) * b / (bw * car.twoshot_link_eff)
    two_shot = custom_all_reduce_two_shot(b, n)
    t = np.where(two_shot, two, one)
    if not cuda_graph:
        floor = np.where(two_shot, max(car.eager_floor_us, car.eager_twoshot_floor_per_peer_us * (n - 1)), car.eager_floor_us)
        t = np.maximum(units.us(floor), t + units.us(car.eager_extra_us) + 2.0 * b / hw.hbm_bandwidth_bytes_per_s)
    return _out(np.where(b > 0, t, 0.0))


def collective_time_s(
    hw: HardwareProfile, op: str, nbytes: ArrayLike, num_gpus: int, *, cuda_graph: bool = True, backend: str = "auto"
) -> float | np.ndarray:
    """Time of one collective over ``num_gpus`` GPUs (0 for a group of <= 1 or 0 bytes).

    ``nbytes`` is the full buffer per GPU (all-reduce input, all-gather output, reduce-scatter
    input, all-to-all send buffer), as in nccl-tests.  ``op`` in :data:`COLLECTIVE_OPS`.

    Inside the NVLink domain (``num_gpus <= nvlink_domain_gpus``):

    - all-reduce with ``nbytes <= custom_all_reduce.max_bytes`` and ``num_gpus <=
      custom_all_reduce.max_gpus`` uses vLLM's custom all-reduce
      (:func:`custom_all_reduce_time_s`, graph or eager);
    - everything else is NCCL on the switch fabric, :func:`rlsim.hardware.collectives.nccl_domain_time_s`:
      per protocol ``alpha_op(n) + nbytes * factor / (nvlink_bw * busbw_eff_op(n))``, factor
      ``2(n-1)/n`` for all-reduce, ``(n-1)/n`` otherwise, fitted at the measured group sizes and
      extrapolated physically beyond them (one hop latency per extra ring step, link-bound
      efficiency held); NVLS for all-reduce where the profile has it; never faster for a larger
      group.  (NCCL parameters come from eager nccl-tests; CUDA graphs are not modelled to change them.)

    Beyond the domain, hierarchical with ``g = nvlink_domain_gpus`` GPUs per domain and
    ``r = n / g`` domains, each GPU using its own NIC (scale-out alpha/efficiency at ``r``):

    - all-reduce = NCCL reduce-scatter in domain + all-reduce of ``nbytes/g`` across ``r``
      + NCCL all-gather in domain;
    - all-gather / reduce-scatter = scale-out step on ``nbytes/g`` + NCCL step in domain;
    - all-to-all = the ``(n-g)/n`` share of the buffer over the NIC + an in-domain all-to-all
      of the ``g/n`` share.

    Latencies add.  NCCL chunks the buffer, so a NIC stage overlaps the NVLink stages, but
    stages on the same links cannot overlap each other: the in-domain reduce-scatter and
    all-gather of an all-reduce both use NVLink, their bandwidth times add, and ``t = sum(alpha)
    + max(sum of NVLink bandwidth times, NIC bandwidth time)`` -- for large all-reduces the bus
    bandwidth tends to ``g * nic_bw * eff`` per GPU, the node's NIC bandwidth (A3.5), when the
    NIC is the slower.  A group that is not a whole number of domains is treated with
    fractional ``r`` (approximate).  Across domains too the time is never below that over fewer
    whole domains (the all-to-all's in-domain share shrinks as domains are added).

    In table mode (:mod:`rlsim.hardware.tables`) an in-domain custom all-reduce or NCCL
    collective takes the measured curve for its group size (and graph / eager) where it covers
    ``nbytes``.

    ``backend``: ``"auto"`` (the choice above), ``"nccl"`` (never the custom all-reduce) or
    ``"custom"`` (always vLLM's custom all-reduce, whatever the size; in-domain all-reduce
    only) -- the calibration check uses the latter two to predict each measured table.
    """
    if op not in COLLECTIVE_OPS:
        raise ValueError(f"unknown collective {op!r}; expected one of {COLLECTIVE_OPS}")
    if backend not in ("auto", "nccl", "custom"):
        raise ValueError(f"backend = {backend!r}; expected auto, nccl or custom")
    b = _f(nbytes)
    n = int(num_gpus)
    if n <= 1:
        return _out(np.zeros_like(b))
    domain = hw.topology.nvlink_domain_gpus
    if n <= domain:
        car = hw.collectives.custom_all_reduce
        use_custom = np.zeros(b.shape, dtype=bool)
        if op == "all_reduce" and (backend == "custom" or (backend == "auto" and n <= car.max_gpus)):
            use_custom = np.ones(b.shape, dtype=bool) if backend == "custom" else b <= car.max_bytes
        t = np.zeros(b.shape)
        if use_custom.any():
            bc = b[use_custom]
            t[use_custom] = _tabulated(hw, "custom_all_reduce", (n, "graph" if cuda_graph else "eager"), bc,
                                       custom_all_reduce_time_s(hw, bc, n, cuda_graph))
        if not use_custom.all():
            bn = b[~use_custom]
            t[~use_custom] = _tabulated(hw, f"nccl_{op}", (n,), bn, nccl_domain_time_s(hw, op, bn, n))
    else:
        # never faster than over fewer whole domains (all-to-all's NVLink share shrinks with n)
        t = np.maximum.reduce([_across_domains(hw, op, b, k * domain) for k in range(2, -(-n // domain))] +
                              [_across_domains(hw, op, b, n)])
    return _out(np.where(b > 0, t, 0.0))


def _across_domains(hw: HardwareProfile, op: str, b: np.ndarray, n: int) -> np.ndarray:
    """Hierarchical collective over ``n / g`` NVLink domains of ``g`` GPUs (see collective_time_s)."""
    g = hw.topology.nvlink_domain_gpus
    r = n / g
    if op == "all_reduce":
        return _hierarchical([_nccl_domain(hw, "reduce_scatter", b, g), _nccl_domain(hw, "all_gather", b, g)],
                             _scale_out(hw, op, b / g, r))
    if op in ("all_gather", "reduce_scatter"):
        return _hierarchical([_nccl_domain(hw, op, b, g)], _scale_out(hw, op, b / g, r))
    # alltoall: the NIC share (n-g)/n equals the scale-out factor (r-1)/r
    return _hierarchical([_nccl_domain(hw, op, b * g / n, g)], _scale_out(hw, op, b, r))


def engine_gpu(engine: ArrayLike, tp: int) -> ArrayLike:
    """First GPU of engine ``engine`` (the placement rule, assumed): engine i on GPUs ``[i tp, (i + 1) tp)``."""
    return engine * tp


def same_nvlink_domain(hw: HardwareProfile, gpu_a: ArrayLike, gpu_b: ArrayLike) -> bool | np.ndarray:
    """Whether GPUs ``gpu_a`` and ``gpu_b`` share an NVLink domain (domain = ``gpu //
    nvlink_domain_gpus``; scalars or arrays)."""
    domain = hw.topology.nvlink_domain_gpus
    return np.asarray(gpu_a) // domain == np.asarray(gpu_b) // domain


def p2p_time_s(hw: HardwareProfile, nbytes: ArrayLike, *, same_domain: bool = True) -> float | np.ndarray:
    """Point-to-point send of ``nbytes`` (pipeline stage hand-off, weight or KV transfer):
    ``link_latency + nbytes / (link_bw * eff)`` over NVLink (``same_domain``) or the NIC, with
    the bandwidth term of a 2-GPU NCCL all-gather (NVLink) or the scale-out fit (NIC) moving
    ``nbytes`` per GPU -- the faster of NCCL's two protocols where the profile fits both
    (:class:`~rlsim.hardware.profile.AlphaBeta`: the low-latency one's efficiency for small
    messages, Simple's for large ones).  0 bytes -> 0 s."""
    b = _f(nbytes)
    if same_domain:
        lat, bw, ab = hw.topology.nvlink_latency_us, hw.nvlink_bw_bytes_per_s, hw.collectives.nccl.all_gather
    else:
        lat, bw, ab = hw.topology.nic_latency_us, hw.nic_bw_bytes_per_s, hw.collectives.scale_out
    _, beta = _alpha_beta(ab, "all_gather", 2.0 * b, 2, bw)  # a 2-GPU all-gather of 2 x nbytes sends nbytes
    t = units.us(lat) + beta
    return _out(np.where(b > 0, t, 0.0))
