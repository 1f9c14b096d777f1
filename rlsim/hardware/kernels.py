"""Which kernel vLLM runs for a weight dtype on a GPU, and which profile parameters time it.

:func:`gemm_kernel` and :func:`moe_kernel` map a weight dtype to a :class:`KernelChoice`: the
profile entry whose parameters time it (``efficiency.gemm.<key>`` / ``efficiency.moe.<key>``),
the tensor-core dtype whose peak bounds its compute, the bytes per stored weight (scales
included, :data:`rlsim.units.DTYPE_BYTES`), and -- when the profile has no calibrated entry for
the kernel vLLM runs -- a one-line ``fallback`` saying what is used instead (a run shows it).

What vLLM runs (kernel names from the measured tables in ../shared/traces/aiconfigurator,
``kernel_source``; vLLM 0.24):

* bf16 / fp8 / fp8_block GEMM and MoE: their own kernels and entries (torch / CUTLASS / DeepGEMM;
  Triton / FlashInfer fused MoE), fp8 tensor cores for fp8 on Hopper and Blackwell;
* NVFP4 (``fp4``): on Blackwell FlashInfer's FP4 GEMM and TRT-LLM / CUTLASS NVFP4 MoE on FP4
  tensor cores (``efficiency.*.fp4``).  Hopper has no FP4 tensor cores (hardware_and_models.md
  A1): vLLM falls back to weight-only FP4 through Marlin (W4A16: weights dequantised in the
  kernel, bf16 MMA); timed with the Marlin INT4 MoE entry (``moe.int4``, the same Marlin kernel
  family, measured) or the bf16 GEMM entry, at NVFP4's bytes per weight;
* MXFP4 MoE (gpt-oss): Hopper runs OpenAI's Triton ``matmul_ogs`` kernels
  (``gptossmxfp4moe_triton_oaitritonmxfp4experts``), Blackwell FlashInfer TRT-LLM MXFP4 x bf16
  (``..._mxfp4_bf16_trtllmmxfp4experts``): both W4A16 with bf16 MMA -> ``moe.mxfp4`` at the bf16
  peak.  Blackwell also has FlashInfer's TRT-LLM MXFP4 x MXFP8 kernel
  (``mxfp4moe_flashinfer_trtllm_mxfp4_mxfp8``: activations quantised to MXFP8, fp8 MMA; vLLM selects
  it with ``VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1``, ``vllm/model_executor/layers/quantization/
  mxfp4.py``) -> ``moe.mxfp4_mxfp8`` at the fp8 peak; which one an engine runs is
  :func:`mxfp4_moe_dtype` (the engine's ``mxfp4_moe_activation``);
* INT4 weight-only MoE (Kimi-K2.5): Marlin WNA16 (``compressedtensorswna16marlinmoe``) on every
  GPU -> ``moe.int4`` at the bf16 peak;
* INT4 / MXFP4 dense GEMMs (GPTQ / AWQ checkpoints): no calibrated kernel in the data; timed as a
  weight-bandwidth-bound W4A16 kernel: the bf16 GEMM parameters and peak at the dtype's bytes.

A profile lacking an entry falls back as stated in the choice's ``fallback``; fp8 / fp8_block
without an entry stay errors (every shipped profile has them).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlsim.errors import ConfigError
from rlsim.units import DTYPE_BYTES, dtype_bytes, is_int4

__all__ = ["KernelChoice", "gemm_kernel", "moe_kernel", "mxfp4_moe_dtype", "MXFP4_MOE_ACTIVATIONS", "KERNEL_WEIGHTS", "params_key"]


@dataclass(frozen=True)
class KernelChoice:
    """How one (op, weight dtype) is timed on one GPU (see the module docstring)."""

    op: str
    dtype: str
    params_key: str
    compute_dtype: str
    weight_bytes: float
    fallback: str | None = None


#: Kernel dtypes that are not storage formats -> the weights they read (MXFP4 experts run with
#: MXFP8 activations).
KERNEL_WEIGHTS = {"mxfp4_mxfp8": "mxfp4"}


def _weight_bytes(dtype: str) -> float:
    return dtype_bytes(KERNEL_WEIGHTS.get(dtype, dtype))


def params_key(dtype: str) -> str:
    """The profile entry a dtype's own kernel is calibrated under (``int4_g32`` -> ``int4``,
    ``fp16`` -> ``bf16``)."""
    if is_int4(dtype):
        return "int4"
    return "bf16" if dtype == "fp16" else dtype


def _has(hw, op: str, key: str) -> bool:
    return getattr(getattr(hw.efficiency, op), key, None) is not None


def _check_dtype(hw, op: str, dtype: str) -> None:
    if dtype not in DTYPE_BYTES and dtype not in KERNEL_WEIGHTS:
        known = ", ".join([*DTYPE_BYTES, *KERNEL_WEIGHTS])
        raise ConfigError.at(hw.source, f"efficiency.{op}", dtype, f"has no entry for this dtype (known: {known})")


def _fallback(op: str, dtype: str, hw, key: str, compute: str, why: str) -> KernelChoice:
    b = _weight_bytes(dtype)
    note = (f"{op} {dtype} on {hw.name}: {why}; timed with the {op}.{key} parameters, {compute} tensor-core peak "
            f"and {b:.4g} bytes/weight (not calibrated for this kernel)")
    return KernelChoice(op, dtype, key, compute, b, note)


def _own_or_fp4(hw, op: str, dtype: str) -> KernelChoice | None:
    """The shared rules: bf16 / fp8 / fp8_block take their own entry (a missing fp8 entry is the
    profile's error); NVFP4 on a GPU with FP4 tensor cores its fp4 entry (or the bf16 parameters
    at the fp4 peak); None for the rest."""
    key = params_key(dtype)
    if key in ("bf16", "fp8", "fp8_block"):
        getattr(hw, f"{op}_eff")(key)
        return KernelChoice(op, dtype, key, "fp8" if key.startswith("fp8") else "bf16", _weight_bytes(dtype))
    if key == "fp4" and hw.gpu.peak_tflops.fp4 is not None:
        if _has(hw, op, "fp4"):
            return KernelChoice(op, dtype, "fp4", "fp4", _weight_bytes(dtype))
        return _fallback(op, dtype, hw, "bf16", "fp4", f"no calibrated NVFP4 {op} kernel in this profile")
    return None


def gemm_kernel(hw, dtype: str) -> KernelChoice:
    """How a dense GEMM with ``dtype`` weights is timed on ``hw``."""
    _check_dtype(hw, "gemm", dtype)
    choice = _own_or_fp4(hw, "gemm", dtype)
    if choice is not None:
        return choice
    if params_key(dtype) == "fp4":
        return _fallback("gemm", dtype, hw, "bf16", "bf16",
                         "no FP4 tensor cores: vLLM runs weight-only FP4 through Marlin (W4A16)")
    return _fallback("gemm", dtype, hw, "bf16", "bf16",
                     "weight-only 4-bit GEMM (Marlin / Machete W4A16) has no measured kernel: bandwidth-bound W4A16")


def moe_kernel(hw, dtype: str) -> KernelChoice:
    """How a fused-MoE layer with ``dtype`` experts is timed on ``hw``."""
    _check_dtype(hw, "moe", dtype)
    choice = _own_or_fp4(hw, "moe", dtype)
    if choice is not None:
        return choice
    key = params_key(dtype)
    if key == "fp4":
        via = "int4" if _has(hw, "moe", "int4") else "bf16"
        return _fallback("moe", dtype, hw, via, "bf16",
                         "no FP4 tensor cores: vLLM runs weight-only FP4 MoE through Marlin (W4A16)")
    if key == "mxfp4_mxfp8":
        if _has(hw, "moe", key) and hw.gpu.peak_tflops.fp8 is not None:
            return KernelChoice("moe", dtype, key, "fp8", _weight_bytes(dtype))
        via = "mxfp4" if _has(hw, "moe", "mxfp4") else "bf16"
        return _fallback("moe", dtype, hw, via, "bf16", "no calibrated MXFP4 x MXFP8 fused MoE in this profile")
    if _has(hw, "moe", key):
        return KernelChoice("moe", dtype, key, "bf16", _weight_bytes(dtype))
    return _fallback("moe", dtype, hw, "bf16", "bf16", f"no calibrated {key} fused MoE in this profile")


#: Values of an engine's ``mxfp4_moe_activation``.
MXFP4_MOE_ACTIVATIONS = ("auto", "bf16", "mxfp8")


def mxfp4_moe_dtype(hw, expert_dtype: str, activation: str = "auto") -> str:
    """The kernel dtype that times MoE experts stored as ``expert_dtype`` under the engine's
    ``activation`` choice: MXFP4 experts run as ``mxfp4_mxfp8`` (MXFP8 activations) with
    ``"mxfp8"``, or with ``"auto"`` where ``hw`` has a calibrated MXFP4 x MXFP8 kernel (Blackwell),
    else as ``mxfp4`` (bf16 activations); other dtypes are returned unchanged.

    ``"auto"`` is assumed, not vLLM's documented default: vLLM's gpt-oss recipe for Blackwell
    sets ``VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1`` (recalled, UNVERIFIED), and the measured B200
    gpt-oss-120b serving runs (``../shared/e2e``) are out of the bf16-activation kernel's reach:
    at 64 running requests the measured step (9.8 ms, vLLM 0.15.1, TP 1) is shorter than that
    kernel's MoE alone (36 layers x 0.29-0.38 ms in the vLLM 0.24 tables, power-law to balanced
    routing), while the MXFP8 kernel streams weights at 6.1-7.0 TB/s in the same tables (16-320
    tokens, on the two layer shapes it was measured on; the bf16 one at most 4.5 TB/s).  The
    runs' weights are not recorded: dummy weights, whose routing collapses onto few experts
    (``../shared/e2e/README.md``), would also shorten their MoE time; the kernel choice is the
    explanation that also fits their prefill (TTFT), but the data do not single it out.
    ``auto`` departs from vLLM's own default (bf16 activations) on Blackwell: set ``bf16`` for it."""
    if activation not in MXFP4_MOE_ACTIVATIONS:
        raise ValueError(f"mxfp4_moe_activation = {activation!r}; expected one of {', '.join(MXFP4_MOE_ACTIVATIONS)}")
    if expert_dtype != "mxfp4" or activation == "bf16":
        return expert_dtype
    if activation == "mxfp8" or _has(hw, "moe", "mxfp4_mxfp8"):
        return "mxfp4_mxfp8"
    return expert_dtype
