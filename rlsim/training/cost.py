"""Trainer and weight-sync cost of one RL step: pure functions of (model, hardware, layout, tokens).

Trainer model (DESIGN 7)
------------------------
Per sequence of ``s`` tokens (prompt + response, actual lengths), one forward pass costs::

    F_fwd(s) = 2 * N * s  +  A * s^2 / 2        N = matmul_params(arch) (active per token)
                                                A = 4 * L * heads * head_dim   (causal QK^T + PV)

(``N`` = every GEMM weight a token passes through: attention, dense MLP or top-k routed +
shared experts, router, LM head -- i.e. active parameters less the embedding lookup table and
the norm vectors; the LM head counts even when tied.  For MLA ``head_dim`` is the mean of the
q/k and v head dims.)  Sequence packing keeps sequences separate (varlen attention: ``sum s_i^2``,
no padding; bin fragmentation ignored).  Without packing every sequence is padded to the longest
of its micro-batch (``train_micro_batch_size`` consecutive sequences) for both terms.

* logprob pass (policy; the reference pass when ``reference_logprob`` costs the same):
  ``F_fwd`` over the whole batch at ``mfu * logprob_mfu_factor``;
* training: ``3 x F_fwd`` (forward + backward = 6NT), ``4 x`` with activation checkpointing
  (a recomputed forward); split into ``ceil(B / train_global_batch_size)`` optimizer steps of
  consecutive sequences.

Time of a pass over a group of sequences on ``P = tp * pp * cp`` GPUs per replica and ``dp``
replicas: ``max(F_group / dp, max_i F_i) / (P * peak_bf16 * mfu)`` -- work is balanced over the
data-parallel ranks by tokens (NeMo-RL's packing), but one sequence cannot be split across them;
with perfect balance this is ``F / (num_gpus * peak * mfu)``.  MFU from
:func:`rlsim.training.efficiency.resolve_mfu`; TP / EP / CP communication is inside it.

* pipeline bubble (1F1B): ``ideal * (pp - 1) / m``, i.e. a fraction ``(pp-1)/(m+pp-1)`` of the
  pass, with ``m`` micro-batches per data-parallel rank (packed: ``ceil(tokens_per_rank /
  (micro_batch_size * max_sequence_tokens))``, else ``ceil(seqs_per_rank / micro_batch_size)``).
  The training bubble is ``pipeline_bubble_s``; the logprob passes' bubbles are inside
  ``policy_logprob_s`` / ``reference_logprob_s`` (``logprob_bubble_s`` reports them).
* optimizer, per optimizer step: the distributed optimizer's shard ``layout.optimizer_params_per_gpu
  = dense/(dp*cp) + expert/edp`` (= total_params / num_gpus when stages are balanced) times
  ``optimizer_bytes_per_param`` through HBM as a memory-bound elementwise kernel
  (:func:`rlsim.hardware.ops.elementwise_time_s`: HBM bandwidth x ``elementwise.mem_eff`` + latency).
* data-parallel gradient communication, per optimizer step: reduce-scatter of the bf16 gradients
  plus all-gather of the updated bf16 parameters (Megatron distributed optimizer), buffer =
  the GPU's parameters x 2 bytes, over the dp*cp group (non-expert) and the edp group (experts);
  ``(1 - dp_comm_overlap_frac)`` of it is exposed.  Groups inside one NVLink domain or with
  stride 1 use :func:`rlsim.hardware.ops.collective_time_s` directly; a strided group that
  spans domains (e.g. DP across HGX nodes with tp = 8: one member per node) is an in-domain
  collective over the ``k`` members per domain followed by a scale-out ring over the domains
  on ``nbytes / k`` (sequential: conservative).

Weight sync
-----------
See :func:`weight_sync_cost`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from rlsim import units
from rlsim.cost.memory import weight_bytes_per_gpu
from rlsim.errors import ConfigError
from rlsim.hardware import ops
from rlsim.hardware.profile import by_group_size
from rlsim.training.config import WeightSyncConfig
from rlsim.training.efficiency import resolve_mfu
from rlsim.training.layout import TrainLayout

__all__ = [
    "TrainStepCost",
    "WeightSyncCost",
    "train_step_cost",
    "trainer_step_cost",
    "check_tokens",
    "uses_per_op",
    "weight_sync_cost",
    "drafter_train_cost",
    "resolve_sync_mode",
    "matmul_params",
    "attention_flops_coeff",
    "forward_flops",
    "dp_collective_time_s",
    "GRAD_BYTES",
]

#: Bytes per gradient / parameter element on the data-parallel wire (bf16).
GRAD_BYTES = 2.0


# --------------------------------------------------------------------------- FLOPs


def matmul_params(arch) -> float:
    """GEMM weights one token passes through in a forward pass (multiply-adds per token).

    Sum over ``arch.linear_weights()`` of ``in * out * layers * copies`` with routed experts
    counted ``num_experts_per_tok`` times per layer; the LM head counts even when it shares the
    embedding's storage.  Equals ``active_params`` less the embedding table and norm vectors.
    """
    total = 0.0
    for w in arch.linear_weights():
        copies = arch.num_experts_per_tok if w.group == "expert" else w.copies_per_layer
        total += float(w.in_features) * w.out_features * w.layers * copies
    return total


def attention_flops_coeff(arch) -> float:
    """``A`` in ``F_attn = A * s^2 / 2`` for one causal forward pass of a sequence of s tokens:
    ``4 * L * heads * head_dim`` (QK^T and PV, 2 FLOPs per multiply-add; MLA: mean of the qk and
    v head dims)."""
    d = arch.head_dim
    if arch.attention_kind == "mla":
        d = (arch.head_dim + (arch.v_head_dim or arch.head_dim)) / 2
    return 4.0 * arch.num_hidden_layers * arch.num_attention_heads * d


def forward_flops(arch, seq_tokens) -> np.ndarray:
    """Forward FLOPs of each sequence: ``2 N s + A s^2 / 2`` (see the module docstring)."""
    s = np.asarray(seq_tokens, dtype=float)
    return 2.0 * matmul_params(arch) * s + attention_flops_coeff(arch) * s * s / 2.0


def _padded_lengths(seq: np.ndarray, mbs: int) -> np.ndarray:
    """Each sequence padded to the longest of its micro-batch of ``mbs`` consecutive sequences."""
    n = len(seq)
    groups = math.ceil(n / mbs)
    padded = np.zeros(groups * mbs)
    padded[:n] = seq
    mx = padded.reshape(groups, mbs).max(axis=1)
    return np.repeat(mx, mbs)[:n]


# --------------------------------------------------------------------------- collectives


def dp_collective_time_s(hw, op: str, nbytes: float, n: int, stride: int) -> float:
    """One collective over a data-parallel group of ``n`` GPUs whose members are ``stride``
    ranks apart (see the module docstring for the strided, multi-domain case)."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    domain = hw.topology.nvlink_domain_gpus
    if stride <= 1 or n * stride <= domain:
        return float(ops.collective_time_s(hw, op, nbytes, n))
    k = max(1, min(n, domain // stride))
    r = math.ceil(n / k)
    inner = float(ops.collective_time_s(hw, op, nbytes, k)) if k > 1 else 0.0
    so = hw.collectives.scale_out
    factor = 2.0 * (r - 1) / r if op == "all_reduce" else (r - 1) / r
    eff = by_group_size(so.busbw_eff, r, clamp=True)
    outer = units.us(by_group_size(so.alpha_us, r)) + (nbytes / k) * factor / (hw.nic_bw_bytes_per_s * eff)
    return inner + outer


# --------------------------------------------------------------------------- trainer step


@dataclass(frozen=True)
class TrainStepCost:
    """Trainer time of one RL step, seconds, and what it is made of.

    ``logprob_s = policy_logprob_s + reference_logprob_s`` (their pipeline bubbles included);
    ``train_s = forward_backward_s + pipeline_bubble_s + optimizer_s + grad_comm_s``;
    ``total_s = logprob_s + train_s``.  ``grad_comm_s`` is the exposed part
    (``grad_comm_total_s`` before overlap).  ``flops``: executed FLOPs of every pass;
    ``tokens``: actual tokens, ``padded_tokens``: tokens computed (padding included).
    """

    policy_logprob_s: float
    reference_logprob_s: float
    forward_backward_s: float
    pipeline_bubble_s: float
    optimizer_s: float
    grad_comm_s: float
    grad_comm_total_s: float
    logprob_bubble_s: float
    logprob_s: float
    train_s: float
    total_s: float
    tokens: int
    prompt_tokens: int | None
    padded_tokens: int
    num_sequences: int
    num_optimizer_steps: int
    micro_batches_per_step: int
    flops: float
    logprob_flops: float
    train_flops: float
    mfu: float
    mfu_source: str
    #: per-operation model only: seconds by category (rlsim.training.perop.CATEGORIES), the
    #: model FLOPs behind ``mfu`` (no recompute), the hardware-FLOPs utilisation, and the assumed
    #: terms {name: (value, why)}
    breakdown_s: dict = field(default_factory=dict)
    model_flops: float = 0.0
    hfu: float = 0.0
    assumptions: dict = field(default_factory=dict)

    def breakdown(self) -> dict[str, float]:
        """The additive parts of ``total_s``, seconds."""
        return {
            "policy_logprob_s": self.policy_logprob_s,
            "reference_logprob_s": self.reference_logprob_s,
            "forward_backward_s": self.forward_backward_s,
            "pipeline_bubble_s": self.pipeline_bubble_s,
            "optimizer_s": self.optimizer_s,
            "grad_comm_s": self.grad_comm_s,
        }

    def as_dict(self) -> dict:
        return asdict(self)


def _micro_batches(tokens_per_rank: float, seqs_per_rank: float, mbs: int, max_len: float, packing: bool) -> int:
    if packing:
        return max(1, math.ceil(tokens_per_rank / (mbs * max_len) - 1e-9))
    return max(1, math.ceil(seqs_per_rank / mbs - 1e-9))


def check_tokens(seq_tokens, prompt_tokens=None) -> tuple[np.ndarray, int | None]:
    """Validated ``(sequence tokens as floats, total prompt tokens or None)``."""
    seq = np.asarray(seq_tokens, dtype=float).ravel()
    if seq.size == 0:
        raise ValueError("train_step_cost needs at least one sequence")
    if np.any(seq <= 0) or not np.all(np.isfinite(seq)):
        raise ValueError("seq_tokens must be finite and > 0")
    n_prompt = None
    if prompt_tokens is not None:
        pr = np.asarray(prompt_tokens, dtype=float).ravel()
        if pr.shape != seq.shape or np.any(pr < 0) or np.any(pr > seq):
            raise ValueError("prompt_tokens must match seq_tokens in shape and lie in [0, seq_tokens]")
        n_prompt = int(pr.sum())
    return seq, n_prompt


def trainer_step_cost(arch, hw, layout: TrainLayout, seq_tokens, *, reference_logprob: bool, prompt_tokens=None,
                      max_sequence_tokens: int | None = None) -> TrainStepCost:
    """The trainer cost of one RL step with the layout's ``cost_model``: the per-operation model
    (:func:`rlsim.training.perop.per_op_step_cost`, default) or one MFU (:func:`train_step_cost`,
    when ``rl.training.mfu`` is set or ``cost_model: mfu``)."""
    kw = dict(reference_logprob=reference_logprob, prompt_tokens=prompt_tokens, max_sequence_tokens=max_sequence_tokens)
    if uses_per_op(layout.cfg):
        from rlsim.training.perop import per_op_step_cost

        return per_op_step_cost(arch, hw, layout, seq_tokens, **kw)
    return train_step_cost(arch, hw, layout, seq_tokens, **kw)


def uses_per_op(cfg) -> bool:
    """``cost_model`` resolved: ``auto`` is the per-operation model unless an MFU is given."""
    return cfg.cost_model == "per_op" or (cfg.cost_model == "auto" and cfg.mfu is None)


def train_step_cost(
    arch,
    hw,
    layout: TrainLayout,
    seq_tokens: np.ndarray,
    *,
    reference_logprob: bool,
    prompt_tokens: np.ndarray | None = None,
    max_sequence_tokens: int | None = None,
) -> TrainStepCost:
    """Trainer cost of one RL step over sequences of ``seq_tokens`` tokens (prompt + response).

    ``reference_logprob``: a reference-policy logprob pass too (NeMo-RL
    ``loss_fn.reference_policy_kl_penalty > 0``).  ``prompt_tokens`` (per sequence, optional)
    is only checked and reported: every position is computed in each pass.
    ``max_sequence_tokens`` (``max_total_sequence_length``) sizes packed bins; None = the
    longest sequence of the batch.  Model and formulas: module docstring.
    """
    cfg = layout.cfg
    seq, n_prompt = check_tokens(seq_tokens, prompt_tokens)
    max_len = float(max_sequence_tokens) if max_sequence_tokens is not None else float(seq.max())
    mbs = cfg.train_micro_batch_size
    lbs = cfg.logprob_batch_size or mbs

    mfu, mfu_source = resolve_mfu(arch, hw, cfg.mfu)
    mfu_lp = mfu * cfg.logprob_mfu_factor
    peak = hw.peak_flops("bf16")
    replica = layout.tp * layout.pp * layout.cp
    dp, pp = layout.dp, layout.pp
    bsz = seq.size

    # ---- logprob passes: the whole batch, forward only
    lp_len = seq if cfg.sequence_packing else _padded_lengths(seq, lbs)
    f_lp = forward_flops(arch, lp_len)
    lp_work = max(float(f_lp.sum()) / dp, float(f_lp.max()))
    lp_ideal = lp_work / (replica * peak * mfu_lp)
    m_lp = _micro_batches(lp_len.sum() / dp, bsz / dp, lbs, max_len, cfg.sequence_packing)
    lp_bubble = lp_ideal * (pp - 1) / m_lp
    policy_lp = float(lp_ideal + lp_bubble)
    ref_lp = policy_lp if reference_logprob else 0.0
    logprob_flops = float(f_lp.sum()) * (2 if reference_logprob else 1)

    # ---- training: optimizer steps over consecutive chunks of the batch
    gbs = cfg.train_global_batch_size or bsz
    n_steps = math.ceil(bsz / gbs)
    tr_len = seq if cfg.sequence_packing else _padded_lengths(seq, mbs)
    mult = 4.0 if cfg.activation_checkpointing else 3.0
    f_tr = forward_flops(arch, tr_len) * mult
    starts = np.arange(0, bsz, gbs)
    chunk_flops = np.add.reduceat(f_tr, starts)
    chunk_max = np.maximum.reduceat(f_tr, starts)
    chunk_tokens = np.add.reduceat(tr_len, starts)
    chunk_seqs = np.diff(np.append(starts, bsz))
    fb_ideal = np.maximum(chunk_flops / dp, chunk_max) / (replica * peak * mfu)
    m_tr = np.array([
        _micro_batches(t / dp, c / dp, mbs, max_len, cfg.sequence_packing) for t, c in zip(chunk_tokens, chunk_seqs)
    ])
    forward_backward = float(fb_ideal.sum())
    bubble = float((fb_ideal * (pp - 1) / m_tr).sum())

    # ---- optimizer and data-parallel communication, per optimizer step
    opt_bytes = layout.optimizer_params_per_gpu * cfg.optimizer_bytes_per_param
    optimizer = n_steps * float(ops.elementwise_time_s(hw, opt_bytes))
    comm_one = 0.0
    groups = [(layout.dense_params_per_gpu, layout.dp * layout.cp, layout.dp_group_stride)]
    if layout.expert_params_per_gpu > 0:
        groups.append((layout.expert_params_per_gpu, layout.edp, layout.expert_dp_group_stride))
    for params, n, stride in groups:
        nbytes = params * GRAD_BYTES
        comm_one += dp_collective_time_s(hw, "reduce_scatter", nbytes, n, stride)
        comm_one += dp_collective_time_s(hw, "all_gather", nbytes, n, stride)
    comm_total = n_steps * comm_one
    comm_exposed = comm_total * (1.0 - cfg.dp_comm_overlap_frac)

    logprob = policy_lp + ref_lp
    train = forward_backward + bubble + optimizer + comm_exposed
    train_flops = float(f_tr.sum())
    return TrainStepCost(
        policy_logprob_s=policy_lp,
        reference_logprob_s=ref_lp,
        forward_backward_s=forward_backward,
        pipeline_bubble_s=bubble,
        optimizer_s=optimizer,
        grad_comm_s=comm_exposed,
        grad_comm_total_s=comm_total,
        logprob_bubble_s=float(lp_bubble) * (2 if reference_logprob else 1),
        logprob_s=logprob,
        train_s=train,
        total_s=logprob + train,
        tokens=int(seq.sum()),
        prompt_tokens=n_prompt,
        padded_tokens=int(tr_len.sum()),
        num_sequences=int(bsz),
        num_optimizer_steps=n_steps,
        micro_batches_per_step=int(m_tr.max()),
        flops=logprob_flops + train_flops,
        logprob_flops=logprob_flops,
        train_flops=train_flops,
        mfu=mfu,
        mfu_source=mfu_source,
    )


# --------------------------------------------------------------------------- drafter


def drafter_train_cost(draft_arch, hw, layout: TrainLayout, tokens: float) -> float:
    """Seconds to train a draft head (EAGLE-3, from the verifier's hidden states) on ``tokens``
    tokens on the trainer's GPUs: ``6 * N_draft * tokens / (num_gpus * peak_bf16 * mfu)`` with
    ``N_draft = matmul_params(draft_arch)`` and the dense-class MFU (the head is dense).

    Assumptions: the verifier's hidden states come from the policy's own passes (no extra target
    forward); one draft forward per token (EAGLE-3's multi-step training-time test would scale
    this, use ``drafter_train_tokens_frac`` or the token count to account for it); attention over
    the head's single layer and the optimizer of its small parameter set are neglected.
    """
    if tokens < 0 or not math.isfinite(tokens):
        raise ValueError("tokens must be finite and >= 0")
    mfu, _ = resolve_mfu(draft_arch, hw, layout.cfg.mfu)
    return 6.0 * matmul_params(draft_arch) * tokens / (layout.num_gpus * hw.peak_flops("bf16") * mfu)


# --------------------------------------------------------------------------- weight sync


@dataclass(frozen=True)
class WeightSyncCost:
    """One policy weight sync: ``total_s = transfer_s + overhead_s``.

    ``overhead_s`` = ``latency_s`` (+ ``sleep_wake_s`` when colocated); ``link`` is "nvlink" or
    "nic"; ``bytes_total`` = bytes received by all rollout GPUs together.
    """

    total_s: float
    transfer_s: float
    overhead_s: float
    bytes_per_rollout_gpu: float
    bytes_total: float
    mode: str
    link: str
    link_bw_bytes_per_s: float

    def breakdown(self) -> dict[str, float]:
        return {"transfer_s": self.transfer_s, "overhead_s": self.overhead_s}


def resolve_sync_mode(cfg: WeightSyncConfig, pools_colocated: bool, source: str | None, path: str = "rl.weight_sync.mode") -> str:
    """``colocated`` / ``disaggregated`` from ``cfg.mode`` and the pipeline; an explicit mode that
    contradicts it is a ConfigError."""
    actual = "colocated" if pools_colocated else "disaggregated"
    if cfg.mode != "auto" and cfg.mode != actual:
        why = "the trainer shares the rollout GPUs" if pools_colocated else "the trainer has its own GPUs"
        raise ConfigError.at(source, path, cfg.mode, f"contradicts the pipeline: {why} ({actual})")
    return actual


def weight_sync_cost(
    arch,
    hw,
    *,
    mode: Literal["colocated", "disaggregated"],
    rollout_tp: int,
    rollout_engines: int,
    rollout_weight_dtype: str,
    training_gpus: int,
    cfg: WeightSyncConfig,
    same_nvlink_domain: bool,
    extra_bytes: float = 0.0,
) -> WeightSyncCost:
    """Time to deliver new weights to every rollout GPU after a train step.

    Each rollout GPU needs its shard, ``S = weight_bytes_per_gpu(arch, rollout_tp, dtype) +
    extra_bytes`` (``extra_bytes``: further bytes per rollout GPU, e.g. an online-trained
    drafter's weights).

    * ``colocated`` (NeMo-RL default): the trainer and vLLM share each GPU; the new weights are
      resharded into vLLM's layout through CUDA IPC over NVLink:
      ``transfer = S / (nvlink_bw * transfer_efficiency)``;
      ``overhead = latency_s + sleep_wake_s`` (vLLM wakes up: re-allocates its KV cache, reloads).
    * ``disaggregated``: an NCCL broadcast from the training pool to every engine, pipelined
      (chunked), all engines receiving in parallel, over the scale-out NIC -- or NVLink when
      ``same_nvlink_domain`` (e.g. both pools inside one GB200 NVL72 rack).  Each receiver needs
      ``S / bw`` and the senders must push one full rollout copy (``S * rollout_tp``) out of
      ``training_gpus`` links, ``S * rollout_tp / (training_gpus * bw)``; with identical GPUs on
      both sides the link is min(sender, receiver) = ``bw``:
      ``transfer = max(S, S * rollout_tp / training_gpus) / (bw * transfer_efficiency)``,
      ``overhead = latency_s``.  The number of engines does not change the time (pipelined
      broadcast); per-hop latencies (microseconds) are inside ``latency_s``.
    """
    if mode not in ("colocated", "disaggregated"):
        raise ValueError(f"mode = {mode!r}; expected 'colocated' or 'disaggregated'")
    if rollout_tp < 1 or rollout_engines < 1 or training_gpus < 1 or extra_bytes < 0:
        raise ValueError("rollout_tp, rollout_engines, training_gpus must be >= 1 and extra_bytes >= 0")
    shard = float(weight_bytes_per_gpu(arch, rollout_tp, rollout_weight_dtype)) + float(extra_bytes)
    eff = cfg.transfer_efficiency
    if mode == "colocated":
        link, bw = "nvlink", hw.nvlink_bw_bytes_per_s
        transfer = shard / (bw * eff)
        overhead = cfg.latency_s + cfg.sleep_wake_s
    else:
        link = "nvlink" if same_nvlink_domain else "nic"
        bw = hw.nvlink_bw_bytes_per_s if same_nvlink_domain else hw.nic_bw_bytes_per_s
        transfer = max(shard, shard * rollout_tp / training_gpus) / (bw * eff)
        overhead = cfg.latency_s
    return WeightSyncCost(
        total_s=transfer + overhead,
        transfer_s=transfer,
        overhead_s=overhead,
        bytes_per_rollout_gpu=shard,
        bytes_total=shard * rollout_tp * rollout_engines,
        mode=mode,
        link=link,
        link_bw_bytes_per_s=bw,
    )
