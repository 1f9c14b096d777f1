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

#: Bytes per element of each dtype name rlsim accepts.
DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "fp4": 0.5}


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
    """Bytes per element of ``dtype`` (bf16, fp16, fp8, fp8_block, fp4, fp32)."""
    return DTYPE_BYTES[dtype]
