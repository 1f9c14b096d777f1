"""One forward pass of a model over a batch, on one GPU of a TP (or TP = EP) group.

The pass is composed from op times (rlsim.hardware.ops), per DESIGN 4:

* per layer: every linear weight of the layer as a GEMM over the pass's new tokens (column-
  parallel weights split their outputs over TP, row-parallel their inputs; replicated weights
  are whole) at its group's storage dtype (``quantization``: the checkpoint's scheme, e.g.
  gpt-oss's MXFP4 experts with bf16 attention, or a uniform override; the kernel and its
  fallback per GPU: :mod:`rlsim.hardware.kernels`), attention (decode: KV read over every
  sequence's context, at least a fixed cost per (sequence, KV head) CTA; prefill: causal FLOPs
  plus per-tile and per-token work over each chunk, or the longest chunk's critical path; an
  fp8 KV cache uses its own fitted parameters), two TP all-reduces of the hidden states, and
  memory-bound elementwise
  work (norms, RoPE, activation, residual adds: ``ELEMENTWISE_PASSES`` reads+writes of the
  hidden state per layer, assumed);
* MoE layers: a router GEMM and a fused-MoE op whose weight traffic scales with the *distinct
  experts touched* by the pass's tokens, E(1 - (1 - k/E)^T) for a real router (tokens pick
  experts independently; ``moe_skew`` concentrates them), and whose FLOPs count each touched
  expert's rows padded to the kernel's block;
* once per pass: embedding gather, LM head on the positions that need logits, a vocab-parallel
  gather of the logits and sampling (``SAMPLER_PASSES`` fp32 passes over the logits, assumed).

Sliding-window layers (``arch.num_sliding_layers``, window ``W``) attend to at most ``W`` keys:
decode reads ``sum(min(context, W))`` tokens of KV (``PassShape.decode_window_ctx_tokens``, or
``min(total context, W x sequences)`` -- exact when every context is >= W), verify pairs scale
by the same fraction, and prefill computes at most ``W`` keys per query (``min(pairs, tokens x
W)``, :func:`rlsim.hardware.ops.window_pairs`) with the critical path bounded by ``W`` + one tile.
Attention sinks (gpt-oss: one logit per head in the softmax denominator) are not timed (one
term per query row).  MLA layers (DeepSeek-V3, Kimi-K2.5) read the latent cache (one KV head).

Under CUDA graphs (``cuda_graphs=True``) a decode-only pass is padded up to the next captured
batch size (vLLM's capture sizes 1, 2, 4, 8, 16, 24, ... up to ``max_capture_size``) and pays no
per-kernel launch cost; mixed prefill/decode passes run piecewise (attention outside the graph,
``EAGER_KERNELS_PIECEWISE`` launches per layer, shapes unpadded).  A pass with more tokens than
the largest captured size, or any pass with ``cuda_graphs=False`` (``--enforce-eager``), has no
graph (vLLM replays a graph only for a captured size, gpu_model_runner): its collectives take
their eager latency and its ops are dispatched one by one from Python, ``eager_dispatch_s`` =
(per decoder layer, extra per MoE layer) of host time (the profile's ``engine.eager_layer_us`` /
``eager_moe_layer_us``).  The GPU cannot run ahead of the dispatch, so such a pass takes
``max(GPU time, dispatch)``: a short prefill (1,024 tokens of a MoE model on B200) is host-bound,
a long one (8,192 tokens) GPU-bound and hides it; the ``launch`` component is the exposed part.

All functions here are pure; a ForwardModel caches the parts that depend only on token counts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rlsim.cost.memory import kv_heads_per_gpu, kv_values_per_token_per_layer_per_gpu, local_shape
from rlsim.cost.routing import slowest_rank_rows
from rlsim import units
from rlsim.hardware import ops
from rlsim.hardware.kernels import KernelChoice, gemm_kernel, moe_kernel, mxfp4_moe_dtype
from rlsim.units import dtype_bytes

__all__ = ["PassShape", "ForwardModel", "COMPONENTS", "cudagraph_capture_sizes", "shared_forward_model"]

#: Reads + writes of the hidden state per layer by unfused elementwise work (assumed).
ELEMENTWISE_PASSES = 8
#: fp32 passes over the logits by the sampler (softmax, temperature, top-p/k, draw; assumed).
SAMPLER_PASSES = 4
#: Kernels per layer launched outside the graph under piecewise CUDA graphs (attention; assumed).
EAGER_KERNELS_PIECEWISE = 2

#: The names of the time components a pass is broken into.
COMPONENTS = ("linear", "attention", "moe", "communication", "elementwise", "lm_head_sampling", "launch")


@dataclass(frozen=True)
class PassShape:
    """What one forward pass computes.

    ``decode_ctx_tokens``: sum over decoding sequences of their context after the pass (the keys
    read: cached tokens plus the pass's new ones).  ``decode_pairs``: query-key pairs of those
    sequences (None = ``decode_ctx_tokens``, one query per sequence); a speculative verify pass
    has q = 1 + k queries per sequence, ``q*C - q(q-1)/2`` pairs for a context C.  ``prefill_pairs``: sum over prefill chunks of
    query-key pairs, q*(c + (q+1)/2) for a chunk of q new tokens after c cached ones (causal).
    ``prefill_kv_tokens``: sum over chunks of c + q (keys read).  ``prefill_tiles`` /
    ``prefill_max_keys``: attention query tiles and the longest chunk's keys (see
    :func:`rlsim.hardware.ops.prefill_attention_time_s`).
    """

    num_tokens: int
    num_logits: int
    decode_seqs: int
    decode_ctx_tokens: float
    prefill_seqs: int = 0
    prefill_pairs: float = 0.0
    prefill_kv_tokens: float = 0.0
    decode_pairs: float | None = None
    prefill_tokens: float = 0.0  # query tokens of the prefill chunks
    prefill_tiles: float = 0.0  # sum over chunks of ceil(q / 128): attention query tiles (0: from the mean chunk)
    prefill_max_keys: float = 0.0  # keys of the chunk attending to the most (0: the mean)
    decode_window_ctx_tokens: float | None = None  # sum of min(context, sliding_window) (None: estimated)


def cudagraph_capture_sizes(max_size: int) -> np.ndarray:
    """vLLM's default CUDA-graph capture sizes: 1, 2, 4, then multiples of 8 up to ``max_size``."""
    sizes = [s for s in (1, 2, 4) if s <= max_size] + list(range(8, max_size + 1, 8))
    return np.array(sizes, dtype=np.int64)


class ForwardModel:
    """Forward-pass time of ``arch`` on ``hw`` at tensor-parallel size ``tp``.

    ``expert_parallel``: experts are split across the ``tp x dp`` GPUs (each owns E/(tp dp) whole
    experts; vLLM's ``--enable-expert-parallel``) instead of each expert being split tp ways; the
    busiest GPU's share of the routed rows sets the MoE time (:mod:`rlsim.cost.routing`).
    ``moe_routing_s``: GPU time per MoE layer the fused-MoE kernel tables leave out (the router's
    top-k / grouped top-k and the block-alignment sort; fitted end to end, the profile's
    ``engine.moe_routing_us_per_layer``).
    ``dp``: data-parallel attention ranks sharing the MoE layers in lock-step (one pass covers
    ``dp`` ranks' tokens, each rank padded to the same count; token costs are per rank): every MoE
    layer all-gathers the ranks' hidden states and reduce-scatters the expert outputs over the
    ``dp`` ranks (vLLM's default ``VLLM_ALL2ALL_BACKEND=allgather_reducescatter``, assumed).  ``weight_dtype``: None or the model's
    own ``weight_dtype`` = the checkpoint's quantisation scheme; another dtype = every linear
    layer at it (:meth:`~rlsim.models.ModelArch.quantization_for`); ``quantization`` overrides
    both.  :attr:`warnings` lists the kernels timed by a fallback on this GPU (a run shows them),
    :attr:`notes` what the architecture has that is not timed.
    """

    def __init__(
        self,
        arch,
        hw,
        tp: int = 1,
        weight_dtype: str | None = None,
        kv_dtype: str = "bf16",
        cuda_graphs: bool = True,
        max_capture_size: int = 512,
        expert_parallel: bool = False,
        moe_skew: float = 0.0,
        weights: list | None = None,
        num_layers: int | None = None,
        num_moe_layers: int | None = None,
        quantization=None,
        dp: int = 1,
        moe_routing_s: float = 0.0,
        eager_dispatch_s: tuple[float, float] | None = None,
        mxfp4_moe_activation: str = "auto",
    ) -> None:
        """``weights`` / ``num_layers`` / ``num_moe_layers`` override the model's own (used to
        time a sub-network such as DeepSeek's MTP module from ``arch.mtp_linear_weights()``;
        such a sub-network has no sliding-window layers).  ``eager_dispatch_s``: host time per
        layer and extra per MoE layer of a pass without a CUDA graph (None: the profile's
        ``engine`` values).  ``mxfp4_moe_activation``: the activations MXFP4 experts run with
        (:func:`rlsim.hardware.kernels.mxfp4_moe_dtype`)."""
        self.arch = arch
        self.hw = hw
        self.tp = tp
        self.quant = quantization if quantization is not None else arch.quantization_for(weight_dtype)
        self.weight_dtype = self.quant.dtype
        self.kv_dtype = kv_dtype
        self.cuda_graphs = cuda_graphs
        self.expert_parallel = expert_parallel
        self.moe_skew = moe_skew
        self.dp = dp
        self._ep = tp * dp if expert_parallel else 1  # GPUs the experts are spread over (vLLM: EP = DP x TP)
        self.moe_routing_s = moe_routing_s
        self._capture = cudagraph_capture_sizes(max_capture_size) if cuda_graphs else np.array([], dtype=np.int64)
        self._layers = arch.num_hidden_layers if num_layers is None else num_layers
        self._sliding = arch.num_sliding_layers if num_layers is None else 0
        self._full = self._layers - self._sliding
        self._window = float(arch.sliding_window or 0)
        self._moe_layers = arch.num_moe_layers if num_moe_layers is None else num_moe_layers
        if eager_dispatch_s is None:
            eager_dispatch_s = (hw.engine.eager_layer_us * 1e-6, hw.engine.eager_moe_layer_us * 1e-6)
        self.eager_dispatch_s = eager_dispatch_s
        #: host time to dispatch one pass without a CUDA graph (the floor of such a pass)
        self._dispatch_s = self._layers * eager_dispatch_s[0] + self._moe_layers * eager_dispatch_s[1]
        self._heads = arch.num_attention_heads // tp
        self._kv_heads = 1 if arch.attention_kind == "mla" else kv_heads_per_gpu(arch, tp)  # MLA: one latent KV head
        # head dim of the decode CTA cost: MLA's latent kernels are not measured, keep them at the reference 128
        self._cta_head_dim = 128 if arch.attention_kind == "mla" else arch.head_dim
        self._kv_values = kv_values_per_token_per_layer_per_gpu(arch, tp)
        self._kv_bytes_per_tok_layer = self._kv_values * dtype_bytes(kv_dtype)
        self._decode_flops_per_pair, self._prefill_flops_per_pair = self._attention_flops_per_pair()
        all_weights = arch.linear_weights() if weights is None else weights
        self._weights = [w for w in all_weights if w.group not in ("expert", "head")]
        self._head = [w for w in all_weights if w.group == "head"]
        self._experts = [w for w in all_weights if w.group == "expert"]
        shapes = [(self.quant.dtype_of(w.group), *local_shape(arch, w, tp)) for w in self._weights]
        self._weight_layers = [w.layers for w in self._weights]
        self._weight_groups = {d: (np.array([i for i, s in enumerate(shapes) if s[0] == d]),
                                   np.array([s[1] for s in shapes if s[0] == d], dtype=float),
                                   np.array([s[2] for s in shapes if s[0] == d], dtype=float))
                               for d in dict.fromkeys(s[0] for s in shapes)}
        self._token_cost = lru_cache(maxsize=4096)(self._token_components)
        self._body_cost = lru_cache(maxsize=16384)(self._body_components)
        self._head_cost = lru_cache(maxsize=16384)(self._head_time_s)
        self._gemm_kernels = {d: gemm_kernel(hw, d) for d in {self.quant.dtype_of(w.group) for w in self._weights + self._head}}
        self._moe_kernel = (moe_kernel(hw, mxfp4_moe_dtype(hw, self.quant.expert, mxfp4_moe_activation))
                            if self._experts and self._moe_layers else None)
        self.warnings: tuple[str, ...] = self._kernel_warnings()
        self.notes: tuple[str, ...] = tuple(arch.notes)

    @property
    def moe_kernel(self) -> KernelChoice | None:
        """The :class:`~rlsim.hardware.kernels.KernelChoice` timing the routed experts (None: no MoE)."""
        return self._moe_kernel

    def _kernel_warnings(self) -> tuple[str, ...]:
        """Fallbacks of the kernels this pass runs (see :mod:`rlsim.hardware.kernels`), the
        quantisation's notes, and an fp8 KV cache without fitted fp8 attention parameters."""
        order = dict.fromkeys(self.quant.dtype_of(w.group) for w in self._weights + self._head)
        out = [self._gemm_kernels[d].fallback for d in order]
        if self._moe_kernel is not None:
            out.append(self._moe_kernel.fallback)
        eff = self.hw.efficiency
        if self.kv_dtype == "fp8" and (eff.decode_attention_fp8 is None or eff.prefill_attention_fp8 is None):
            out.append(f"attention with an fp8 KV cache on {self.hw.name}: no fitted fp8-KV attention parameters; "
                       "timed with the bf16-KV kernel's parameters at 1 byte per KV value")
        return tuple(w for w in out if w) + tuple(self.quant.notes)

    # ---------------------------------------------------------------- attention
    def _attention_flops_per_pair(self) -> tuple[float, float]:
        """FLOPs per (query, key) pair per layer on one GPU, decode and prefill."""
        a = self.arch
        if a.attention_kind == "mla":
            latent = a.kv_lora_rank + a.qk_rope_head_dim
            decode = 2.0 * self._heads * (latent + a.kv_lora_rank)  # absorbed: scores over latent+rope, output in latent
            prefill = 2.0 * self._heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim)
            return decode, prefill
        per = 4.0 * self._heads * a.head_dim  # QK^T and PV, 2 FLOPs per MAC each
        return per, per

    def attention_time_s(self, decode_seqs: int, decode_ctx_tokens, prefill_pairs: float = 0.0,
                         prefill_kv_tokens: float = 0.0, decode_pairs=None, prefill_seqs: int = 0,
                         prefill_tokens: float = 0.0, prefill_tiles: float = 0.0, prefill_max_keys: float = 0.0,
                         decode_window_ctx_tokens=None):
        """All layers' attention; ``decode_ctx_tokens`` / ``decode_pairs`` may be arrays.  Prefill
        chunks: ``prefill_seqs`` of them, ``prefill_tokens`` query tokens in all, ``prefill_pairs``
        causal query-key pairs, ``prefill_kv_tokens`` keys read (cached + new), ``prefill_tiles``
        128-row query tiles (sum of ceil(q / 128)), ``prefill_max_keys`` keys of the chunk that
        attends to the most (0 for either: estimated from the mean chunk).  Sliding-window layers:
        see the module docstring (``decode_window_ctx_tokens``: sum of min(context, window))."""
        t = 0.0
        if decode_seqs > 0 and not self._sliding and type(decode_ctx_tokens) is float and \
                (decode_pairs is None or type(decode_pairs) is float):  # one pass (the slow path's mixed ones)
            t = self._decode_attention_scalar_s(decode_seqs, decode_ctx_tokens, decode_pairs)
        elif decode_seqs > 0:
            ctx = np.asarray(decode_ctx_tokens, dtype=np.float64)
            pairs = ctx if decode_pairs is None else np.asarray(decode_pairs, dtype=np.float64)
            t = t + self._full * self._decode_layer_s(decode_seqs, ctx, pairs)
            if self._sliding:
                ctx_w = (np.minimum(ctx, decode_seqs * self._window) if decode_window_ctx_tokens is None
                         else np.asarray(decode_window_ctx_tokens, dtype=np.float64))
                scale = np.divide(ctx_w, ctx, out=np.ones_like(ctx_w), where=ctx > 0)
                t = t + self._sliding * self._decode_layer_s(decode_seqs, ctx_w, pairs * scale)
        if prefill_pairs > 0 and prefill_seqs > 0:
            tokens = max(prefill_tokens, prefill_seqs)
            tiles = prefill_tiles or prefill_seqs * np.ceil(tokens / prefill_seqs / ops.ATTN_TILE_M)
            keys = prefill_max_keys or prefill_kv_tokens / prefill_seqs
            t = t + self._full * self._prefill_layer_s(tokens, prefill_pairs, tiles, keys)
            if self._sliding:
                pairs_w = ops.window_pairs(prefill_pairs, tokens, self._window)
                t = t + self._sliding * self._prefill_layer_s(tokens, pairs_w, tiles,
                                                              min(keys, self._window + ops.ATTN_TILE_M))
        return t

    def _decode_attention_scalar_s(self, seqs: int, ctx_tokens: float, pairs: float | None) -> float:
        """:meth:`attention_time_s` of a decode-only pass on a model without sliding-window layers,
        in Python floats: the same operations in the same order as
        :func:`rlsim.hardware.ops.decode_attention_time_s` on 0-d arrays (IEEE doubles either way,
        so the same bits), without numpy's per-call overhead (the slow path prices one pass per
        iteration)."""
        mem_div, comp_div, latency_s = self._decode_attention_consts()
        ctx = float(ctx_tokens)
        memory = ctx * self._kv_bytes_per_tok_layer / mem_div
        compute = (ctx if pairs is None else float(pairs)) * self._decode_flops_per_pair / comp_div
        return 0.0 + self._full * (max(max(memory, compute), self._decode_cta_s(seqs)) + latency_s)

    @functools.lru_cache(maxsize=1)
    def _decode_attention_consts(self) -> tuple[float, float, float]:
        """Divisors of the memory and compute terms and the latency of decode attention."""
        eff = self.hw.efficiency
        da = eff.decode_attention_for(self.kv_dtype)
        return (self.hw.hbm_bandwidth_bytes_per_s * da.mem_eff,
                self.hw.peak_flops("bf16") * eff.prefill_attention_for(self.kv_dtype).compute_eff,
                float(units.us(da.latency_us)))

    @functools.lru_cache(maxsize=8192)
    def _decode_cta_s(self, seqs: int) -> float:
        """The CTA floor term of decode attention at ``seqs`` sequences (as the op computes it)."""
        da = self.hw.efficiency.decode_attention_for(self.kv_dtype)
        f = np.asarray
        return float(units.us(da.cta_us) * da.cta_scale(f(self._cta_head_dim, dtype=float)) * f(seqs, dtype=float)
                     * f(self._kv_heads, dtype=float) / self.hw.gpu.sm_count)

    def _decode_layer_s(self, seqs: int, ctx, pairs):
        """One layer's decode attention over ``ctx`` keys (total) and ``pairs`` query-key pairs."""
        return ops.decode_attention_time_s(self.hw, ctx * self._kv_bytes_per_tok_layer, seqs,
                                           pairs * self._decode_flops_per_pair, self._kv_heads, self.kv_dtype,
                                           self._cta_head_dim)

    def _prefill_layer_s(self, tokens: float, pairs: float, tiles: float, keys: float):
        """One layer's prefill attention (see :func:`rlsim.hardware.ops.prefill_attention_time_s`)."""
        return ops.prefill_attention_time_s(self.hw, tokens, pairs * self._prefill_flops_per_pair, tiles, keys,
                                            self._heads, self._kv_heads, self._prefill_flops_per_pair / self._heads,
                                            self.kv_dtype)

    # ---------------------------------------------------------------- token-count parts
    def padded_tokens(self, num_tokens: int, decode_only: bool) -> int:
        """Tokens the GEMMs actually run on (CUDA-graph padding for decode-only passes)."""
        if decode_only and self.graphed(num_tokens):
            return int(self._capture[np.searchsorted(self._capture, num_tokens)])
        return num_tokens

    def graphed(self, num_tokens: int) -> bool:
        """Whether a pass over ``num_tokens`` tokens replays a CUDA graph (a captured size exists
        for it: full graphs for decode, piecewise for mixed passes)."""
        return bool(len(self._capture)) and num_tokens <= self._capture[-1]

    def _token_components(self, num_tokens: int, num_logits: int, graphed: bool) -> tuple[float, ...]:
        """Components that depend only on token counts: linear, moe, comm, elementwise, head
        (the first four cached per token count, the head per logit count: a mixed pass's two
        counts vary independently)."""
        return (*self._body_cost(num_tokens, graphed), self._head_cost(num_logits, graphed))

    def linear_gemm_times_s(self, num_tokens: int) -> np.ndarray:
        """One GEMM time per linear weight (in ``_weights`` order) at ``num_tokens`` rows: one
        vectorised :func:`~rlsim.hardware.ops.gemm_time_s` call per weight dtype (elementwise the
        same operations as one call per weight, so the same numbers)."""
        out = np.empty(len(self._weights))
        for d, (idx, n, k) in self._weight_groups.items():
            out[idx] = ops.gemm_time_s(self.hw, num_tokens, n, k, d, self._gemm_kernels[d])
        return out

    def _body_components(self, num_tokens: int, graphed: bool) -> tuple[float, float, float, float]:
        """linear, moe, comm, elementwise of a pass over ``num_tokens`` tokens."""
        hw, a, tp, T = self.hw, self.arch, self.tp, num_tokens
        linear = 0.0
        for layers, t in zip(self._weight_layers, self.linear_gemm_times_s(T).tolist()):
            linear += layers * t
        moe = self._moe_time_s(T) + self._moe_layers * self.moe_routing_s if (a.is_moe and self._moe_layers) else 0.0
        hidden_bytes = T * a.hidden_size * 2.0
        comm = 0.0
        if tp > 1:
            comm = 2 * self._layers * float(ops.collective_time_s(hw, "all_reduce", hidden_bytes, tp, cuda_graph=graphed))
        if a.is_moe and self._moe_layers and self.dp > 1:
            comm += self._moe_layers * self._dispatch_combine_s(hidden_bytes, graphed)
        elementwise = self._layers * float(ops.elementwise_time_s(hw, ELEMENTWISE_PASSES * hidden_bytes))
        elementwise += float(ops.elementwise_time_s(hw, hidden_bytes))  # embedding gather
        return linear, moe, comm, elementwise

    def _moe_time_s(self, T: int) -> float:
        """One pass's experts on the busiest GPU: ``T`` tokens per rank, ``T x dp`` routed in all."""
        a, tp = self.arch, self.tp
        gate_up = next(w for w in self._experts if w.name.endswith("gate_up"))
        gated = gate_up.out_features == 2 * a.moe_intermediate_size
        tokens = T * self.dp
        # expert parallel: each GPU owns E/ep whole experts; else every expert is split tp ways
        if self.expert_parallel:
            split = {"tp": 1, "ep": self._ep,
                     "rank_rows": slowest_rank_rows(tokens, a.num_experts, a.num_experts_per_tok, self._ep, self.moe_skew)}
        else:
            split = {"tp": tp, "ep": 1}
        t = ops.moe_layer_time_s(self.hw, tokens, a.num_experts, a.num_experts_per_tok, a.hidden_size,
                                 a.moe_intermediate_size, self.quant.expert, skew=self.moe_skew, gated=gated,
                                 kernel=self._moe_kernel, **split)
        return self._moe_layers * float(t)  # router GEMMs are among the layer's linear weights

    def _dispatch_combine_s(self, hidden_bytes: float, graphed: bool) -> float:
        """One MoE layer's all-gather of the ``dp`` ranks' hidden states and reduce-scatter of the
        expert outputs; a group spread over more GPUs than one NVLink domain holds crosses nodes
        (timed as a collective over all ``tp x dp`` GPUs of the group, conservatively)."""
        n = self.dp if self.tp * self.dp <= self.hw.topology.nvlink_domain_gpus else self.tp * self.dp
        gathered = hidden_bytes * self.dp
        return float(ops.collective_time_s(self.hw, "all_gather", gathered, n, cuda_graph=graphed)
                     + ops.collective_time_s(self.hw, "reduce_scatter", gathered, n, cuda_graph=graphed))

    def _head_time_s(self, num_logits: int, graphed: bool) -> float:
        if num_logits <= 0:
            return 0.0
        hw, tp = self.hw, self.tp
        t = 0.0
        vocab = 0
        for w in self._head:
            n, k = local_shape(self.arch, w, tp)
            vocab = w.out_features
            t += float(ops.gemm_time_s(hw, num_logits, n, k, self.quant.head, self._gemm_kernels[self.quant.head]))
        if tp > 1:
            t += float(ops.collective_time_s(hw, "all_gather", num_logits * vocab * 2.0, tp, cuda_graph=graphed))
        t += float(ops.elementwise_time_s(hw, SAMPLER_PASSES * num_logits * vocab * 4.0))
        return t

    # ---------------------------------------------------------------- public
    def components(self, shape: PassShape) -> dict[str, float]:
        """Time of one pass, broken into :data:`COMPONENTS` (seconds)."""
        decode_only = shape.prefill_seqs == 0
        T = self.padded_tokens(shape.num_tokens, decode_only)
        graphed = self.graphed(T)
        linear, moe, comm, elem, head = self._token_cost(T, shape.num_logits, graphed)
        if decode_only and shape.decode_seqs > 0 and not self._sliding:
            attn = self._decode_attention_scalar_s(shape.decode_seqs, shape.decode_ctx_tokens, shape.decode_pairs)
        else:
            attn = float(self.attention_time_s(shape.decode_seqs, shape.decode_ctx_tokens, shape.prefill_pairs,
                                               shape.prefill_kv_tokens, shape.decode_pairs, shape.prefill_seqs,
                                               shape.prefill_tokens, shape.prefill_tiles, shape.prefill_max_keys,
                                               shape.decode_window_ctx_tokens))
        gpu = linear + attn + moe + comm + elem + head
        return {"linear": linear, "attention": attn, "moe": moe, "communication": comm, "elementwise": elem,
                "lm_head_sampling": head, "launch": self.launch_s(gpu, decode_only, graphed)}

    def time_s(self, shape: PassShape) -> float:
        """Total time of one pass (seconds)."""
        return sum(self.components(shape).values())

    def decode_times_s(self, batch: int, ctx_tokens: np.ndarray, q: int = 1, padded_tokens: int | None = None) -> np.ndarray:
        """Vectorised decode-only pass time for ``batch`` sequences of ``q`` new tokens each
        (q = 1 + k for a speculative verify pass; logits at every new token) at each total
        context in ``ctx_tokens`` (the engine's fast path).  Equal to :meth:`time_s` pointwise:
        the pass is ``const + max(memory slope x ctx, compute slope x ctx + offset, cta)`` per
        layer kind (full; sliding at ``min(ctx, batch x window)``), the attention roofline being
        the only context-dependent part, and without a graph at least its dispatch
        (:meth:`launch_s`).  ``padded_tokens``: run the token-dependent kernels on that many
        tokens (a lock-step data-parallel rank padded to the group's largest batch)."""
        return self.decode_split_s(batch, ctx_tokens, q, padded_tokens)[0]

    def decode_split_s(self, batch: int, ctx_tokens: np.ndarray, q: int = 1,
                       padded_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray | float]:
        """:meth:`decode_times_s` and its ``launch`` component per pass: the dispatch the GPU
        waits for (0.0 under a graph)."""
        gpu = self._decode_gpu_s(batch, ctx_tokens, q, padded_tokens)
        if self.graphed(self.padded_tokens(batch * q if padded_tokens is None else padded_tokens, True)):
            return gpu, 0.0
        total = np.maximum(gpu, self._dispatch_s)  # the one rule of launch_s, vectorised
        return total, total - gpu

    def _decode_gpu_s(self, batch: int, ctx_tokens, q: int, padded_tokens: int | None) -> np.ndarray:
        """GPU time of decode passes (no dispatch floor)."""
        const, mem, comp, offset, cta = self._decode_coeffs(batch, q, self._full, padded_tokens)
        ctx = np.asarray(ctx_tokens, dtype=np.float64)
        t = const + np.maximum(np.maximum(mem * ctx, comp * ctx + offset), cta)
        if self._sliding:
            _, mem, comp, offset, cta = self._decode_coeffs(batch, q, self._sliding, padded_tokens)
            ctx_w = np.minimum(ctx, batch * self._window)
            scale = np.divide(ctx_w, ctx, out=np.ones_like(ctx_w), where=ctx > 0)
            t = t + np.maximum(np.maximum(mem * ctx_w, comp * ctx_w + offset * scale), cta)
        return t

    @functools.lru_cache(maxsize=8192)
    def _decode_coeffs(self, batch: int, q: int, layers: int,
                       padded: int | None = None) -> tuple[float, float, float, float, float]:
        """(context-independent time of the pass, and over ``layers`` layers: memory slope,
        compute slope, compute offset, CTA floor)."""
        T = self.padded_tokens(batch * q if padded is None else padded, True)
        hw = self.hw
        da = hw.efficiency.decode_attention_for(self.kv_dtype)
        L = layers
        const = sum(self._token_cost(T, batch * q, self.graphed(T))) + self._layers * da.latency_us * 1e-6
        mem = L * self._kv_bytes_per_tok_layer / (hw.hbm_bandwidth_bytes_per_s * da.mem_eff)
        per_flop = L * self._decode_flops_per_pair / (hw.peak_flops("bf16") * hw.efficiency.prefill_attention_for(self.kv_dtype).compute_eff)
        cta = L * da.cta_us * da.cta_scale(self._cta_head_dim) * 1e-6 * batch * self._kv_heads / hw.gpu.sm_count
        return const, mem, per_flop * q, -per_flop * batch * q * (q - 1) / 2.0, cta

    @functools.lru_cache(maxsize=8192)
    def decode_const_parts(self, batch: int, q: int = 1, padded_tokens: int | None = None) -> dict[str, float]:
        """The context-independent components of a decode pass at ``batch`` sequences (cached:
        callers must not modify the dict); ``padded_tokens`` as in :meth:`decode_times_s`."""
        T = self.padded_tokens(batch * q if padded_tokens is None else padded_tokens, True)
        linear, moe, comm, elem, head = self._token_cost(T, batch * q, self.graphed(T))
        return {"linear": linear, "moe": moe, "communication": comm, "elementwise": elem, "lm_head_sampling": head}

    def launch_s(self, gpu_s: float, decode_only: bool, graphed: bool) -> float:
        """Host time a pass of ``gpu_s`` GPU time waits for: without a graph, the part of its
        dispatch the GPU work does not cover (``max(gpu, dispatch) - gpu``); under piecewise
        graphs, the launches of the attention left outside them; none under a full graph."""
        if not graphed:
            return max(0.0, self._dispatch_s - gpu_s)
        return self.launch_overhead_s(decode_only)

    def launch_overhead_s(self, decode_only: bool) -> float:
        """Launch time of a graphed pass: piecewise attention's launches (mixed passes)."""
        if not decode_only:
            return self._layers * EAGER_KERNELS_PIECEWISE * self.hw.efficiency.kernel_launch_us * 1e-6
        return 0.0


def verify_pairs(ctx_tokens, batch: int, q: int):
    """Query-key pairs of ``batch`` sequences with ``q`` causal new tokens each and total context
    ``ctx_tokens`` (summed): each sequence contributes q*C - q(q-1)/2."""
    return np.asarray(ctx_tokens, dtype=np.float64) * q - batch * q * (q - 1) / 2.0


_SHARED: dict[tuple, tuple[object, object, ForwardModel]] = {}
_SHARED_MAX = 64


def shared_forward_model(arch, hw, **options) -> ForwardModel:
    """A :class:`ForwardModel` of ``arch`` on ``hw`` with ``options`` (its keyword arguments),
    built once and reused while the same (identical) model and profile objects are asked for
    again: its per-token-count and per-batch caches then serve every run of one layout (the
    end-to-end rows sweep concurrency over the same layouts).  A ForwardModel is not changed
    after construction, so sharing it cannot change a result.  Holds at most 64 models."""
    key = (id(arch), id(hw), tuple(sorted(options.items())))
    hit = _SHARED.get(key)
    if hit is not None and hit[0] is arch and hit[1] is hw:
        return hit[2]
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.pop(next(iter(_SHARED)))
    model = ForwardModel(arch, hw, **options)
    _SHARED[key] = (arch, hw, model)  # the references keep the ids from being reused
    return model
