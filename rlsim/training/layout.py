"""The trainer's parallel layout (TP, PP, EP, CP, DP), validated against the model and the GPUs.

Model (Megatron-Core semantics, the NeMo-RL ``megatron_cfg`` backend)
--------------------------------------------------------------------
* ``dp = num_gpus / (tp * pp * cp)``; rank order tp (fastest) - cp - dp - pp, so a data-parallel
  group (dp x cp GPUs, over which gradients are reduced) has stride ``tp``.
* Experts use *MoE parallel folding*: expert layers decompose the same GPUs as
  ``etp * ep * edp * pp`` (``etp`` = ``expert_tensor_parallel_size``, default ``tp``), so
  ``ep * etp`` must divide ``tp * cp * dp = num_gpus / pp`` (which implies ``ep <= tp*cp*dp``:
  expert parallelism lives inside the tensor x context x data-parallel group).  The
  expert-data-parallel group (``edp = num_gpus / (etp * ep * pp)``) has stride ``etp * ep``.
* TP splits attention heads *and* query groups (Megatron asserts both divide), PP splits the
  decoder layers evenly (uneven splits are not modelled), EP splits the routed experts.

Per-GPU parameters (the most loaded pipeline stage)::

    dense  = (decoder non-expert params / pp + head) / tp     head = embedding + lm_head (pp = 1),
                                                                    max(embedding, V*H) (pp > 1:
                                                                    first / last stage)
    expert = routed-expert params / (etp * ep * pp)

Per-GPU memory, bytes (mixed-precision Adam with Megatron's distributed optimizer)::

    weights    = 2 * (dense + expert)                     bf16
    grads      = 2 * (dense + expert)                     bf16 gradient buffers
    optimizer  = 12 * (dense / (dp * cp) + expert / edp)  fp32 master + Adam m, v (ZeRO's K = 12,
                                                          Rajbhandari et al. 2019), sharded over DP
    activations (only when ``max_sequence_tokens`` is given; ``T = train_micro_batch_size *
    max_sequence_tokens`` tokens per micro-batch -- a packed bin or a padded micro-batch -- of
    which ``T / cp`` on each GPU):
        no checkpointing: L layers x T/cp x a_layer      (1F1B: the first stage holds pp
                                                          micro-batches of L/pp layers each)
        checkpointing:    L x T/cp x 2H / tp' + one layer's a_layer x T/cp
        + logits T/cp x V/tp x 4                         (fp32 logits for the loss; assumed)
      a_layer (bytes per token per layer, bf16 values, flash attention: no s^2 scores; after
      Korthikanti et al. 2022, arXiv:2205.05198, generalised to GQA / SwiGLU / MoE):
        2 * [4H (norm inputs and outputs) + q + k + v + attention output
             + 3 * I_eff (gate, up, activation) + topk * H (MoE: permuted tokens)]
      divided by tp with sequence parallelism; without it the 4H norm part stays whole.
      I_eff = intermediate_size (dense layer) or (topk + shared) * moe_intermediate_size.
    fits when weights + grads + optimizer + activations <= HBM x TRAIN_HBM_USABLE_FRAC.

Colocated runs put vLLM to sleep (weights offloaded, KV cache freed) during training, so the
trainer sees the whole HBM.  The reference policy is assumed offloaded (not resident).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlsim.errors import ConfigError, InfeasibleConfig
from rlsim.training.config import TrainingConfig
from rlsim.training.efficiency import resolve_mfu
from rlsim.units import GIB

__all__ = [
    "TrainLayout",
    "validate_layout",
    "param_split",
    "activation_bytes_per_token_per_layer",
    "TRAIN_HBM_USABLE_FRAC",
    "OPTIMIZER_STATE_BYTES_PER_PARAM",
    "LOGIT_BYTES",
]

#: Fraction of HBM the trainer may fill (CUDA context, NCCL buffers, allocator fragmentation; assumed).
TRAIN_HBM_USABLE_FRAC = 0.9
#: Stored optimizer state per parameter: fp32 master weight + Adam m + v (ZeRO paper's K = 12).
OPTIMIZER_STATE_BYTES_PER_PARAM = 12.0
#: Bytes per logit held for the loss (fp32; assumed).
LOGIT_BYTES = 4.0
_BF16 = 2.0


@dataclass(frozen=True)
class TrainLayout:
    """A validated trainer layout and its per-GPU memory (bytes).

    ``dense_params_per_gpu`` / ``expert_params_per_gpu``: parameters resident on one GPU of the
    most loaded pipeline stage (see the module docstring).  ``dp_group_stride`` /
    ``expert_dp_group_stride``: rank distance between members of the (expert-)data-parallel
    group, which decides whether gradient collectives stay in one NVLink domain.
    """

    num_gpus: int
    tp: int
    pp: int
    ep: int
    etp: int
    cp: int
    dp: int
    edp: int
    cfg: TrainingConfig
    mfu: float
    mfu_source: str
    dense_params_per_gpu: float
    expert_params_per_gpu: float
    weight_bytes_per_gpu: float
    grad_bytes_per_gpu: float
    optimizer_bytes_per_gpu: float
    activation_bytes_per_gpu: float
    activations_counted: bool
    usable_hbm_bytes: float

    @property
    def model_parallel_gpus(self) -> int:
        """GPUs of one model replica: ``tp * pp * cp``."""
        return self.tp * self.pp * self.cp

    @property
    def params_per_gpu(self) -> float:
        return self.dense_params_per_gpu + self.expert_params_per_gpu

    @property
    def optimizer_params_per_gpu(self) -> float:
        """Parameters whose optimizer update one GPU performs (distributed optimizer shard):
        ``dense / (dp * cp) + expert / edp``."""
        return self.dense_params_per_gpu / (self.dp * self.cp) + self.expert_params_per_gpu / self.edp

    @property
    def dp_group_stride(self) -> int:
        return self.tp

    @property
    def expert_dp_group_stride(self) -> int:
        return self.etp * self.ep

    @property
    def total_bytes_per_gpu(self) -> float:
        return self.weight_bytes_per_gpu + self.grad_bytes_per_gpu + self.optimizer_bytes_per_gpu + self.activation_bytes_per_gpu

    def describe(self) -> str:
        """``tp=.. pp=.. cp=.. dp=.. ep=.. etp=..`` (for reports)."""
        s = f"tp={self.tp} pp={self.pp} cp={self.cp} dp={self.dp}"
        return s + (f" ep={self.ep} etp={self.etp}" if self.ep > 1 or self.etp != self.tp else "")


def param_split(arch) -> tuple[float, float, float]:
    """``(decoder non-expert params, head params, routed-expert params)`` of ``arch``.

    head = embedding + stored lm_head; decoder non-expert = everything else (attention, dense
    MLPs, shared experts, routers, norms).  The three sum to ``arch.total_params``.
    """
    expert = float(arch.num_moe_layers * arch.num_experts * arch.expert_params)
    head = float(arch.embedding_params + arch.lm_head_params)
    return float(arch.total_params) - expert - head, head, expert


def activation_bytes_per_token_per_layer(arch, tp: int, sequence_parallel: bool) -> float:
    """Mean activation bytes one token leaves per decoder layer for the backward pass on one
    GPU (see the module docstring; dense and MoE layers averaged by their counts)."""
    h = arch.hidden_size
    heads = arch.num_attention_heads
    if arch.attention_kind == "mla":
        v = arch.v_head_dim or arch.head_dim
        qkv, attn_out = heads * (2 * arch.head_dim + v), heads * v
    else:
        qkv = (heads + 2 * arch.num_key_value_heads) * arch.head_dim
        attn_out = heads * arch.head_dim
    split = 2.0 * (qkv + attn_out)
    norms = 2.0 * 4 * h
    dense_mlp = 2.0 * 3 * arch.intermediate_size
    moe_mlp = 0.0
    if arch.is_moe:
        i_eff = (arch.num_experts_per_tok + arch.num_shared_experts) * arch.moe_intermediate_size
        moe_mlp = 2.0 * (3 * i_eff + arch.num_experts_per_tok * h)
    layers = arch.num_hidden_layers
    mlp = (arch.num_dense_layers * dense_mlp + arch.num_moe_layers * moe_mlp) / layers
    if sequence_parallel:
        return (norms + split + mlp) / tp
    return norms + (split + mlp) / tp


def _fail(source, path, value, rule) -> ConfigError:
    return ConfigError.at(source, path, value, rule)


def _check_schedule(arch, cfg: TrainingConfig, source, path: str) -> None:
    """Interleaved 1F1B (Megatron): pp > 1 and ``virtual_pipeline_size`` chunks of equal layers."""
    v, pp = cfg.virtual_pipeline_size, cfg.pipeline_parallel_size
    if cfg.pipeline_schedule == "interleaved":
        if pp < 2:
            raise _fail(source, f"{path}.pipeline_schedule", "interleaved", "needs pipeline_parallel_size >= 2")
        if v is None:
            raise _fail(source, f"{path}.virtual_pipeline_size", None, "must be set (>= 2) for pipeline_schedule: interleaved")
        if arch.num_hidden_layers % (pp * v):
            raise _fail(source, f"{path}.virtual_pipeline_size", v,
                        f"x pipeline_parallel_size = {pp} does not divide num_hidden_layers = {arch.num_hidden_layers}")
    elif v is not None:
        raise _fail(source, f"{path}.virtual_pipeline_size", v, "is only used with pipeline_schedule: interleaved")


def validate_layout(
    arch,
    cfg: TrainingConfig,
    num_gpus: int,
    hw,
    source: str | None,
    path: str = "rl.training",
    *,
    num_gpus_path: str | None = None,
    max_sequence_tokens: int | None = None,
) -> TrainLayout:
    """Check ``cfg``'s layout against ``arch`` and ``num_gpus`` GPUs of ``hw``; size its memory.

    ``num_gpus`` is the training pool (``cfg.num_gpus``, or the rollout GPUs when colocated);
    ``num_gpus_path`` names where it came from in messages (default ``{path}.num_gpus``).
    ``max_sequence_tokens`` (prompt + response cap) sizes the activations; None leaves them out
    of the memory check (``activations_counted = False``).

    Raises :class:`ConfigError` (one line, ``{source}: {path} = {value!r} {rule}``) for a layout
    that does not divide the model or the GPUs, and :class:`InfeasibleConfig` when the per-GPU
    memory does not fit.  Checks, in order: TP | attention heads, TP | KV heads (GQA),
    PP | layers, tp*pp*cp | num_gpus, EP only on an MoE model, EP | experts, ep*etp | tp*cp*dp,
    logprob MFU <= 1, DP | train_global_batch_size (x micro-batch without packing), memory.
    """
    gpus_path = num_gpus_path or f"{path}.num_gpus"
    if num_gpus < 1:
        raise _fail(source, gpus_path, num_gpus, "must be >= 1")
    tp, pp, cp = cfg.tensor_parallel_size, cfg.pipeline_parallel_size, cfg.context_parallel_size
    ep = cfg.expert_parallel_size
    etp = cfg.expert_tensor_parallel_size or tp

    if arch.num_attention_heads % tp:
        raise _fail(source, f"{path}.tensor_parallel_size", tp, f"does not divide num_attention_heads = {arch.num_attention_heads}")
    if arch.attention_kind != "mla" and arch.num_key_value_heads % tp:
        raise _fail(
            source, f"{path}.tensor_parallel_size", tp,
            f"does not divide num_key_value_heads = {arch.num_key_value_heads} (Megatron splits query groups over TP)",
        )
    if arch.num_hidden_layers % pp:
        raise _fail(source, f"{path}.pipeline_parallel_size", pp, f"does not divide num_hidden_layers = {arch.num_hidden_layers}")
    mp = tp * pp * cp
    if num_gpus % mp:
        raise _fail(
            source, f"{path}.tensor_parallel_size * pipeline_parallel_size * context_parallel_size", mp,
            f"does not divide {gpus_path} = {num_gpus}",
        )
    dp = num_gpus // mp

    if not arch.is_moe:
        if ep > 1:
            raise _fail(source, f"{path}.expert_parallel_size", ep, f"needs an MoE model ({arch.name} has no experts)")
        etp = tp  # no expert layers: expert_tensor_parallel_size is irrelevant
        edp = dp * cp
    else:
        if arch.num_experts % ep:
            raise _fail(source, f"{path}.expert_parallel_size", ep, f"does not divide num_experts = {arch.num_experts}")
        folded = tp * cp * dp
        if folded % (ep * etp):
            raise _fail(
                source, f"{path}.expert_parallel_size", ep,
                f"x expert_tensor_parallel_size = {etp} does not divide tp*cp*dp = {folded} "
                f"({gpus_path} / pipeline_parallel_size; Megatron folds experts into those ranks)",
            )
        edp = num_gpus // (etp * ep * pp)

    mfu, mfu_source = resolve_mfu(arch, hw, cfg.mfu)
    if mfu * cfg.logprob_mfu_factor > 1.0:
        raise _fail(
            source, f"{path}.logprob_mfu_factor", cfg.logprob_mfu_factor,
            f"makes the logprob MFU {mfu * cfg.logprob_mfu_factor:.3g} > 1 (training MFU {mfu:g} from {mfu_source})",
        )

    _check_schedule(arch, cfg, source, path)
    gbs, mbs = cfg.train_global_batch_size, cfg.train_micro_batch_size
    if gbs is not None:
        unit = dp if cfg.sequence_packing else dp * mbs
        if gbs % unit:
            what = "the data-parallel size" if cfg.sequence_packing else "train_micro_batch_size x the data-parallel size"
            raise _fail(source, f"{path}.train_global_batch_size", gbs, f"is not a multiple of {what} = {unit}")

    # ---- memory
    layers_p, head_p, expert_p = param_split(arch)
    head_stage = head_p if pp == 1 else max(float(arch.embedding_params), float(arch.vocab_size * arch.hidden_size))
    dense = (layers_p / pp + head_stage) / tp
    expert = expert_p / (etp * ep * pp)
    weights = _BF16 * (dense + expert)
    grads = _BF16 * (dense + expert)
    optim = OPTIMIZER_STATE_BYTES_PER_PARAM * (dense / (dp * cp) + expert / edp)
    act = 0.0
    if max_sequence_tokens is not None:
        t = mbs * max_sequence_tokens / cp
        a = activation_bytes_per_token_per_layer(arch, tp, cfg.sequence_parallel)
        if cfg.activation_checkpointing:
            stored = _BF16 * arch.hidden_size / (tp if cfg.sequence_parallel else 1)
            act = arch.num_hidden_layers * t * stored + t * a
        else:
            act = arch.num_hidden_layers * t * a
        act += t * arch.vocab_size / tp * LOGIT_BYTES
    usable = hw.hbm_bytes * TRAIN_HBM_USABLE_FRAC
    layout = TrainLayout(
        num_gpus=num_gpus, tp=tp, pp=pp, ep=ep, etp=etp, cp=cp, dp=dp, edp=edp, cfg=cfg,
        mfu=mfu, mfu_source=mfu_source, dense_params_per_gpu=dense, expert_params_per_gpu=expert,
        weight_bytes_per_gpu=weights, grad_bytes_per_gpu=grads, optimizer_bytes_per_gpu=optim,
        activation_bytes_per_gpu=act, activations_counted=max_sequence_tokens is not None,
        usable_hbm_bytes=usable,
    )
    need = layout.total_bytes_per_gpu
    if need > usable:
        g = GIB
        hint = "raise tensor/pipeline/expert parallelism or the GPU count"
        if act > 0 and not cfg.activation_checkpointing:
            hint += ", or enable activation_checkpointing"
        raise InfeasibleConfig.at(
            source, f"{path}.tensor_parallel_size", tp,
            f"with pipeline_parallel_size = {pp}, context_parallel_size = {cp}, expert_parallel_size = {ep} "
            f"needs {need / g:.1f} GiB per GPU (weights {weights / g:.1f} + grads {grads / g:.1f} + "
            f"optimizer {optim / g:.1f} + activations {act / g:.1f}) > {usable / g:.1f} GiB usable of "
            f"{hw.hbm_bytes / g:.1f} GiB HBM on {hw.name}; {hint}",
        )
    return layout
