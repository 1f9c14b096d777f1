"""Drafter cost models per speculative-decoding method (DESIGN 6; vLLM V1 semantics).

Per engine iteration with k drafts for B decoding sequences the drafter runs after the verify
pass (vLLM's ``propose``):

* ``eagle`` / ``eagle3``: the one-layer head runs k times.  The first forward covers the
  accepted tokens + bonus of every sequence (vLLM pads this to 1 + k tokens per sequence) and
  fuses the target's hidden states (EAGLE-3's ``fc``: 3H -> H); the next k - 1 forwards are
  single-token.  Each ends in the head's LM head over its reduced draft vocabulary (32k for
  EAGLE-3) and a greedy pick.  The head keeps its own one-layer KV cache.
* ``mtp``: the same shape with the model's MTP module (``eh_proj`` + one full decoder layer,
  MoE for DeepSeek-V3) and the shared full-vocabulary LM head, reused autoregressively for k > 1.
* ``draft_model``: k forwards of a small model at batch B (the first over 1 + k tokens per
  sequence to catch up on accepted tokens), with its own weights, KV cache and prompt prefill.
* ``ngram``: a host lookup over each request's token history, no GPU work.

Beyond the kernels every GPU drafter pays the round / step / per-sequence overheads of
:class:`rlsim.speculation.costs.SpecCosts` (fitted, the profile's ``speculation`` section) as host
time (:meth:`Drafter.overhead_host_s`: serial under synchronous scheduling, where they were
measured, hidden behind the GPU under async scheduling like the engine's own host work), and the
n-gram proposer its host time (on the step's critical path).

Drafters that keep a KV cache also prefill the prompt (their share of every prefill chunk).
Weights and KV of the drafter are taken out of the target's memory (rlsim.cost.memory).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rlsim.cost.forward import ForwardModel, PassShape
from rlsim.cost.memory import kv_bytes_per_token_per_gpu, weight_bytes_per_gpu
from rlsim.errors import ConfigError
from rlsim.models import ModelArch, load_model
from rlsim.speculation.costs import SpecCosts
from rlsim.units import dtype_bytes

__all__ = ["Drafter", "build_drafter", "default_draft_model"]

#: The drafter's prefill GEMMs are timed at token counts rounded up to this multiple (a small
#: overestimate that lets their costs be cached; the drafter is ~5 % of the target's size).
PREFILL_BUCKET_TOKENS = 64


@dataclass(frozen=True)
class Drafter:
    """Time and memory of one method's drafting on one GPU of the engine."""

    method: str
    fwd: ForwardModel | None  # None for ngram
    weight_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    costs: SpecCosts | None = None  # None: kernels only (no fitted overheads)
    name: str = ""

    def propose_times_s(self, batch: int, ctx_tokens: np.ndarray, k: int) -> np.ndarray:
        """GPU time to propose ``k`` drafts for ``batch`` sequences at total contexts ``ctx_tokens``
        (the verified context: cached tokens after the verify pass), vectorised."""
        ctx = np.asarray(ctx_tokens, dtype=np.float64)
        if self.fwd is None or k <= 0 or batch <= 0:
            return np.zeros_like(ctx)
        first = self.fwd.decode_times_s(batch, ctx, q=k + 1)
        if k == 1:
            return first
        steps = batch * np.arange(1, k, dtype=np.float64).reshape((-1,) + (1,) * ctx.ndim)
        return first + self.fwd.decode_times_s(batch, ctx[None, ...] + steps, q=1).sum(axis=0)

    def overhead_host_s(self, batch: int, k: int) -> float:
        """A GPU drafter's round time beyond its kernels (the fitted round / step / per-sequence
        terms): input preparation, attention metadata per draft step, the draft ids' copy -- host
        work, so serial without async scheduling and hidden behind the GPU with it; 0 for n-gram."""
        if self.fwd is None or self.costs is None:
            return 0.0
        return self.costs.draft_overhead_s(batch, k)

    def prefill_time_s(self, shape: PassShape) -> float:
        """GPU time for the drafter's share of a pass's prefill chunks (its own KV)."""
        if self.fwd is None or shape.prefill_seqs == 0:
            return 0.0
        tokens = shape.num_tokens - shape.decode_seqs  # approximate: prefill tokens of the pass
        tokens = -(-max(1, tokens) // PREFILL_BUCKET_TOKENS) * PREFILL_BUCKET_TOKENS  # bucketed: cached costs
        return self.fwd.time_s(PassShape(tokens, shape.prefill_seqs, 0, 0.0, shape.prefill_seqs,
                                         shape.prefill_pairs, shape.prefill_kv_tokens, prefill_tokens=float(tokens),
                                         prefill_tiles=shape.prefill_tiles, prefill_max_keys=shape.prefill_max_keys))

    def host_time_s(self, batch: int, history_tokens, draft_tokens: int = 0) -> float | np.ndarray:
        """Host time of drafting on the step's critical path: the n-gram proposer's scan of
        ``history_tokens`` (all requests' tokens, scalar or array) and its handling of the
        ``draft_tokens`` it proposes; 0 for GPU drafters."""
        if self.method != "ngram" or self.costs is None or batch <= 0:
            return 0.0
        return self.costs.ngram_host_s(batch, history_tokens, draft_tokens)


def default_draft_model(method: str, target: ModelArch) -> str | None:
    """The catalog draft for a target: ``EAGLE3-<target>`` for eagle/eagle3, None otherwise."""
    if method in ("eagle", "eagle3"):
        return f"EAGLE3-{target.name}"
    return None


def build_drafter(spec, target: ModelArch, hw, tp: int, kv_dtype: str, cuda_graphs: bool,
                  weight_dtype: str, source: str | None = None, max_capture_size: int = 512,
                  vllm_version: str | None = None, eager_dispatch_s: tuple[float, float] | None = None,
                  mxfp4_moe_activation: str = "auto") -> Drafter:
    """Build the drafter of ``spec`` (a SpeculativeConfig) for ``target`` at tensor parallel ``tp``
    (overheads from ``hw``'s ``speculation`` section, at ``vllm_version``; ``eager_dispatch_s`` and
    ``mxfp4_moe_activation`` as :class:`~rlsim.cost.forward.ForwardModel` takes them, None: the
    profile's)."""
    where = "rollout.engine.speculative_config"
    method = spec.method
    costs = SpecCosts.from_profile(hw)
    step_us = hw.speculation.draft_step_us_at(vllm_version) if spec.draft_step_overhead_us is None \
        else spec.draft_step_overhead_us
    costs = dataclasses.replace(costs, draft_step_s=step_us * 1e-6)
    if method == "ngram":
        return Drafter("ngram", None, 0.0, 0.0, costs, "ngram")
    dtp = spec.draft_tensor_parallel_size or tp
    if method == "mtp":
        if target.num_mtp_layers == 0:
            raise ConfigError.at(source, f"{where}.method", method,
                                 f"needs a model with MTP layers; {target.name} has num_nextn_predict_layers = 0")
        weights = target.mtp_linear_weights()
        fwd = ForwardModel(target, hw, tp=dtp, weight_dtype=weight_dtype, kv_dtype=kv_dtype, cuda_graphs=cuda_graphs,
                           max_capture_size=max_capture_size, weights=weights, num_layers=target.num_mtp_layers,
                           num_moe_layers=target.num_mtp_layers if target.is_moe else 0, eager_dispatch_s=eager_dispatch_s,
                           mxfp4_moe_activation=mxfp4_moe_activation)
        wbytes = sum(w.params / (1 if w.parallel == "replicated" else dtp) for w in weights) * dtype_bytes(weight_dtype)
        kv = kv_bytes_per_token_per_gpu(target, dtp, kv_dtype) / target.num_hidden_layers * target.num_mtp_layers
        return Drafter("mtp", fwd, wbytes, kv, costs, f"{target.name} MTP")
    name = spec.model or default_draft_model(method, target)
    if name is None:
        raise ConfigError.at(source, f"{where}.model", None, f"is required for method '{method}' (a draft model name or path)")
    draft = load_model(name, source=source, path=f"{where}.model")
    is_head = draft.kind == "eagle3_head"
    if method in ("eagle", "eagle3") and not is_head:
        raise ConfigError.at(source, f"{where}.model", name, f"is not an EAGLE-3 head (method '{method}')")
    if method == "draft_model" and is_head:
        raise ConfigError.at(source, f"{where}.model", name, "is an EAGLE-3 head; use method: eagle3")
    if draft.num_attention_heads % dtp:
        raise ConfigError.at(source, f"{where}.draft_tensor_parallel_size", dtp,
                             f"does not divide the draft's num_attention_heads = {draft.num_attention_heads}")
    draft_dtype = draft.weight_dtype
    fwd = ForwardModel(draft, hw, tp=dtp, weight_dtype=draft_dtype, kv_dtype=kv_dtype, cuda_graphs=cuda_graphs,
                       max_capture_size=max_capture_size, eager_dispatch_s=eager_dispatch_s,
                       mxfp4_moe_activation=mxfp4_moe_activation)
    wbytes = weight_bytes_per_gpu(draft, dtp, draft_dtype)  # on each GPU that hosts the draft
    kv = kv_bytes_per_token_per_gpu(draft, dtp, kv_dtype)
    return Drafter(method, fwd, wbytes, kv, costs, draft.name)
