"""Counter-based uniform random numbers: ``u = f(seed, seq_id, round_idx, pos)``.

Acceptance outcomes must not depend on how sequences are batched, in which order the
simulator visits them, or how many rounds it samples per call (a preempted sequence that is
re-scheduled, or a baseline/speculative pair, must see the same draws).  A stateful
``numpy.random.Generator`` cannot give that; a hash of the draw's coordinates can.

Construction: each key is folded into a 64-bit state with ``state = mix(state + key * G_n)``,
where ``mix`` is the splitmix64 finaliser (Steele, Lea and Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014; constants from Vigna's ``splitmix64.c``), a
bijection on ``uint64`` with full avalanche, and ``G_n`` are distinct odd constants (so distinct
keys give distinct pre-images for a fixed state).  The top 53 bits of the final state become
a float64 in ``[0, 1)``.  All arithmetic is wrap-around ``uint64``.

Keys are folded in the order seed, seq_id, round_idx, pos; because numpy broadcasts, the
expensive final ``mix`` runs on the full output shape while earlier stages run on the
(usually much smaller) broadcast shapes of their inputs, e.g. ``(1, B, 1)`` for sequence ids.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["uniforms", "mix64"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
#: Odd multipliers, one per key: the golden-ratio increment of splitmix64 and three others.
_G_SEED = np.uint64(0x9E3779B97F4A7C15)
_G_SEQ = np.uint64(0xD1B54A32D192ED03)
_G_ROUND = np.uint64(0xAEF17502108EF2D9)
_G_POS = np.uint64(0xF1357AEA2E62A9C5)
_TO_UNIT = 1.0 / float(1 << 53)

ArrayLike = npt.ArrayLike


def mix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's output function (a ``uint64`` bijection with full avalanche)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _u64(x: ArrayLike) -> npt.NDArray[np.uint64]:
    """Integers as ``uint64`` (negative values wrap modulo 2**64)."""
    a = np.asarray(x)
    assert a.dtype.kind in "iub", f"integer keys expected, got dtype {a.dtype}"
    return a.astype(np.int64, copy=False).view(np.uint64) if a.dtype.kind == "i" else a.astype(np.uint64)


def _fold(state: npt.NDArray[np.uint64], key: ArrayLike, mult: np.uint64) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        return mix64(state + _u64(key) * mult)


def uniforms(seed: int, seq_id: ArrayLike, round_idx: ArrayLike, pos: ArrayLike) -> npt.NDArray[np.float64]:
    """Uniform ``[0, 1)`` float64 values, one per broadcast element of the three key arrays.

    The value depends only on ``(seed, seq_id, round_idx, pos)`` (each taken modulo 2**64), never
    on the array shapes or the position of the element in them: ``uniforms(s, a, b, c)[idx] ==
    uniforms(s, a[idx], b[idx], c[idx])`` for broadcast-compatible inputs.
    """
    state = _fold(np.asarray(0, dtype=np.uint64), int(seed) % (1 << 64), _G_SEED)
    state = _fold(state, seq_id, _G_SEQ)
    state = _fold(state, round_idx, _G_ROUND)
    state = _fold(state, pos, _G_POS)
    return (state >> _S11).astype(np.float64) * _TO_UNIT


def seq_keys(seed: int, seq_id: ArrayLike) -> npt.NDArray[np.uint64]:
    """Per-sequence hash state after folding in (seed, seq_id); see :func:`round_uniforms`."""
    state = _fold(np.asarray(0, dtype=np.uint64), int(seed) % (1 << 64), _G_SEED)
    return _fold(state, seq_id, _G_SEQ)


def round_uniforms(keys: npt.NDArray[np.uint64], round_idx: ArrayLike) -> npt.NDArray[np.float64]:
    """``uniforms(seed, seq_id, round_idx, 0)`` from precomputed :func:`seq_keys` (faster: the
    same two folds, in place on the output, ``pos = 0`` adding nothing before its ``mix``)."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys + _u64(round_idx) * _G_ROUND)
        _mix_in_place(z)
        _mix_in_place(z)
        z >>= _S11
        return z.astype(np.float64) * _TO_UNIT


def _mix_in_place(z: npt.NDArray[np.uint64]) -> None:
    """:func:`mix64` overwriting ``z`` (the same operations, without temporaries per step)."""
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
