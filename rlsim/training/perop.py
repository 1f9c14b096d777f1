"""The trainer costed per operation over its Megatron layout (TP / PP / EP / ETP / CP / DP).

Every time below comes from the calibrated kernel models of :mod:`rlsim.hardware.ops` (the
same functions ``rlsim calibrate check`` validates against measured tables); the MFU is an
*output*: model FLOPs / (trainer time x GPUs x bf16 peak), printed with its breakdown.

One micro-batch on one GPU
--------------------------
A micro-batch is a packed bin (``train_micro_batch_size x max_total_sequence_length`` tokens,
sequences kept apart: varlen attention) or, without packing, ``train_micro_batch_size``
sequences padded to the longest.  Its ``T`` tokens are split over ``cp`` context-parallel ranks
(``t = T / cp`` per GPU; sequence parallelism keeps ``t / tp`` in the norm / dropout regions).
Per decoder layer, forward:

* **GEMMs** (``ops.gemm_time_s``, bf16): every attention / dense-MLP / shared-expert weight of
  :meth:`ModelArch.linear_weights` with ``m = t`` rows, column-parallel weights split on ``n``,
  row-parallel on ``k`` by ``tp``; the router on the ``t / tp`` sequence-parallel tokens;
* **core attention** (``ops.prefill_attention_time_s``, FlashAttention-style, causal) over the
  bin's sequence lengths: ``sum_i s_i (s_i + 1) / 2`` query-key pairs x ``4 d`` FLOPs x heads / tp,
  / cp;
* **routed experts** (MoE layers): each GPU computes ``rows = t * topk * etp / tp * imbalance``
  routed rows spread over its ``E / ep`` local experts; the grouped GEMM is the calibrated dense
  GEMM of each local expert's rows at ``grouped_gemm_efficiency`` (assumed 1: Megatron's grouped
  GEMM runs each expert as efficiently as a dense GEMM of its rows; measured vLLM fused-MoE rows
  are 0.7-2.3x this estimate, rlsim.calibration.trainer_check); ``moe_load_imbalance`` (assumed)
  is the busiest expert rank's load over the mean;
* **elementwise** (``ops.elementwise_time_s``; memory-bound): RMSNorms and residual adds (``20 H``
  bytes per token, on ``t / tp`` tokens with sequence parallelism), RoPE (``4 (heads + kv) d / tp``),
  SwiGLU (``6 I / tp`` per token, ``6 I / etp`` per routed row), token permute / un-permute
  (``8 H`` per routed row), router softmax (``4 E`` per token);
* **TP communication** (``ops.collective_time_s`` over ``tp`` GPUs): with sequence parallelism
  two all-gathers and two reduce-scatters of ``t x H x 2`` bytes, else two all-reduces; exposed
  unless ``tp_comm_overlap`` (then only what exceeds the layer's GEMM time);
* **EP all-to-all**: dispatch and combine of ``t / tp x topk x H x 2`` bytes over the ``ep``
  GPUs of the expert-parallel group (stride ``etp``); with ``etp > 1`` an all-gather and a
  reduce-scatter of the routed rows over ``etp``;
* **CP communication** (ring attention): ``cp - 1`` point-to-point KV exchanges of ``t x 2 x kv/tp
  x d x 2`` bytes, overlapped with the attention (exposed: the excess);
* first stage: embedding lookup; last stage: LM head GEMM ``[t, H] x [H, V / tp]``, fp32
  cross-entropy over ``t x V / tp`` (12 bytes per logit) and its three vocab-parallel all-reduces.

Backward: every GEMM twice (dgrad ``gemm(t, k, n)``, wgrad ``gemm(k, n, t)``), attention at
``attention_backward_ratio`` x its forward FLOPs (assumed 2.5: FlashAttention-2's backward runs
5 of the forward's 2 matmuls per tile, Dao 2023 arXiv:2307.08691 section 3), elementwise x 2
(assumed), communication as in the forward (all-gather <-> reduce-scatter, all-to-all both ways).
Full activation checkpointing recomputes the forward before the backward ("recompute").

The step
--------
Layers are split evenly over ``pp`` stages (the embedding on the first, the head on the last);
the slowest stage sets the pipeline.  Per optimizer step with ``m`` micro-batches per data-
parallel rank, 1F1B takes ``(m + pp - 1) x (t_f + t_b)``: ``m`` in steady state and a bubble of
``(pp - 1)``; the interleaved schedule with ``v`` virtual stages shrinks the bubble to ``(pp - 1)
/ v``.  Stage hand-offs (``ops.p2p_time_s``, activations ``t x H x 2 / tp``) are exposed on the
fill / drain path only (``2 (pp - 1) v`` hops; steady-state sends overlap compute, assumed).
Data-parallel gradients (distributed optimizer): reduce-scatter of bf16 gradients and all-gather
of bf16 parameters over the ``dp x cp`` group (experts: ``edp``); with ``overlap_grad_reduce`` the
reduce-scatter hides behind the last micro-batch's backward and only the excess (at least one
bucket of 40 M parameters, Megatron's default bucket) is exposed; likewise the all-gather behind the
first forward with ``overlap_param_gather``.  Optimizer: Adam over the GPU's shard,
``optimizer_bytes_per_param`` through HBM.  The logprob (and reference logprob) pass runs the
same forward, ``logprob_batch_size`` per micro-batch, ``(m + pp - 1) x t_f``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlsim import units
from rlsim.hardware import ops
from rlsim.hardware.profile import by_group_size
from rlsim.training.layout import TrainLayout

__all__ = ["MicroBatch", "StageCost", "PerOpPass", "micro_batches", "stage_cost", "pass_cost", "virtual_stages",
           "expert_gemms", "gemm_shapes",
           "per_op_step_cost", "CATEGORIES", "ASSUMPTIONS", "group_collective_time_s"]

#: Categories of trainer time (seconds on the critical path of one GPU).
CATEGORIES = ("gemm", "expert_gemm", "attention", "elementwise", "tp_comm", "cp_comm", "ep_comm",
              "recompute", "pp_bubble", "pp_p2p", "dp_comm", "optimizer")
#: Terms of the per-operation model without a measurement behind them (printed with the MFU).
ASSUMPTIONS = {
    "attention_backward_ratio": "attention backward FLOPs / forward (FlashAttention-2: 5 vs 2 matmuls per tile)",
    "moe_load_imbalance": "busiest expert rank's routed rows / mean (aux-loss balanced router)",
    "grouped_gemm_efficiency": "grouped expert GEMM throughput / the calibrated dense GEMM of each local expert's rows",
    "elementwise_backward": "elementwise backward moves 2x the forward's bytes",
    "pp_steady_p2p": "pipeline hand-offs overlap compute in steady state (exposed on fill / drain only)",
    "optimizer_bytes_per_param": "Adam update bytes through HBM per parameter",
}
_BF16 = 2.0
#: Megatron DDP's default gradient bucket (parameters): only the last bucket's reduce-scatter
#: cannot overlap the backward.
BUCKET_PARAMS = 40e6


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of one data-parallel rank (before the CP split)."""

    tokens: float     # tokens computed (padding included)
    pairs: float      # causal query-key pairs, sum of s (s + 1) / 2
    tiles: float      # 128-row query tiles, sum of ceil(s / 128)
    max_seq: float    # longest sequence (keys of the attention's critical path)


def micro_batches(seq: np.ndarray, lay: TrainLayout, mbs: int, max_len: float, packing: bool) -> tuple[MicroBatch, int]:
    """The average micro-batch of the busiest data-parallel rank and how many it runs.

    Sequences are balanced over the ``dp`` ranks by tokens (NeMo-RL packs per rank), but one
    sequence is never split: the busiest rank holds ``max(T / dp, s_max)`` tokens."""
    dp = lay.dp
    if packing:
        lens = seq
        rank_tokens = max(float(lens.sum()) / dp, float(lens.max()))
        m = max(1, math.ceil(rank_tokens / (mbs * max_len) - 1e-9))
    else:
        n = len(seq)
        groups = math.ceil(n / mbs)
        padded = np.zeros(groups * mbs)
        padded[:n] = seq
        lens = np.repeat(padded.reshape(groups, mbs).max(axis=1), mbs)[:n]
        rank_tokens = max(float(lens.sum()) / dp, float(lens.max()))
        m = max(1, math.ceil(n / dp / mbs - 1e-9))
    share = rank_tokens / float(lens.sum()) / m
    mb = MicroBatch(tokens=rank_tokens / m, pairs=float((lens * (lens + 1) / 2).sum()) * share,
                    tiles=float(np.ceil(lens / ops.ATTN_TILE_M).sum()) * share, max_seq=float(lens.max()))
    return mb, m


# --------------------------------------------------------------------------- collectives of the layout


def group_collective_time_s(hw, op: str, nbytes: float, n: int, stride: int) -> float:
    """``op`` over a trainer group of ``n`` GPUs ``stride`` ranks apart (the pool starts on an
    NVLink-domain boundary).  Inside one domain: :func:`ops.collective_time_s`.  Spanning
    domains with ``k`` members per domain: all-gather / reduce-scatter / all-reduce as
    :func:`rlsim.training.cost.dp_collective_time_s`; all-to-all sends ``(n - k) / n`` of the
    buffer over the NIC, pipelined with the in-domain ``k / n`` share."""
    from rlsim.training.cost import dp_collective_time_s

    if n <= 1 or nbytes <= 0:
        return 0.0
    domain = hw.topology.nvlink_domain_gpus
    if n * max(stride, 1) <= domain:
        return float(ops.collective_time_s(hw, op, nbytes, n))
    if op != "alltoall":
        return dp_collective_time_s(hw, op, nbytes, n, stride)
    k = max(1, min(n, domain // max(stride, 1)))
    inner = float(ops.collective_time_s(hw, "alltoall", nbytes * k / n, k)) if k > 1 else 0.0
    so = hw.collectives.scale_out
    r = max(2, round(n / k))
    outer_beta = nbytes * (n - k) / n / (hw.nic_bw_bytes_per_s * by_group_size(so.busbw_eff, r, clamp=True))
    return units.us(by_group_size(so.alpha_us, r)) + max(inner, outer_beta)


# --------------------------------------------------------------------------- one stage, one micro-batch


@dataclass(frozen=True)
class StageCost:
    """Seconds of one micro-batch on the slowest pipeline stage, by category; forward and backward."""

    forward: dict[str, float]
    backward: dict[str, float]

    @property
    def t_f(self) -> float:
        return sum(self.forward.values())

    @property
    def t_b(self) -> float:
        return sum(self.backward.values())


def _gemm(hw, m: float, n: float, k: float) -> float:
    return float(ops.gemm_time_s(hw, m, n, k, "bf16"))


def _gemm_fb(hw, m: float, n: float, k: float, copies: float = 1.0) -> tuple[float, float]:
    """(forward, backward) of ``copies`` GEMMs ``[m, k] x [k, n]``: backward = dgrad + wgrad."""
    if m <= 0:
        return 0.0, 0.0
    f = _gemm(hw, m, n, k)
    b = _gemm(hw, m, k, n) + _gemm(hw, k, n, m)
    return copies * f, copies * b


def _split(w, tp: int) -> tuple[float, float]:
    """(k, n) of weight ``w`` on one GPU of a ``tp``-way tensor-parallel group."""
    if w.parallel == "column":
        return w.in_features, w.out_features / tp
    if w.parallel == "row":
        return w.in_features / tp, w.out_features
    return w.in_features, w.out_features


def _add(d: dict, key: str, value: float) -> None:
    d[key] = d.get(key, 0.0) + value


def gemm_shapes(arch, lay: TrainLayout, t: float) -> list[tuple[str, float, float, float]]:
    """``(weight, m, n, k)`` of every dense GEMM one GPU runs per layer type in the forward pass
    at ``t`` tokens (backward: ``(m, k, n)`` and ``(k, n, m)``), the head included."""
    out = []
    for w in arch.linear_weights():
        if w.group in ("attention", "dense_mlp", "shared_expert", "head"):
            k, n = _split(w, lay.tp)
            out.append((w.name, t, n, k))
    return out


def _dense_gemms(arch, hw, lay: TrainLayout, t: float, groups: tuple[str, ...]) -> tuple[float, float]:
    f = b = 0.0
    for w in arch.linear_weights():
        if w.group in groups:
            k, n = _split(w, lay.tp)
            wf, wb = _gemm_fb(hw, t, n, k)
            f, b = f + wf, b + wb
    return f, b


def _attention_layer(arch, hw, lay: TrainLayout, mb: MicroBatch, fwd: dict, bwd: dict) -> None:
    cfg, tp, cp = lay.cfg, lay.tp, lay.cp
    t = mb.tokens / cp
    f, b = _dense_gemms(arch, hw, lay, t, ("attention",))
    _add(fwd, "gemm", f)
    _add(bwd, "gemm", b)
    heads = arch.num_attention_heads / tp
    kv = max(1.0, arch.num_key_value_heads / tp) if arch.attention_kind != "mla" else heads
    d = arch.head_dim if arch.attention_kind != "mla" else (arch.head_dim + (arch.v_head_dim or arch.head_dim)) / 2
    per_pair = 4.0 * d
    flops = mb.pairs * per_pair * heads / cp
    attn_f = float(ops.prefill_attention_time_s(hw, t, flops, mb.tiles / cp, mb.max_seq, heads, kv, per_pair))
    attn_b = float(ops.prefill_attention_time_s(hw, t, flops * cfg.attention_backward_ratio, mb.tiles / cp,
                                                mb.max_seq, heads, kv, per_pair * cfg.attention_backward_ratio))
    _add(fwd, "attention", attn_f)
    _add(bwd, "attention", attn_b)
    if cp > 1:
        kv_bytes = t * 2 * kv * arch.head_dim * _BF16
        same = lay.tp * cp <= hw.topology.nvlink_domain_gpus
        ring = (cp - 1) * float(ops.p2p_time_s(hw, kv_bytes, same_domain=same))
        _add(fwd, "cp_comm", max(0.0, ring - attn_f))
        _add(bwd, "cp_comm", max(0.0, 2 * ring - attn_b))
    rope = 4.0 * (arch.num_attention_heads + arch.num_key_value_heads) * arch.head_dim / tp
    _add(fwd, "elementwise", float(ops.elementwise_time_s(hw, t * rope)))
    _add(bwd, "elementwise", 2 * float(ops.elementwise_time_s(hw, t * rope)))


def _mlp_layer(arch, hw, lay: TrainLayout, mb: MicroBatch, moe: bool, fwd: dict, bwd: dict) -> None:
    t = mb.tokens / lay.cp
    tp = lay.tp
    if not moe:
        f, b = _dense_gemms(arch, hw, lay, t, ("dense_mlp",))
        _add(fwd, "gemm", f)
        _add(bwd, "gemm", b)
        act = float(ops.elementwise_time_s(hw, t * 6.0 * arch.intermediate_size / tp))
        _add(fwd, "elementwise", act)
        _add(bwd, "elementwise", 2 * act)
        return
    _moe_layer(arch, hw, lay, t, fwd, bwd)


def expert_gemms(hw, arch, rows: float, etp: int, ep: int) -> tuple[float, float]:
    """(forward, backward) seconds of one GPU's grouped expert GEMMs: ``rows`` routed rows spread
    evenly over its ``E / ep`` local experts, each expert's gate-up ``[rows_e, H] x [H, 2I/etp]`` and
    down ``[rows_e, I/etp] x [I/etp, H]`` as the calibrated dense GEMM."""
    h, i = arch.hidden_size, arch.moe_intermediate_size
    local = arch.num_experts / ep
    per_expert = rows / local
    gu = _gemm_fb(hw, per_expert, 2 * i / etp, h, local)
    dn = _gemm_fb(hw, per_expert, h, i / etp, local)
    return gu[0] + dn[0], gu[1] + dn[1]


def _moe_layer(arch, hw, lay: TrainLayout, t: float, fwd: dict, bwd: dict) -> None:
    cfg, tp, ep, etp = lay.cfg, lay.tp, lay.ep, lay.etp
    h, i, e, topk = arch.hidden_size, arch.moe_intermediate_size, arch.num_experts, arch.num_experts_per_tok
    f, b = _dense_gemms(arch, hw, lay, t, ("shared_expert",))
    _add(fwd, "gemm", f)
    _add(bwd, "gemm", b)
    local_tokens = t / tp if cfg.sequence_parallel else t
    rf, rb = _gemm_fb(hw, local_tokens, e, h)
    _add(fwd, "gemm", rf)
    _add(bwd, "gemm", rb)
    rows = t * topk * etp / tp * cfg.moe_load_imbalance
    f, b = expert_gemms(hw, arch, rows, etp, ep)
    _add(fwd, "expert_gemm", f / cfg.grouped_gemm_efficiency)
    _add(bwd, "expert_gemm", b / cfg.grouped_gemm_efficiency)
    ew = float(ops.elementwise_time_s(hw, rows * (6.0 * i / etp + 8.0 * h) + local_tokens * 4.0 * e))
    _add(fwd, "elementwise", ew)
    _add(bwd, "elementwise", 2 * ew)
    a2a = local_tokens * topk * h * _BF16
    comm = 2 * group_collective_time_s(hw, "alltoall", a2a, ep, etp)
    if etp > 1:
        rows_bytes = rows * h * _BF16
        comm += group_collective_time_s(hw, "all_gather", rows_bytes, etp, 1)
        comm += group_collective_time_s(hw, "reduce_scatter", rows_bytes, etp, 1)
    _add(fwd, "ep_comm", comm)
    _add(bwd, "ep_comm", comm)


def _tp_comm(arch, hw, lay: TrainLayout, t: float, gemm_s: float) -> float:
    """Per layer, one direction: 2 all-gathers + 2 reduce-scatters (sequence parallel) or 2
    all-reduces of ``t x H`` bf16; with ``tp_comm_overlap`` only what the layer's GEMMs cannot hide."""
    if lay.tp <= 1:
        return 0.0
    nbytes = t * arch.hidden_size * _BF16
    if lay.cfg.sequence_parallel:
        c = 2 * (float(ops.collective_time_s(hw, "all_gather", nbytes, lay.tp, backend="nccl"))
                 + float(ops.collective_time_s(hw, "reduce_scatter", nbytes, lay.tp, backend="nccl")))
    else:
        c = 2 * float(ops.collective_time_s(hw, "all_reduce", nbytes, lay.tp, backend="nccl"))
    return max(0.0, c - gemm_s) if lay.cfg.tp_comm_overlap else c


def _layer(arch, hw, lay: TrainLayout, mb: MicroBatch, moe: bool) -> tuple[dict, dict]:
    fwd: dict[str, float] = {}
    bwd: dict[str, float] = {}
    t = mb.tokens / lay.cp
    _attention_layer(arch, hw, lay, mb, fwd, bwd)
    _mlp_layer(arch, hw, lay, mb, moe, fwd, bwd)
    sp = lay.tp if lay.cfg.sequence_parallel else 1
    norm = float(ops.elementwise_time_s(hw, t / sp * 20.0 * arch.hidden_size))
    _add(fwd, "elementwise", norm)
    _add(bwd, "elementwise", 2 * norm)
    _add(fwd, "tp_comm", _tp_comm(arch, hw, lay, t, fwd["gemm"]))
    _add(bwd, "tp_comm", _tp_comm(arch, hw, lay, t, bwd["gemm"]))
    return fwd, bwd


def _head(arch, hw, lay: TrainLayout, mb: MicroBatch) -> tuple[dict, dict]:
    t = mb.tokens / lay.cp
    v = arch.vocab_size / lay.tp
    f, b = _gemm_fb(hw, t, v, arch.hidden_size)
    ce = float(ops.elementwise_time_s(hw, t * v * 12.0))
    comm = 3 * float(ops.collective_time_s(hw, "all_reduce", t * 4.0, lay.tp)) if lay.tp > 1 else 0.0
    return ({"gemm": f, "elementwise": ce, "tp_comm": comm}, {"gemm": b, "elementwise": 2 * ce, "tp_comm": comm})


def stage_cost(arch, hw, lay: TrainLayout, mb: MicroBatch) -> StageCost:
    """One micro-batch through the slowest pipeline stage (layers split evenly; the head's stage)."""
    pp = lay.pp
    fwd: dict[str, float] = {}
    bwd: dict[str, float] = {}
    for moe, count in ((False, arch.num_dense_layers), (True, arch.num_moe_layers)):
        if count:
            lf, lb = _layer(arch, hw, lay, mb, moe)
            for k, val in lf.items():
                _add(fwd, k, val * count / pp)
            for k, val in lb.items():
                _add(bwd, k, val * count / pp)
    hf, hb = _head(arch, hw, lay, mb)
    for k, val in hf.items():
        _add(fwd, k, val)
    for k, val in hb.items():
        _add(bwd, k, val)
    emb = float(ops.elementwise_time_s(hw, mb.tokens / lay.cp * arch.hidden_size * 2 * _BF16))
    if pp == 1:
        _add(fwd, "elementwise", emb)
        _add(bwd, "elementwise", emb)
    if lay.cfg.activation_checkpointing:
        bwd["recompute"] = sum(fwd.values())
    return StageCost(fwd, bwd)


# --------------------------------------------------------------------------- passes


@dataclass(frozen=True)
class PerOpPass:
    """A training (or logprob) pass of one optimizer step: seconds by category, the micro-batches."""

    seconds: dict[str, float]
    micro_batches: int
    micro_batch: MicroBatch
    stage: StageCost

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


def _scaled(d: dict, x: float) -> dict:
    return {k: v * x for k, v in d.items()}


def virtual_stages(lay: TrainLayout) -> int:
    """Model chunks per pipeline rank: ``virtual_pipeline_size`` for the interleaved schedule, else 1."""
    return (lay.cfg.virtual_pipeline_size or 1) if lay.cfg.pipeline_schedule == "interleaved" else 1


def _pp_terms(arch, hw, lay: TrainLayout, mb: MicroBatch, per_mb_s: float) -> tuple[float, float]:
    """(bubble, exposed stage hand-offs) of one pass with ``per_mb_s`` per micro-batch."""
    pp = lay.pp
    if pp <= 1:
        return 0.0, 0.0
    v = virtual_stages(lay)
    act = mb.tokens / lay.cp * arch.hidden_size * _BF16 / (lay.tp if lay.cfg.sequence_parallel else 1)
    same = lay.num_gpus <= hw.topology.nvlink_domain_gpus
    hops = 2 * (pp - 1) * v
    return (pp - 1) / v * per_mb_s, hops * float(ops.p2p_time_s(hw, act, same_domain=same))


def pass_cost(arch, hw, lay: TrainLayout, seq: np.ndarray, *, train: bool, max_len: float) -> PerOpPass:
    """One optimizer step's training pass over ``seq`` (or, ``train=False``, the logprob forward)."""
    cfg = lay.cfg
    mbs = cfg.train_micro_batch_size if train else (cfg.logprob_batch_size or cfg.train_micro_batch_size)
    mb, m = micro_batches(seq, lay, mbs, max_len, cfg.sequence_packing)
    st = stage_cost(arch, hw, lay, mb)
    per = {k: v * m for k, v in st.forward.items()}
    per_mb = st.t_f
    if train:
        for k, v in st.backward.items():
            per[k] = per.get(k, 0.0) + v * m
        per_mb += st.t_b
    bubble, p2p = _pp_terms(arch, hw, lay, mb, per_mb)
    per["pp_bubble"], per["pp_p2p"] = bubble, p2p
    return PerOpPass(per, m, mb, st)


# --------------------------------------------------------------------------- the RL step


def _dp_comm(hw, lay: TrainLayout) -> tuple[float, float, int]:
    """(reduce-scatter, all-gather) seconds of one optimizer step's gradient / parameter traffic
    and the number of gradient buckets."""
    from rlsim.training.cost import GRAD_BYTES, dp_collective_time_s

    rs = ag = 0.0
    groups = [(lay.dense_params_per_gpu, lay.dp * lay.cp, lay.dp_group_stride)]
    if lay.expert_params_per_gpu > 0:
        groups.append((lay.expert_params_per_gpu, lay.edp, lay.expert_dp_group_stride))
    for params, n, stride in groups:
        rs += dp_collective_time_s(hw, "reduce_scatter", params * GRAD_BYTES, n, stride)
        ag += dp_collective_time_s(hw, "all_gather", params * GRAD_BYTES, n, stride)
    return rs, ag, max(1, math.ceil(lay.params_per_gpu / BUCKET_PARAMS))


def _exposed_dp(hw, lay: TrainLayout, tr: PerOpPass) -> tuple[float, float]:
    """(exposed, total) data-parallel communication of one optimizer step."""
    rs, ag, buckets = _dp_comm(hw, lay)
    cfg = lay.cfg
    rs_x = max(rs - tr.stage.t_b, rs / buckets) if cfg.overlap_grad_reduce else rs
    ag_x = max(ag - tr.stage.t_f, ag / buckets) if cfg.overlap_param_gather else ag
    return rs_x + ag_x, rs + ag


def _assumed(arch, lay: TrainLayout) -> dict:
    """The assumed terms that apply to this model and layout: {name: (value or None, why)}."""
    skip = set()
    if not arch.is_moe:
        skip |= {"moe_load_imbalance", "grouped_gemm_efficiency"}
    if lay.pp == 1:
        skip.add("pp_steady_p2p")
    return {k: (getattr(lay.cfg, k, None), why) for k, why in ASSUMPTIONS.items() if k not in skip}


def per_op_step_cost(arch, hw, layout: TrainLayout, seq_tokens, *, reference_logprob: bool, prompt_tokens=None,
                     max_sequence_tokens: int | None = None):
    """Trainer cost of one RL step from the per-operation model (module docstring), as a
    :class:`rlsim.training.cost.TrainStepCost` whose ``mfu`` is the *achieved* MFU and whose
    ``breakdown_s`` splits the step by :data:`CATEGORIES`."""
    from rlsim.training.cost import TrainStepCost, check_tokens, forward_flops

    cfg = layout.cfg
    seq, n_prompt = check_tokens(seq_tokens, prompt_tokens)
    max_len = float(max_sequence_tokens) if max_sequence_tokens is not None else float(seq.max())
    lp = pass_cost(arch, hw, layout, seq, train=False, max_len=max_len)
    n_lp = 2 if reference_logprob else 1
    parts = _scaled(lp.seconds, n_lp)
    gbs = cfg.train_global_batch_size or len(seq)
    starts = list(range(0, len(seq), gbs))
    comm_x = comm_total = optimizer = bubble = 0.0
    opt = float(ops.elementwise_time_s(hw, layout.optimizer_params_per_gpu * cfg.optimizer_bytes_per_param))
    m_max = 0
    for s0 in starts:
        tr = pass_cost(arch, hw, layout, seq[s0:s0 + gbs], train=True, max_len=max_len)
        for k, v in tr.seconds.items():
            parts[k] = parts.get(k, 0.0) + v
        x, tot = _exposed_dp(hw, layout, tr)
        comm_x, comm_total, optimizer = comm_x + x, comm_total + tot, optimizer + opt
        bubble += tr.seconds["pp_bubble"] + tr.seconds["pp_p2p"]
        m_max = max(m_max, tr.micro_batches)
    parts["dp_comm"], parts["optimizer"] = comm_x, optimizer
    breakdown = {k: parts.get(k, 0.0) for k in CATEGORIES}
    lp_s = lp.total_s
    total = sum(breakdown.values())
    train = total - n_lp * lp_s
    f = forward_flops(arch, seq)
    model = float(f.sum()) * (3.0 + n_lp)
    executed = model + (float(f.sum()) if cfg.activation_checkpointing else 0.0)
    peak_s = layout.num_gpus * hw.peak_flops("bf16")
    return TrainStepCost(
        policy_logprob_s=lp_s, reference_logprob_s=lp_s if reference_logprob else 0.0,
        forward_backward_s=train - bubble - optimizer - comm_x, pipeline_bubble_s=bubble, optimizer_s=optimizer,
        grad_comm_s=comm_x, grad_comm_total_s=comm_total,
        logprob_bubble_s=n_lp * (lp.seconds["pp_bubble"] + lp.seconds["pp_p2p"]),
        logprob_s=n_lp * lp_s, train_s=train, total_s=total, tokens=int(seq.sum()), prompt_tokens=n_prompt,
        padded_tokens=int(round(lp.micro_batch.tokens * lp.micro_batches * layout.dp)), num_sequences=len(seq),
        num_optimizer_steps=len(starts), micro_batches_per_step=m_max,
        flops=executed, logprob_flops=float(f.sum()) * n_lp, train_flops=executed - float(f.sum()) * n_lp,
        mfu=model / (total * peak_s), mfu_source="per-operation model (achieved: model FLOPs / time / peak)",
        breakdown_s=breakdown, model_flops=model, hfu=executed / (total * peak_s),
        assumptions=_assumed(arch, layout),
    )
