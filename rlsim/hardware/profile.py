"""Hardware profiles: datasheet numbers, efficiency parameters, topology, collectives, price.

A profile is one YAML file in ``hardware_profiles/`` (``h100_sxm.yaml``, ...), validated by
:class:`HardwareProfile` (frozen pydantic, unknown keys rejected).  YAML keys carry human units
in their names (``hbm_bandwidth_tb_per_s``, ``latency_us``); the SI accessors on the model
(``peak_flops(dtype)``, ``hbm_bandwidth_bytes_per_s``, ...) convert them once with
:mod:`rlsim.units`.  The op-timing physics that uses these numbers lives in
:mod:`rlsim.hardware.ops`.  See DESIGN.md section 3.

Every number in the shipped YAMLs carries a trailing comment naming its source (reference
tables A1-A4, the aiconfigurator system YAMLs, or "assumed"); ``calibration.status`` says
whether the efficiencies were fitted to kernel measurements.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

import rlsim
from rlsim import units
from rlsim.errors import CalibrationError, ConfigError, format_location
from rlsim._paths import check_path_text
from rlsim._pydantic_errors import suggest, validate_strict
from rlsim._yaml import read_yaml_mapping

if TYPE_CHECKING:
    from rlsim.hardware.tables import KernelTables

__all__ = [
    "PROFILES_DIR",
    "HardwareProfile",
    "SpeculationCosts",
    "GpuSpec",
    "PeakTflops",
    "GemmEff",
    "MoeEff",
    "Efficiency",
    "Topology",
    "Collectives",
    "Calibration",
    "TrainingEfficiency",
    "profiles_dir",
    "list_profiles",
    "load_profile",
    "describe_profile",
    "by_group_size",
]

#: The repository's ``hardware_profiles/`` folder (the package is installed editable).
PROFILES_DIR: Path = Path(rlsim.__file__).resolve().parent.parent / "hardware_profiles"
#: Environment variable that overrides :data:`PROFILES_DIR`.
PROFILES_DIR_ENV = "RLSIM_PROFILES_DIR"


# --------------------------------------------------------------------------- field types


def _efficiency(x: float) -> float:
    if not (0.0 < x <= 1.0):  # also rejects NaN
        raise ValueError("must be in (0, 1]")
    return x


def _fraction(x: float) -> float:
    if not (0.0 <= x <= 1.0):
        raise ValueError("must be in [0, 1]")
    return x


def _non_negative(x: float) -> float:
    if not (x >= 0.0) or math.isinf(x):
        raise ValueError("must be a finite number >= 0")
    return x


def _positive(x: float) -> float:
    if not (x > 0.0) or math.isinf(x):
        raise ValueError("must be a finite number > 0")
    return x


Eff = Annotated[float, AfterValidator(_efficiency)]
Frac = Annotated[float, AfterValidator(_fraction)]
NonNeg = Annotated[float, AfterValidator(_non_negative)]
Pos = Annotated[float, AfterValidator(_positive)]
PosInt = Annotated[int, Field(ge=1)]


def _group_size_map(check, rule: str):
    """Before-validator for "a number, or a map {num_gpus: number}" with one clear error."""

    def parse(v: Any) -> float | dict[int, float]:
        def num(x: Any) -> float:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ValueError(f"must be {rule}, or a map {{num_gpus: {rule}}}")
            try:
                return check(float(x))
            except ValueError:
                raise ValueError(f"must be {rule}, or a map {{num_gpus: {rule}}}") from None

        if isinstance(v, dict):
            if not v:
                raise ValueError("must not be an empty map")
            out: dict[int, float] = {}
            for k, x in v.items():
                if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                    raise ValueError("map keys must be group sizes (integers >= 1)")
                out[k] = num(x)
            return dict(sorted(out.items()))
        return num(v)

    return BeforeValidator(parse)


#: Latency in microseconds, constant or per group size (interpolated in log2(n)).
AlphaUs = Annotated[float | dict[int, float], _group_size_map(_non_negative, "a number >= 0")]
#: Efficiency fraction, constant or per group size (interpolated in log2(n)).
EffByN = Annotated[float | dict[int, float], _group_size_map(_efficiency, "a number in (0, 1]")]


def by_group_size(value: float | dict[int, float], num_gpus: int, *, clamp: bool = False) -> float:
    """Evaluate a constant-or-per-group-size parameter at ``num_gpus``.

    Maps are interpolated linearly in log2(n) between the given group sizes.  Outside them the
    value is extrapolated linearly from the two nearest end points (latencies; floored at 0),
    or, with ``clamp=True`` (efficiencies), held at the nearest end point's value.  A
    single-point map is a constant.
    """
    if not isinstance(value, dict):
        return float(value)
    ns = sorted(value)
    if len(ns) == 1:
        return float(value[ns[0]])
    if clamp:
        if num_gpus <= ns[0]:
            return float(value[ns[0]])
        if num_gpus >= ns[-1]:
            return float(value[ns[-1]])
    x = math.log2(max(num_gpus, 1))
    xs = [math.log2(n) for n in ns]
    i = 0 if x <= xs[0] else len(xs) - 2 if x >= xs[-1] else max(j for j in range(len(xs) - 1) if xs[j] <= x)
    x0, x1 = xs[i], xs[i + 1]
    y0, y1 = value[ns[i]], value[ns[i + 1]]
    return max(0.0, float(y0 + (y1 - y0) * (x - x0) / (x1 - x0)))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- sections


class Calibration(_Frozen):
    """Provenance of the efficiency parameters.

    ``status``: ``uncalibrated`` (initial values from reference tables), ``transferred``
    (fitted on another GPU of the same architecture), ``calibrated`` (fitted on this GPU).
    ``errors``: per op class, e.g. ``{gemm: {median_ape: 0.06, p90_ape: 0.14}}``.
    """

    status: Literal["uncalibrated", "transferred", "calibrated"]
    source: str
    vllm_version: str | None = None
    errors: dict[str, float | dict[str, float]] = Field(default_factory=dict)
    #: Terms of the measurement harness, not of a real forward pass (e.g. the eager host floor
    #: of fp8_block GEMM rows, us).  Used only to predict benchmark rows in ``rlsim calibrate
    #: check``; the simulator never reads them.  Keys: rlsim.calibration.predict.BENCHMARK_EFFECTS.
    benchmark_effects: dict[str, NonNeg] = Field(default_factory=dict)


class PeakTflops(_Frozen):
    """Dense (no 2:4 sparsity) tensor-core peak per dtype, TFLOP/s."""

    bf16: Pos
    fp8: Pos | None = None
    fp4: Pos | None = None


class GpuSpec(_Frozen):
    peak_tflops: PeakTflops
    hbm_capacity_gib: Pos
    hbm_bandwidth_tb_per_s: Pos
    l2_cache_mb: Pos
    sm_count: PosInt


class GemmEff(_Frozen):
    """Dense GEMM parameters (the formula is :func:`rlsim.hardware.ops.gemm_time_s`).

    ``compute_eff`` / ``mem_eff``: fractions of the dtype's tensor peak and of HBM bandwidth;
    ``latency_us``: GPU-side floor of one kernel; ``k_loop_ns``: per element of the reduction
    dimension k (each CTA walks k serially; not hidden at small m); ``overlap_loss``: fraction
    of the shorter of compute and memory time not overlapped with the longer (pipeline fill,
    epilogue); ``act_quant_row_ns`` / ``act_quant_pass_ns``: the dynamic activation-quantisation
    pass of quantised GEMMs, per row of x and per row per 2,048-element pass over k (0 for bf16).
    """

    compute_eff: Eff
    mem_eff: Eff
    latency_us: NonNeg
    k_loop_ns: NonNeg = 0.0
    overlap_loss: Frac = 0.0
    act_quant_row_ns: NonNeg = 0.0
    act_quant_pass_ns: NonNeg = 0.0


class MoeEff(_Frozen):
    """Fused-MoE parameters (the formula is :func:`rlsim.hardware.ops.moe_time_s`): every
    touched expert's rows are padded to ``block_m_tokens`` (vLLM's moe_align_block_size / the
    grouped-GEMM tile; chosen by the fit from 16, 32, 64, 128), ``per_routed_token_us`` per
    routed row for sort / permute / combine, ``per_expert_us`` per expert the rank computes
    (one problem of the grouped GEMM: its set-up, scale loads and pipeline fill and drain,
    whatever the expert's size)."""

    compute_eff: Eff
    mem_eff: Eff
    latency_us: NonNeg
    per_routed_token_us: NonNeg
    block_m_tokens: PosInt = 64
    per_expert_us: NonNeg = 0.0
    #: Time factor of a real (skewed) router against the uniform spread the formula assumes, by
    #: ``round(log2(routed rows per expert))`` (interpolated, held at the ends); fitted by
    #: :mod:`rlsim.calibration.routing` from the tables' power-law rows.  None: factor 1.
    skewed_routing: dict[int, Annotated[float, Field(gt=0)]] | None = None


class GemmByDtype(_Frozen):
    bf16: GemmEff
    fp8: GemmEff | None = None
    fp8_block: GemmEff | None = None
    fp4: GemmEff | None = None


class MoeByDtype(_Frozen):
    """Fused-MoE parameters per expert weight dtype: ``fp4`` = NVFP4, ``mxfp4`` = MXFP4 weights
    with bf16 activations (gpt-oss), ``mxfp4_mxfp8`` = MXFP4 weights with MXFP8 activations
    (Blackwell, fp8 tensor cores), ``int4`` = INT4 weight-only Marlin (any group size); see
    :mod:`rlsim.hardware.kernels` for which kernel each is."""

    bf16: MoeEff
    fp8: MoeEff | None = None
    fp8_block: MoeEff | None = None
    fp4: MoeEff | None = None
    mxfp4: MoeEff | None = None
    mxfp4_mxfp8: MoeEff | None = None
    int4: MoeEff | None = None


#: Head dim at which per-CTA / per-token / per-tile attention costs are stated.
REF_HEAD_DIM = 128


class DecodeAttentionEff(_Frozen):
    """Decode attention (:func:`rlsim.hardware.ops.decode_attention_time_s`): KV read at
    ``mem_eff`` of HBM, ``cta_us`` of SM time per (sequence, KV head) CTA at head_dim 128,
    ``latency_us``; ``head_dim_frac``: the share of the CTA cost that scales with head_dim (Q,
    O and K / V tile traffic), the rest being fixed (softmax bookkeeping, scheduling)."""

    mem_eff: Eff
    cta_us: NonNeg
    latency_us: NonNeg
    head_dim_frac: Frac = 0.0

    def cta_scale(self, head_dim):
        """Factor on ``cta_us`` at ``head_dim``: ``1 - f + f * head_dim / 128``."""
        return 1.0 - self.head_dim_frac + self.head_dim_frac * head_dim / REF_HEAD_DIM


class PrefillAttentionEff(_Frozen):
    """Prefill attention (:func:`rlsim.hardware.ops.prefill_attention_time_s`): causal FLOPs
    at ``compute_eff`` of the bf16 peak, ``tile_us`` of SM time per (128-row query tile, head),
    ``tok_head_ns`` / ``tok_kvhead_ns`` of SM time per query token per head / per KV head,
    ``crit_eff``: one SM's efficiency on the critical path, ``latency_us``; the tile and token
    costs are stated at head_dim 128 and ``head_dim_frac`` of them scales with head_dim (as for
    decode)."""

    compute_eff: Eff
    latency_us: NonNeg
    tile_us: NonNeg = 0.0
    tok_head_ns: NonNeg = 0.0
    tok_kvhead_ns: NonNeg = 0.0
    crit_eff: Eff = 1.0
    head_dim_frac: Frac = 0.0

    def cost_scale(self, head_dim):
        """Factor on the tile and token costs at ``head_dim``: ``1 - f + f * head_dim / 128``."""
        return 1.0 - self.head_dim_frac + self.head_dim_frac * head_dim / REF_HEAD_DIM


class ElementwiseEff(_Frozen):
    mem_eff: Eff
    latency_us: NonNeg


class Efficiency(_Frozen):
    """Per-op-class efficiency parameters.  ``latency_us`` values are GPU-side per-kernel floors
    (as under CUDA graphs); ``kernel_launch_us`` is the host launch cost per kernel that the
    forward model adds for the attention kernels a piecewise CUDA graph leaves outside it (a pass
    with no graph waits for its whole dispatch instead: ``engine.eager_layer_us``), not the op
    functions.  ``decode_attention_fp8`` /
    ``prefill_attention_fp8``: the attention kernels with an fp8 KV cache (their own fit; absent
    = the bf16 parameters at 1 byte per KV value)."""

    gemm: GemmByDtype
    moe: MoeByDtype
    decode_attention: DecodeAttentionEff
    prefill_attention: PrefillAttentionEff
    elementwise: ElementwiseEff
    kernel_launch_us: NonNeg
    decode_attention_fp8: DecodeAttentionEff | None = None
    prefill_attention_fp8: PrefillAttentionEff | None = None

    def decode_attention_for(self, kv_dtype: str) -> DecodeAttentionEff:
        """Decode-attention parameters for a KV cache of ``kv_dtype``."""
        return self.decode_attention_fp8 if kv_dtype == "fp8" and self.decode_attention_fp8 else self.decode_attention

    def prefill_attention_for(self, kv_dtype: str) -> PrefillAttentionEff:
        """Prefill-attention parameters for a KV cache of ``kv_dtype``."""
        return self.prefill_attention_fp8 if kv_dtype == "fp8" and self.prefill_attention_fp8 else self.prefill_attention


class Topology(_Frozen):
    """Links per GPU (per direction).  ``host_bandwidth_gb_per_s``: GPU <-> host memory (PCIe /
    NVLink-C2C), used to offload trainer state in colocated RL; None = PCIe Gen5 x16 (64)."""

    gpus_per_node: PosInt
    nvlink_domain_gpus: PosInt
    nvlink_bandwidth_gb_per_s: Pos
    nic_bandwidth_gb_per_s: Pos
    nvlink_latency_us: NonNeg
    nic_latency_us: NonNeg
    host_bandwidth_gb_per_s: Pos | None = None

    @field_validator("nvlink_domain_gpus")
    @classmethod
    def _domain_covers_node(cls, v: int, info: ValidationInfo) -> int:
        node = info.data.get("gpus_per_node")
        if node is not None and v < node:
            raise ValueError(f"must be >= gpus_per_node = {node}")
        return v


class AlphaBeta(_Frozen):
    """``t = alpha_us(n) + bytes * factor(op, n) / (link_bw * busbw_eff(n))``.

    With ``large_alpha_us`` / ``large_busbw_eff`` set, a second protocol (NCCL's Simple protocol
    / larger chunks: more latency, more bandwidth) is available and the faster one is used:
    ``t = min(alpha + bytes*f/(bw*eff), large_alpha + bytes*f/(bw*large_eff))``.

    Maps give values at *measured* group sizes only; beyond the largest one
    :mod:`rlsim.hardware.collectives` extrapolates physically.  ``nvls_alpha_us`` /
    ``nvls_algbw_eff`` (NCCL's NVLink-SHARP all-reduce: ``alpha + bytes / (link_bw * eff)``,
    independent of the group size) apply to the NVLink domain's ``all_reduce`` only, where NCCL
    was measured using it; None = not modelled."""

    alpha_us: AlphaUs
    busbw_eff: EffByN
    large_alpha_us: AlphaUs | None = None
    large_busbw_eff: EffByN | None = None
    nvls_alpha_us: NonNeg | None = None
    nvls_algbw_eff: Eff | None = None


class NcclOps(_Frozen):
    all_reduce: AlphaBeta
    all_gather: AlphaBeta
    reduce_scatter: AlphaBeta
    alltoall: AlphaBeta


class CustomAllReduce(_Frozen):
    """vLLM's custom all-reduce (TP inside one NVLink-connected group, buffers up to
    ``max_bytes``), csrc/custom_all_reduce.cuh; the formula is in
    :func:`rlsim.hardware.ops.custom_all_reduce_time_s`.

    Every kernel starts and ends with a flag barrier across the ``n`` ranks (``alpha_us +
    barrier_per_peer_us * (n-1)``).  One-shot (2 GPUs always; below 512 KiB for <= 4 GPUs,
    256 KiB for <= 8: vLLM's fixed rule) reads all ``n-1`` peers' buffers over NVLink
    (``oneshot_link_eff``) in passes of 36 CTAs x 512 threads x 16 B, each pass a remote-load
    round trip (``oneshot_iter_us``); two-shot is reduce-scatter + all-gather
    (``2(n-1)/n`` of the buffer at ``twoshot_link_eff``, plus ``twoshot_extra_us`` for the middle
    barrier and second pass).  Eager calls copy the input into the registered buffer
    (``eager_extra_us`` + a read and write of it at HBM speed) and cannot beat the host's
    per-call floor ``eager_floor_us``; ``eager_twoshot_floor_per_peer_us`` raises that floor for
    two-shot calls with ``n-1`` peers (empirical: seen on H100 and B200 at 8 GPUs, mechanism
    unknown).
    """

    alpha_us: NonNeg
    barrier_per_peer_us: NonNeg
    oneshot_link_eff: Eff
    oneshot_iter_us: NonNeg
    twoshot_extra_us: NonNeg
    twoshot_link_eff: Eff
    eager_floor_us: NonNeg
    eager_extra_us: NonNeg
    eager_twoshot_floor_per_peer_us: NonNeg = 0.0
    max_bytes: PosInt
    max_gpus: PosInt


class Collectives(_Frozen):
    """Collective parameters (:func:`rlsim.hardware.ops.collective_time_s`).

    ``nccl_step_us`` / ``nccl_large_step_us``: latency of one more ring step of NCCL's LL /
    Simple protocol, used to extrapolate beyond the largest measured group size (derived by
    ``rlsim calibrate fit`` from the measured all-reduce vs all-gather latencies; None = no
    growth)."""

    nccl: NcclOps
    scale_out: AlphaBeta
    custom_all_reduce: CustomAllReduce
    #: Largest group size with measured collective data; larger groups are extrapolated.
    measured_max_gpus: PosInt
    nccl_step_us: NonNeg | None = None
    nccl_large_step_us: NonNeg | None = None


class TrainingEfficiency(_Frozen):
    """Trainer model-FLOPs utilisation (optional section ``training``), used by
    :mod:`rlsim.training`: achieved fraction of the bf16 dense peak on the trainer's executed
    FLOPs, per model class.  Absent = rlsim.training's documented defaults."""

    mfu_dense: Eff
    mfu_moe: Eff
    mfu_source: str


class EngineOverheads(_Frozen):
    """Engine-level time beyond kernels (optional section ``engine``; absent = these defaults,
    assumed from hardware_and_models.md C2).  ``rlsim calibrate e2e`` fits them to measured
    end-to-end runs and records how (``fit``).

    * synchronous scheduling: host time per step ``step_us + per_seq_us x scheduled requests +
      per_prefill_token_us x prefill tokens`` adds to the GPU time (scheduler, input
      preparation, output processing);
    * async scheduling hides it behind the GPU (``max(gpu, host)``) except
      ``async_exposed_us + async_exposed_per_seq_us x requests`` per step;
    * the API server: each request costs ``api_server_us + api_server_us_per_prompt_token x
      prompt tokens`` (Gamma-distributed, coefficient of variation ``api_server_cv``) in one
      process, first come first served, before it reaches the engine;
    * GPU kernels the kernel tables leave out: ``moe_routing_us_per_layer`` per MoE layer and
      pass (router top-k / grouped top-k, the block-alignment sort; default assumed: three small
      kernels of ~3 us);
    * a pass with no CUDA graph (more tokens than the largest captured size, or
      ``--enforce-eager``) is dispatched op by op from Python: ``eager_layer_us`` per decoder
      layer plus ``eager_moe_layer_us`` per MoE layer of host time, which the GPU cannot run
      ahead of, so the pass takes ``max(GPU time, dispatch)`` (:mod:`rlsim.cost.forward`).
      Defaults: 260 us a layer from Llama-3.1-8B's batch-1 decode step on H100, 8.4 ms eager vs
      5.1 ms under CUDA graphs (hardware_and_models.md A3.6, [CLOUDAI], secondary, UNVERIFIED):
      an eager step that long is host-bound, 8.4 ms / 32 layers = 262 us (an upper bound: the step
      also holds the engine's ~1 ms of host work, which would leave ~231 us); the same value is
      used for torch.compile'd passes above the captured sizes (fewer elementwise launches; the
      custom ops -- attention, fused MoE, quantisation -- still dispatch from Python: assumed,
      and consistent with the measured end-to-end TTFT rows); a fused-MoE block adds
      about a dense layer's worth of host ops (router GEMM, top-k, alignment sort, activation
      quantisation, two grouped GEMMs, the weighted sum, the shared expert: assumed).
    """

    source: str = "assumed (hardware_and_models.md C2)"
    step_us: NonNeg = 1000.0
    per_seq_us: NonNeg = 4.0
    per_prefill_token_us: NonNeg = 0.02
    async_exposed_us: NonNeg = 150.0
    async_exposed_per_seq_us: NonNeg = 0.0
    api_server_us: NonNeg = 1000.0
    api_server_us_per_prompt_token: NonNeg = 0.5
    api_server_cv: NonNeg = 1.0
    moe_routing_us_per_layer: NonNeg = 10.0
    eager_layer_us: NonNeg = 260.0
    eager_moe_layer_us: NonNeg = 260.0
    fit: dict[str, Any] | None = None


class SpeculationCosts(_Frozen):
    """Speculative-decoding time beyond the kernels (optional section ``speculation``; absent =
    these defaults, the ``h100_sxm`` fit).  ``rlsim calibrate spec`` fits them to SpecDecode-Bench's
    step-time decomposition of vLLM 0.10.1 / 0.11.1 runs (spec_decode_measured.md 1) and records
    how (``fit``); the model they enter is :mod:`rlsim.speculation.costs`.

    * ``draft_round_us``: per speculative round of a GPU drafter (EAGLE / EAGLE-3 / MTP / draft
      model), beyond its forwards' kernel time: the drafter's input preparation from the accepted
      tokens (``prepare_inputs``, rejected-token counts), the GPU -> CPU copy of the draft ids;
    * ``draft_step_us``: per draft forward: its attention-metadata update, launches outside the
      graph and the draft-token argmax (not identified by the decomposition, which was measured
      at one k: 0, the per-step kernels carry the k dependence);
    * ``draft_seq_us``: per sequence and round (the per-request bookkeeping of the proposal);
    * ``verify_us_per_draft_token``: per draft token in the verify pass beyond the target's
      kernels (rejection sampler, target probabilities and metadata at every draft position);
    * ``spec_host_us``: host time of a speculative step beyond the engine's ``engine`` host model
      (draft-token bookkeeping, rejected-token rollback in the scheduler);
    * the three ``draft_*`` terms are host work too (rlsim.speculation.costs): serial under
      synchronous scheduling, where they were measured, hidden behind the GPU under async scheduling;
    * ``ngram_round_us`` / ``ngram_seq_us`` / ``ngram_ns_per_context_token`` /
      ``ngram_us_per_draft_token``: the n-gram proposer's host time per step: fixed, per request,
      per token of history it scans, and per draft token it proposes (the source's share-of-verify
      form; assumed to be the proposal's Python handling, not timed: rlsim.speculation.costs);
    * ``reference_bf16_tflops``: the bf16 peak of the GPU the terms were fitted on; on another GPU
      the verification floor (GPU work) scales by the peak ratio, the rest (host, launches,
      synchronisation) transfers as is (assumed);
    * ``legacy_draft_step_us``: ``draft_step_us`` of vLLM releases before ``legacy_before`` (the
      decomposition's first version), fitted on vLLM #20780's batch-1 EAGLE-3 TPOT (mid-2025;
      that validation case is a calibration case).
    """

    source: str = "h100_sxm fit (rlsim calibrate spec), used where a profile has no speculation section"
    vllm_version: str = "0.10.1-0.11.1"
    draft_round_us: NonNeg = 1477.06
    draft_step_us: NonNeg = 0.0
    draft_seq_us: NonNeg = 0.0
    verify_us_per_draft_token: NonNeg = 21.8718
    spec_host_us: NonNeg = 137.429
    ngram_round_us: NonNeg = 34.751
    ngram_seq_us: NonNeg = 0.1239
    ngram_ns_per_context_token: NonNeg = 0.2319
    ngram_us_per_draft_token: NonNeg = 0.1239
    reference_bf16_tflops: NonNeg = 989.0
    legacy_draft_step_us: NonNeg = 652.96
    legacy_before: str = "0.10.1"
    fit: dict[str, Any] | None = None

    def draft_step_us_at(self, version: str | None) -> float:
        """``draft_step_us`` of vLLM ``version`` (None = the latest)."""
        from rlsim.config.vllm import parse_version

        return self.legacy_draft_step_us if parse_version(version) < parse_version(self.legacy_before) else self.draft_step_us


# --------------------------------------------------------------------------- the profile

_PEAK_KEY = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "fp4": "fp4"}
_EFF_KEY = {"bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "fp4": "fp4", "mxfp4": "mxfp4",
            "mxfp4_mxfp8": "mxfp4_mxfp8", "int4": "int4"}


class HardwareProfile(_Frozen):
    """One GPU system: datasheet, efficiencies, topology, collectives, price (human units in
    the field names; SI through the accessors)."""

    name: str
    display_name: str
    calibration: Calibration
    gpu: GpuSpec
    efficiency: Efficiency
    topology: Topology
    collectives: Collectives
    price_per_gpu_hour_usd: NonNeg
    training: TrainingEfficiency | None = None
    engine: EngineOverheads = EngineOverheads()
    speculation: SpeculationCosts = SpeculationCosts()
    #: Table mode (:mod:`rlsim.hardware.tables`): a folder of measured kernel latencies (any
    #: format ``rlsim calibrate`` reads; relative to this file) interpolated in log space where
    #: they cover a query, the fitted model elsewhere.  None = the fitted model only.  Loaded by
    #: :func:`load_profile` / :meth:`with_kernel_tables`; a profile built in memory with
    #: ``model_validate`` keeps the path but has no tables (``tables`` is None).
    kernel_tables: str | None = None

    _source: str | None = PrivateAttr(default=None)
    _tables: Any = PrivateAttr(default=None)

    # ---- provenance
    @property
    def source(self) -> str:
        """The file this profile was loaded from (or ``<name> profile`` when built in memory)."""
        return self._source or f"{self.name} profile"

    @property
    def tables(self) -> "KernelTables | None":
        """The loaded kernel tables of table mode, or None."""
        return self._tables

    def with_kernel_tables(self, path: str | None, *, source: str | None = None, field: str = "kernel_tables",
                           shown: str | None = None) -> "HardwareProfile":
        """A copy in table mode over the measurements at ``path`` (None: the fitted model only).
        ``source`` / ``field`` / ``shown`` name where ``path`` came from (and as what value) in
        the error for an unreadable folder.  Lookup counts restart."""
        new = self.model_copy(update={"kernel_tables": path})
        new._source = self._source
        new._tables = None if path is None else _read_tables(path, source or self.source, field, self.name, shown)
        return new

    def calibration_summary(self) -> dict[str, Any]:
        """What a run report states about this profile: name, calibration status and source
        (which carries the fitted error), and table mode's lookups / fallbacks (or None)."""
        tables = None if self._tables is None else self._tables.report()
        return {"profile": self.name, "calibration_status": self.calibration.status,
                "calibration_source": self.calibration.source, "kernel_tables": tables}

    # ---- SI accessors
    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (fp16 -> bf16 peak, fp8_block -> fp8 peak)."""
        key = _PEAK_KEY.get(dtype)
        value = getattr(self.gpu.peak_tflops, key) if key else None
        if value is None:
            known = [d for d, k in _PEAK_KEY.items() if getattr(self.gpu.peak_tflops, k) is not None]
            raise ConfigError.at(
                self.source, "gpu.peak_tflops", dtype, f"is not a dtype this GPU has a peak for (known: {', '.join(known)})"
            )
        return units.tflops(value)

    @property
    def hbm_bytes(self) -> float:
        return units.gib(self.gpu.hbm_capacity_gib)

    @property
    def hbm_bandwidth_bytes_per_s(self) -> float:
        return units.tb_per_s(self.gpu.hbm_bandwidth_tb_per_s)

    @property
    def nvlink_bw_bytes_per_s(self) -> float:
        """NVLink bandwidth per GPU per direction."""
        return units.gb_per_s(self.topology.nvlink_bandwidth_gb_per_s)

    @property
    def nic_bw_bytes_per_s(self) -> float:
        """Scale-out NIC bandwidth per GPU per direction."""
        return units.gb_per_s(self.topology.nic_bandwidth_gb_per_s)

    @property
    def l2_bytes(self) -> float:
        return self.gpu.l2_cache_mb * 1e6

    @property
    def kernel_launch_s(self) -> float:
        return units.us(self.efficiency.kernel_launch_us)

    def gemm_eff(self, dtype: str) -> GemmEff:
        """Dense-GEMM efficiency parameters for weight dtype ``dtype`` (fp16 uses bf16's)."""
        return self._eff_entry(self.efficiency.gemm, "efficiency.gemm", dtype)

    def moe_eff(self, dtype: str) -> MoeEff:
        """Fused-MoE efficiency parameters for expert weight dtype ``dtype``."""
        return self._eff_entry(self.efficiency.moe, "efficiency.moe", dtype)

    def collectives_extrapolated(self, num_gpus: int) -> bool:
        """True when a collective over ``num_gpus`` goes beyond the measured group sizes."""
        return num_gpus > self.collectives.measured_max_gpus

    def _eff_entry(self, table: BaseModel, path: str, dtype: str):
        key = _EFF_KEY.get(dtype) or ("int4" if units.is_int4(dtype) else None)
        entry = getattr(table, key, None) if key else None
        if entry is None:
            known = [d for d, k in _EFF_KEY.items() if getattr(table, k, None) is not None]
            raise ConfigError.at(self.source, path, dtype, f"has no entry for this dtype (known: {', '.join(known)})")
        return entry


# --------------------------------------------------------------------------- loading


def profiles_dir() -> Path:
    """``$RLSIM_PROFILES_DIR`` if set, else :data:`PROFILES_DIR`."""
    env = os.environ.get(PROFILES_DIR_ENV)
    return Path(env) if env else PROFILES_DIR


def list_profiles() -> list[str]:
    """Names (file stems) of the profiles in :func:`profiles_dir`, sorted."""
    d = profiles_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def _is_path(name_or_path: str) -> bool:
    return "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml"))


def load_profile(name_or_path: str, *, source: str | None = None, path: str = "hardware") -> HardwareProfile:
    """Load a profile by bare name (from :func:`profiles_dir`) or by file path.

    ``source`` / ``path`` say where the name itself came from (for the error message when it is
    unknown), e.g. ``load_profile(s, source="scenario.yaml", path="hardware.profile")``.
    Every failure is a one-line :class:`ConfigError`.
    """
    loc = format_location(source, path)
    check_path_text(name_or_path, source, path)
    if _is_path(name_or_path):
        file = Path(name_or_path).expanduser()
        if not file.is_file():
            raise ConfigError(f"{loc} = {name_or_path!r}: file not found")
        expected_name = None
    else:
        known = list_profiles()
        if name_or_path not in known:
            # the family first (b200 -> b200_sxm, not gb200), then the closest spelling
            hint = next((k for k in known if k.startswith(f"{name_or_path}_")), None) or suggest(name_or_path, known)
            did = f"did you mean {hint!r}?; " if hint else ""
            raise ConfigError.at(source, path, name_or_path, f"is not a known profile ({did}known: {', '.join(known)})")
        file = profiles_dir() / f"{name_or_path}.yaml"
        expected_name = name_or_path
    return _load_file(file, expected_name)


def _load_file(file: Path, expected_name: str | None) -> HardwareProfile:
    """The profile in ``file``, parsed once per file version: profiles are frozen, so one object
    serves every load until the file changes (size or modification time)."""
    try:
        st = file.stat()
    except OSError:
        return _parse_file(file, expected_name)
    return _parse_cached(str(file), st.st_mtime_ns, st.st_size, expected_name)


@functools.lru_cache(maxsize=64)
def _parse_cached(file: str, _mtime_ns: int, _size: int, expected_name: str | None) -> HardwareProfile:
    return _parse_file(Path(file), expected_name)


def _parse_file(file: Path, expected_name: str | None) -> HardwareProfile:
    src = str(file)
    data = read_yaml_mapping(file, "hardware profile")
    profile = validate_strict(HardwareProfile, data, src)
    if expected_name is not None and profile.name != expected_name:
        raise ConfigError.at(src, "name", profile.name, f"must match the file name {expected_name!r}")
    profile._source = src
    if profile.kernel_tables is not None:
        tables = Path(profile.kernel_tables).expanduser()
        tables = tables if tables.is_absolute() else file.parent / tables
        profile._tables = _read_tables(str(tables), src, "kernel_tables", profile.name, shown=profile.kernel_tables)
    return profile


def _read_tables(path: str, source: str, field: str, gpu: str, shown: str | None = None):
    """Load table-mode measurements for the profile named ``gpu`` (its own lookup counts); an
    unreadable folder, or measurements of another shipped GPU, is a ConfigError naming ``field``."""
    from rlsim.hardware.tables import load_kernel_tables

    if not Path(path).expanduser().exists():
        raise ConfigError.at(source, field, shown or path, "is not a folder or file of kernel measurements (not found)")
    try:
        tables = load_kernel_tables(path).with_fresh_counts()
    except CalibrationError as err:
        detail = str(err).split(": ", 1)[-1]
        raise ConfigError.at(source, field, shown or path, f"cannot be read as kernel measurements ({detail})") from None
    other = [g for g in tables.gpus if g in list_profiles() and g != gpu]
    if other and gpu not in tables.gpus:
        raise ConfigError.at(source, field, shown or path, f"holds measurements of {', '.join(other)}, not of {gpu}")
    return tables


def describe_profile(p: HardwareProfile) -> dict[str, Any]:
    """A JSON-able summary for ``rlsim profiles show``: the profile's fields, its file, and a few
    derived numbers (effective bandwidth and compute, bf16 ridge point)."""
    bw_eff = p.hbm_bandwidth_bytes_per_s * p.efficiency.gemm.bf16.mem_eff
    flops_eff = p.peak_flops("bf16") * p.efficiency.gemm.bf16.compute_eff
    return {
        "file": p.source,
        **p.model_dump(mode="json"),
        "derived": {
            "hbm_capacity_bytes": p.hbm_bytes,
            "effective_hbm_bandwidth_tb_per_s": round(bw_eff / units.TB, 3),
            "effective_bf16_tflops": round(flops_eff / units.TFLOP, 1),
            "bf16_ridge_point_flops_per_byte": round(flops_eff / bw_eff, 1),
            "collectives_measured_up_to_gpus": p.collectives.measured_max_gpus,
        },
    }
