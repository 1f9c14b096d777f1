"""Transformer architecture description and exact parameter / KV-cache arithmetic.

Model (what is counted)
-----------------------
A decoder-only transformer: a token embedding, ``num_hidden_layers`` decoder layers, a final
RMSNorm and an lm_head.  Each layer has an attention block (GQA or DeepSeek MLA; full or
sliding-window), ``norms_per_layer`` RMSNorms (2; 4 for Gemma-2/3) and either a dense SwiGLU MLP
or a mixture-of-experts block (router + routed SwiGLU experts + optional shared experts).  An EAGLE-3 draft head is one decoder layer whose qkv projection reads
``2H`` ([normed embedding; normed fused hidden]), an ``fc`` ``3H -> H`` that fuses three target
hidden states, and an lm_head over ``draft_vocab_size``; it reuses the target's embedding.

Assumptions
-----------
* SwiGLU everywhere: an MLP of width ``I`` has ``3*H*I`` weights (gate, up, down).
* Linear biases are counted where the family has them (Qwen2 q/k/v; gpt-oss q/k/v/o, experts and
  router) and so are gpt-oss's attention sinks (one value per head and layer); routing score
  biases (DeepSeek / Kimi / MiniMax ``e_score_correction_bias``, E values per MoE layer) are not.
* RMSNorms have one weight vector.  Per-head q/k norms (Qwen3, Gemma-3) are ``2*head_dim`` per
  layer, per-layer ones (MiniMax-M2) ``(heads + kv_heads) * head_dim``; MLA adds
  ``q_a_layernorm`` (q_lora_rank) and ``kv_a_layernorm`` (kv_lora_rank).
* For MLA, ``head_dim`` is the q/k head dim ``qk_nope_head_dim + qk_rope_head_dim``.
* ``total_params`` is the main model: MTP modules are reported separately (``mtp_params``).
* Weight bytes: each group of linear weights at its dtype in ``quantization``
  (:mod:`rlsim.models.quant`; block / group scales included, :data:`rlsim.units.DTYPE_BYTES`),
  embedding, norms and biases bf16; ``weight_bytes(dtype)`` prices every parameter at ``dtype``.
* KV cache: sliding-window layers hold at most ``sliding_window`` tokens per sequence (vLLM V1's
  hybrid KV-cache manager frees blocks that leave the window), so ``kv_bytes_per_token`` counts
  the full-attention layers and ``sliding_kv_bytes_per_sequence`` the sliding layers' cap.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt, PositiveInt, model_validator

from rlsim.errors import ConfigError
from rlsim.models.quant import Quantization
from rlsim.units import DTYPE_BYTES, dtype_bytes

__all__ = ["LinearWeight", "ModelArch", "checked_dtype_bytes"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

Parallel = Literal["column", "row", "replicated"]
Group = Literal["attention", "dense_mlp", "expert", "shared_expert", "router", "draft_fc", "head"]


def checked_dtype_bytes(dtype: str, path: str = "dtype") -> float:
    """Bytes per element of ``dtype``; ConfigError naming ``path`` if the dtype is unknown."""
    if dtype not in DTYPE_BYTES:
        raise ConfigError.at(None, path, dtype, f"is not a known dtype (known: {', '.join(DTYPE_BYTES)})")
    return dtype_bytes(dtype)


class LinearWeight(BaseModel):
    """One GEMM weight ``[in_features (k) -> out_features (n)]`` of one layer of some type.

    ``parallel`` says how tensor parallelism shards it: ``column`` splits ``out_features``,
    ``row`` splits ``in_features``, ``replicated`` keeps it whole on every rank.
    ``layers`` is how many layers carry this weight; ``copies_per_layer`` is the number of
    identical-shape copies in one layer (``num_experts`` for routed experts, else 1).
    ``shares_storage`` marks a GEMM whose weights are stored elsewhere and already counted
    (a tied lm_head reuses the embedding; the MTP head reuses the main lm_head).
    """

    model_config = _FROZEN

    name: str
    in_features: PositiveInt
    out_features: PositiveInt
    parallel: Parallel
    group: Group
    layers: PositiveInt
    copies_per_layer: PositiveInt = 1
    shares_storage: bool = False

    @property
    def params(self) -> int:
        """Stored parameters over all layers and copies (0 when ``shares_storage``)."""
        if self.shares_storage:
            return 0
        return self.in_features * self.out_features * self.layers * self.copies_per_layer


class ModelArch(BaseModel):
    """Shape of a target model or an EAGLE-3 draft head (see the module docstring for the model).

    Build one with :func:`rlsim.models.model_from_hf_config` or :func:`rlsim.models.load_model`.
    ``num_dense_layers`` defaults to every layer for a dense model and to 0 for an MoE model.
    """

    model_config = _FROZEN

    name: str
    hf_architecture: str
    kind: Literal["target", "eagle3_head"] = "target"
    target_model: str | None = None
    hidden_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    head_dim: PositiveInt
    intermediate_size: NonNegativeInt
    vocab_size: PositiveInt
    draft_vocab_size: PositiveInt | None = None
    tie_word_embeddings: bool = False
    max_position_embeddings: PositiveInt
    num_experts: NonNegativeInt = 0
    num_experts_per_tok: NonNegativeInt = 0
    moe_intermediate_size: NonNegativeInt = 0
    num_shared_experts: NonNegativeInt = 0
    #: Group-limited routing (DeepSeek-V3 ``n_group`` / ``topk_group``): experts form this many
    #: groups and a token picks its experts from its best ``router_topk_groups`` groups only.
    router_groups: PositiveInt = 1
    router_topk_groups: PositiveInt = 1
    num_dense_layers: NonNegativeInt
    attention_kind: Literal["gqa", "mla"] = "gqa"
    q_lora_rank: PositiveInt | None = None
    kv_lora_rank: PositiveInt | None = None
    qk_nope_head_dim: PositiveInt | None = None
    qk_rope_head_dim: PositiveInt | None = None
    v_head_dim: PositiveInt | None = None
    qk_norm: bool = False
    #: ``head``: one norm of head_dim for q and one for k (Qwen3); ``layer``: over all heads (MiniMax-M2).
    qk_norm_scope: Literal["head", "layer"] = "head"
    norms_per_layer: PositiveInt = 2
    num_mtp_layers: NonNegativeInt = 0
    #: Sliding-window attention: ``num_sliding_layers`` layers attend to the last ``sliding_window`` keys.
    sliding_window: PositiveInt | None = None
    num_sliding_layers: NonNegativeInt = 0
    attention_sinks: bool = False
    qkv_bias: bool = False
    o_proj_bias: bool = False
    expert_bias: bool = False
    router_bias: bool = False
    router_scoring: Literal["softmax", "sigmoid"] = "softmax"
    router_score_bias: bool = False
    weight_dtype: str = "bf16"
    #: Storage dtype per group of linear weights (defaults to every group at ``weight_dtype``).
    quantization: Quantization = None  # type: ignore[assignment]  # filled by _defaults
    #: What the architecture has that rlsim does not model (shown by ``models show``).
    notes: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("num_dense_layers") is None:
            dense = data.get("num_hidden_layers") if not data.get("num_experts") else 0
            data = {**data, "num_dense_layers": dense}
        if isinstance(data, dict) and data.get("quantization") is None:
            dtype = data.get("weight_dtype", "bf16")
            if isinstance(dtype, str) and dtype in DTYPE_BYTES:
                data = {**data, "quantization": Quantization.uniform(dtype)}
        return data

    @model_validator(mode="after")
    def _check_consistent(self) -> "ModelArch":
        for rule in (_check_layers, _check_attention, _check_moe, _check_head, _check_sliding, _check_quant):
            problem = rule(self)
            if problem:
                raise ValueError(problem)
        return self

    # ---- layer structure -------------------------------------------------------------------

    @property
    def is_moe(self) -> bool:
        """True when the model has routed experts."""
        return self.num_experts > 0

    @property
    def is_draft_head(self) -> bool:
        """True for an EAGLE-3 head (embedding shared with the target)."""
        return self.kind == "eagle3_head"

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts."""
        return self.num_hidden_layers - self.num_dense_layers

    @property
    def num_full_attention_layers(self) -> int:
        """Layers attending to the whole context (all but the sliding-window layers)."""
        return self.num_hidden_layers - self.num_sliding_layers

    @property
    def attention_input_size(self) -> int:
        """Width read by the q/kv projections: ``2H`` for an EAGLE-3 head, else ``H``."""
        return 2 * self.hidden_size if self.is_draft_head else self.hidden_size

    @property
    def lm_head_out_features(self) -> int:
        """Logit width: ``draft_vocab_size`` for an EAGLE-3 head, else ``vocab_size``."""
        return self.draft_vocab_size if self.is_draft_head and self.draft_vocab_size else self.vocab_size

    def quantization_for(self, dtype: str | None) -> Quantization:
        """The storage scheme a run uses: the checkpoint's own when ``dtype`` is None or the
        model's ``weight_dtype``, else every linear layer at ``dtype`` (:meth:`Quantization.uniform`:
        a ``--quantization`` / ``model.dtype`` override)."""
        if dtype is None or dtype == self.weight_dtype:
            return self.quantization
        checked_dtype_bytes(dtype, "dtype")
        return Quantization.uniform(dtype)

    # ---- parameter counts ------------------------------------------------------------------

    @property
    def embedding_params(self) -> int:
        """Token-embedding table ``V*H`` (0 for a draft head: it reuses the target's)."""
        return 0 if self.is_draft_head else self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Stored lm_head weights (0 when tied to the embedding)."""
        return 0 if self.tie_word_embeddings else self.hidden_size * self.lm_head_out_features

    @property
    def attention_params_per_layer(self) -> int:
        """Attention projection weights of one layer (norms excluded)."""
        return _sum_params(self._attention_weights(layers=1))

    @property
    def dense_mlp_params_per_layer(self) -> int:
        """SwiGLU MLP of one dense layer: ``3*H*intermediate_size``."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        """One routed expert: ``3*H*moe_intermediate_size``."""
        return 3 * self.hidden_size * self.moe_intermediate_size

    @property
    def shared_expert_params_per_layer(self) -> int:
        """All shared experts of one MoE layer."""
        return self.num_shared_experts * self.expert_params

    @property
    def router_params_per_layer(self) -> int:
        """Router (gate) ``H -> num_experts`` of one MoE layer."""
        return self.hidden_size * self.num_experts

    @property
    def norm_params_per_layer(self) -> int:
        """RMSNorm weights of one layer: ``norms_per_layer`` x H (3H for an EAGLE-3 head), q/k
        norms, MLA latent norms."""
        h = self.hidden_size
        norms = 3 * h if self.is_draft_head else self.norms_per_layer * h
        if self.qk_norm and self.qk_norm_scope == "head":
            norms += 2 * self.head_dim
        elif self.qk_norm:
            norms += (self.num_attention_heads + self.num_key_value_heads) * self.head_dim
        if self.attention_kind == "mla":
            norms += (self.q_lora_rank or 0) + (self.kv_lora_rank or 0)
        return norms

    @property
    def attention_bias_params_per_layer(self) -> int:
        """q/k/v and o_proj biases and attention sinks (one per head) of one layer."""
        heads, kv, d = self.num_attention_heads, self.num_key_value_heads, self.head_dim
        qkv = (heads + 2 * kv) * d if self.qkv_bias else 0
        return qkv + (self.hidden_size if self.o_proj_bias else 0) + (heads if self.attention_sinks else 0)

    @property
    def expert_bias_params(self) -> int:
        """Biases of one routed expert (gate_up ``2I`` + down ``H``; 0 without expert biases)."""
        return 2 * self.moe_intermediate_size + self.hidden_size if self.expert_bias else 0

    @property
    def bias_params(self) -> int:
        """Every linear bias and attention sink of the main model."""
        moe = self.num_experts * self.expert_bias_params + (self.num_experts if self.router_bias else 0)
        return self.num_hidden_layers * self.attention_bias_params_per_layer + self.num_moe_layers * moe

    @property
    def final_norm_params(self) -> int:
        """The final RMSNorm before the lm_head."""
        return self.hidden_size

    @property
    def moe_block_params_per_layer(self) -> int:
        """Router + all routed experts + shared experts of one MoE layer."""
        routed = self.num_experts * self.expert_params
        return self.router_params_per_layer + routed + self.shared_expert_params_per_layer

    @property
    def draft_fc_params(self) -> int:
        """EAGLE-3 ``fc`` fusing three target hidden states, ``3H*H`` (0 for targets)."""
        return 3 * self.hidden_size * self.hidden_size if self.is_draft_head else 0

    @property
    def mtp_params(self) -> int:
        """DeepSeek MTP modules: enorm + hnorm + eh_proj (2H->H) + one full decoder layer each.

        The embedding and the output head are shared with the main model and not counted.
        """
        h = self.hidden_size
        mlp = self.moe_block_params_per_layer if self.is_moe else self.dense_mlp_params_per_layer
        per_module = 2 * h + 2 * h * h + self.attention_params_per_layer + self.norm_params_per_layer + mlp
        return self.num_mtp_layers * per_module

    @property
    def total_params(self) -> int:
        """Every stored parameter of the main model (MTP excluded)."""
        per_layer = self.attention_params_per_layer + self.norm_params_per_layer
        return (
            self.embedding_params
            + self.lm_head_params
            + self.final_norm_params
            + self.draft_fc_params
            + self.num_hidden_layers * per_layer
            + self.num_dense_layers * self.dense_mlp_params_per_layer
            + self.num_moe_layers * self.moe_block_params_per_layer
            + self.bias_params
        )

    @property
    def active_params(self) -> int:
        """Parameters touched per token: all but the routed experts not among the top-k."""
        unused = self.num_experts - self.num_experts_per_tok
        return self.total_params - self.num_moe_layers * unused * (self.expert_params + self.expert_bias_params)

    @property
    def non_embedding_params(self) -> int:
        """``total_params`` less the embedding table and the stored lm_head."""
        return self.total_params - self.embedding_params - self.lm_head_params

    def weight_bytes(self, dtype: str | None = None) -> float:
        """Bytes of the main model's weights: every parameter at ``dtype`` when given, else as
        stored (each linear group at its ``quantization`` dtype, scales included; embedding,
        norms and biases bf16)."""
        if dtype is not None:
            return self.total_params * checked_dtype_bytes(dtype, "dtype")
        q = self.quantization
        linear = sum(w.params * dtype_bytes(q.dtype_of(w.group)) for w in self.linear_weights())
        other = self.total_params - sum(w.params for w in self.linear_weights())
        return linear + other * dtype_bytes("bf16")

    # ---- KV cache ----------------------------------------------------------------------------

    @property
    def kv_values_per_token_per_layer(self) -> int:
        """Cached values per token per layer: GQA ``2*kv_heads*head_dim``; MLA latent + rope key."""
        if self.attention_kind == "mla":
            return (self.kv_lora_rank or 0) + (self.qk_rope_head_dim or 0)
        return 2 * self.num_key_value_heads * self.head_dim

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes per token over the main model's full-attention layers (all layers but
        the sliding-window ones; MTP layers excluded)."""
        values = self.kv_values_per_token_per_layer * self.num_full_attention_layers
        return values * checked_dtype_bytes(kv_dtype, "kv_dtype")

    def sliding_kv_bytes_per_sequence(self, kv_dtype: str = "bf16") -> float:
        """Most KV-cache bytes one sequence holds in the sliding-window layers
        (``sliding_window`` tokens each; vLLM rounds up to whole blocks, not counted here)."""
        if not self.num_sliding_layers:
            return 0.0
        values = self.kv_values_per_token_per_layer * self.num_sliding_layers * self.sliding_window
        return values * checked_dtype_bytes(kv_dtype, "kv_dtype")

    # ---- GEMM shapes --------------------------------------------------------------------------

    def linear_weights(self) -> list[LinearWeight]:
        """The GEMM weights of one layer of each type, with how many layers carry them.

        Weights carried by no layer are left out.  Summing ``params`` over the list and adding
        ``embedding_params``, ``num_hidden_layers * norm_params_per_layer``,
        ``final_norm_params`` and ``bias_params`` gives ``total_params``.
        """
        weights = self._attention_weights(self.num_hidden_layers)
        if self.is_draft_head:
            weights.append(_lw("eagle_fc", 3 * self.hidden_size, self.hidden_size, "replicated", "draft_fc", 1))
        weights += self._dense_mlp_weights(self.num_dense_layers)
        weights += self._moe_weights(self.num_moe_layers)
        weights.append(self._lm_head(shares_storage=self.tie_word_embeddings))
        return weights

    def mtp_linear_weights(self) -> list[LinearWeight]:
        """GEMM weights of the MTP modules (``eh_proj`` + one decoder layer + the shared head).

        Summing ``params`` and adding ``num_mtp_layers * (2H + norm_params_per_layer)`` gives
        ``mtp_params``.  Empty when the model has no MTP module.
        """
        n = self.num_mtp_layers
        if n == 0:
            return []
        h = self.hidden_size
        weights = [_lw("eh_proj", 2 * h, h, "replicated", "draft_fc", n)]
        weights += self._attention_weights(n)
        weights += self._moe_weights(n) if self.is_moe else self._dense_mlp_weights(n)
        weights.append(self._lm_head(shares_storage=True))
        return weights

    def _attention_weights(self, layers: int) -> list[LinearWeight]:
        if self.attention_kind == "mla":
            return self._mla_weights(layers)
        heads, kv, d = self.num_attention_heads, self.num_key_value_heads, self.head_dim
        qkv_out = (heads + 2 * kv) * d
        return [
            _lw("qkv_proj", self.attention_input_size, qkv_out, "column", "attention", layers),
            _lw("o_proj", heads * d, self.hidden_size, "row", "attention", layers),
        ]

    def _mla_weights(self, layers: int) -> list[LinearWeight]:
        h, heads = self.hidden_size, self.num_attention_heads
        kv_rank, rope = self.kv_lora_rank or 0, self.qk_rope_head_dim or 0
        nope, v = self.qk_nope_head_dim or 0, self.v_head_dim or 0
        q_out = heads * (nope + rope)
        if self.q_lora_rank:
            q = [
                _lw("q_a_proj", h, self.q_lora_rank, "replicated", "attention", layers),
                _lw("q_b_proj", self.q_lora_rank, q_out, "column", "attention", layers),
            ]
        else:
            q = [_lw("q_proj", h, q_out, "column", "attention", layers)]
        return q + [
            _lw("kv_a_proj", h, kv_rank + rope, "replicated", "attention", layers),
            _lw("kv_b_proj", kv_rank, heads * (nope + v), "column", "attention", layers),
            _lw("o_proj", heads * v, h, "row", "attention", layers),
        ]

    def _dense_mlp_weights(self, layers: int) -> list[LinearWeight]:
        h, i = self.hidden_size, self.intermediate_size
        if layers == 0 or i == 0:
            return []
        return [
            _lw("gate_up_proj", h, 2 * i, "column", "dense_mlp", layers),
            _lw("down_proj", i, h, "row", "dense_mlp", layers),
        ]

    def _moe_weights(self, layers: int) -> list[LinearWeight]:
        if layers == 0 or not self.is_moe:
            return []
        h, i, e = self.hidden_size, self.moe_intermediate_size, self.num_experts
        weights = [
            _lw("router", h, e, "replicated", "router", layers),
            _lw("expert_gate_up", h, 2 * i, "column", "expert", layers, copies=e),
            _lw("expert_down", i, h, "row", "expert", layers, copies=e),
        ]
        if self.num_shared_experts:
            s = self.num_shared_experts * i
            weights += [
                _lw("shared_gate_up", h, 2 * s, "column", "shared_expert", layers),
                _lw("shared_down", s, h, "row", "shared_expert", layers),
            ]
        return weights

    def _lm_head(self, shares_storage: bool) -> LinearWeight:
        out = self.lm_head_out_features
        return _lw("lm_head", self.hidden_size, out, "column", "head", 1, shares_storage=shares_storage)


def _lw(
    name: str,
    k: int,
    n: int,
    parallel: Parallel,
    group: Group,
    layers: int,
    copies: int = 1,
    shares_storage: bool = False,
) -> LinearWeight:
    return LinearWeight(
        name=name, in_features=k, out_features=n, parallel=parallel, group=group, layers=layers,
        copies_per_layer=copies, shares_storage=shares_storage,
    )


def _sum_params(weights: list[LinearWeight]) -> int:
    return sum(w.params for w in weights)


# ---- consistency rules: each returns a one-line problem ("field = value rule") or None ----------


def _check_layers(m: ModelArch) -> str | None:
    if m.num_dense_layers > m.num_hidden_layers:
        return f"num_dense_layers = {m.num_dense_layers} exceeds num_hidden_layers = {m.num_hidden_layers}"
    if not m.is_moe and m.num_dense_layers != m.num_hidden_layers:
        layers = m.num_hidden_layers
        return f"num_dense_layers = {m.num_dense_layers} must equal num_hidden_layers = {layers} without experts"
    if m.num_dense_layers > 0 and m.intermediate_size == 0:
        return f"intermediate_size = 0 must be positive when there are {m.num_dense_layers} dense layers"
    return None


def _check_attention(m: ModelArch) -> str | None:
    if m.attention_kind == "mla":
        for field in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            if getattr(m, field) is None:
                return f"{field} = None must be set for MLA attention"
        return None
    if m.num_attention_heads % m.num_key_value_heads:
        return (
            f"num_key_value_heads = {m.num_key_value_heads} does not divide "
            f"num_attention_heads = {m.num_attention_heads}"
        )
    return None


def _check_moe(m: ModelArch) -> str | None:
    if not m.is_moe:
        return None
    if not 1 <= m.num_experts_per_tok <= m.num_experts:
        return f"num_experts_per_tok = {m.num_experts_per_tok} must be between 1 and num_experts = {m.num_experts}"
    if m.moe_intermediate_size == 0:
        return "moe_intermediate_size = 0 must be positive for an MoE model"
    return None


def _check_sliding(m: ModelArch) -> str | None:
    if m.num_sliding_layers > m.num_hidden_layers:
        return f"num_sliding_layers = {m.num_sliding_layers} exceeds num_hidden_layers = {m.num_hidden_layers}"
    if m.num_sliding_layers and m.sliding_window is None:
        return f"sliding_window = None must be set for {m.num_sliding_layers} sliding-window layers"
    if m.sliding_window is not None and not m.num_sliding_layers:
        return f"sliding_window = {m.sliding_window} is set but num_sliding_layers = 0"
    return None


def _check_quant(m: ModelArch) -> str | None:
    known = ", ".join(DTYPE_BYTES)
    if m.weight_dtype not in DTYPE_BYTES:
        return f"weight_dtype = {m.weight_dtype!r} is not a known dtype (known: {known})"
    if m.quantization.dtype != m.weight_dtype:
        return f"weight_dtype = {m.weight_dtype!r} differs from quantization.dtype = {m.quantization.dtype!r}"
    for group, dtype in m.quantization.groups().items():
        if dtype not in DTYPE_BYTES:
            return f"quantization.{group} = {dtype!r} is not a known dtype (known: {known})"
    return None


def _check_head(m: ModelArch) -> str | None:
    if not m.is_draft_head:
        return None
    if m.num_hidden_layers != 1:
        return f"num_hidden_layers = {m.num_hidden_layers} must be 1 for an EAGLE-3 head"
    if m.is_moe or m.attention_kind != "gqa":
        return "an EAGLE-3 head must be a dense GQA layer"
    return None
