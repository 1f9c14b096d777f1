"""The one place where human units (GB/s, TFLOP/s, us, GiB) become SI.

Everything inside rlsim is SI: seconds, bytes, FLOPs, bytes per second.  YAML keys that carry
human units say so in their names (``hbm_bandwidth_tb_per_s``) and are converted here, once.
Decimal prefixes (GB = 1e9 bytes) follow datasheets; binary ones (GiB = 2**30) are named so.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024**2
GIB = 1024**3
GB = 1e9
TB = 1e12
US = 1e-6
MS = 1e-3
TFLOP = 1e12

#: Bytes per stored element of each dtype name rlsim accepts, block / group scales included:
#:
#: - ``fp8``: e4m3 with per-tensor (or per-channel) scales, 1 byte;
#: - ``fp8_block``: e4m3 with one fp32 scale per 128 x 128 block (DeepSeek-V3 format), 1 + 4/16384;
#: - ``fp4``: NVFP4, e2m1 with one e4m3 scale per 16 values (+ a per-tensor fp32 scale), 0.5 + 1/16;
#: - ``mxfp4``: OCP MX e2m1 with one e8m0 scale per 32 values, 0.5 + 1/32 = 4.25 bits (OpenAI's
#:   gpt-oss figure, hardware_and_models.md B2);
#: - ``int4``: INT4 weight-only with one bf16 scale per group of 128 input values (the GPTQ / AWQ
#:   default), 0.5 + 2/128; ``int4_g32`` / ``int4_g64`` for groups of 32 / 64 (Kimi-K2.5 uses 32),
#:   ``int4_gch`` for one scale per output channel (group_size -1, scales negligible).  Zero points
#:   of asymmetric schemes (AWQ: 4 bits per group) are not counted.
#:
#: The same bytes serve weight storage (memory plan) and weight traffic (op timing).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp8_block": 1.0 + 4.0 / (128 * 128),
    "fp4": 0.5 + 1.0 / 16, "mxfp4": 0.5 + 1.0 / 32,
    "int4": 0.5 + 2.0 / 128, "int4_g64": 0.5 + 2.0 / 64, "int4_g32": 0.5 + 2.0 / 32, "int4_gch": 0.5,
}
#: Weight-only INT4 dtype name per quantisation group size (``-1``: per output channel).
INT4_BY_GROUP_SIZE: dict[int, str] = {32: "int4_g32", 64: "int4_g64", 128: "int4", -1: "int4_gch"}


def tb_per_s(x: float) -> float:
    """TB/s (decimal) -> bytes/s."""
    return x * TB


def gb_per_s(x: float) -> float:
    """GB/s (decimal) -> bytes/s."""
    return x * GB


def tflops(x: float) -> float:
    """TFLOP/s -> FLOP/s."""
    return x * TFLOP


def us(x: float) -> float:
    """Microseconds -> seconds."""
    return x * US


def gib(x: float) -> float:
    """GiB -> bytes."""
    return x * GIB


def dtype_bytes(dtype: str) -> float:
    """Bytes per stored element of ``dtype`` (:data:`DTYPE_BYTES`, scales included)."""
    return DTYPE_BYTES[dtype]


def is_int4(dtype: str) -> bool:
    """True for the INT4 weight-only dtypes (``int4``, ``int4_g32``, ...)."""
    return dtype == "int4" or dtype.startswith("int4_")
