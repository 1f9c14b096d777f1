"""Token-length distributions for prompts and responses.

Each distribution is a frozen pydantic model tagged by ``kind`` and offers:

* ``sample(rng, n, base_dir=None)`` -> ``int64`` array of ``n`` lengths, every one ``>= 1``.
  All randomness comes from the caller's ``numpy.random.Generator``.
* ``mean_tokens_estimate(base_dir=None, cap_tokens=None)`` -> the expected sampled length,
  optionally of ``min(length, cap_tokens)`` (what a ``max_new_tokens`` limit leaves).

``base_dir`` only matters for :class:`EmpiricalLength`, whose relative ``path`` is resolved
against it (the scenario file's folder); the other kinds accept and ignore it so callers can
treat every kind alike.
"""

from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlsim.errors import ConfigError

if TYPE_CHECKING:
    from _csv import _reader

__all__ = ["FixedLength", "LognormalLength", "EmpiricalLength", "LengthDist", "load_length_column"]

IntArray = npt.NDArray[np.int64]

#: Upper clip applied when a lognormal has no ``max_tokens``: keeps float -> int64 exact.
_UNBOUNDED_MAX_TOKENS = 2**53


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FixedLength(_Frozen):
    """Every sequence has exactly ``tokens`` tokens.  Consumes no random draws."""

    kind: Literal["fixed"] = "fixed"
    tokens: int = Field(ge=1)

    def sample(self, rng: np.random.Generator, n: int, base_dir: Path | None = None) -> IntArray:
        """``n`` copies of ``tokens``."""
        assert n >= 0, n
        return np.full(n, self.tokens, dtype=np.int64)

    def mean_tokens_estimate(self, base_dir: Path | None = None, cap_tokens: int | None = None) -> float:
        """Exactly ``tokens`` (or ``cap_tokens`` if smaller)."""
        return float(_cap(self.tokens, cap_tokens))


class LognormalLength(_Frozen):
    """Lognormal lengths, rounded to integers and clipped to ``[min_tokens, max_tokens]``.

    Model: ``X = exp(mu + sigma * Z)`` with ``Z ~ N(0, 1)`` and ``mu = ln(mean_tokens) - sigma**2/2``,
    so ``mean_tokens`` is the mean of the *untruncated* lognormal; a sample is
    ``clip(rint(X), min_tokens, max_tokens)``.  Rounding and clipping move the realised mean
    away from ``mean_tokens`` (use :meth:`mean_tokens_estimate` for the realised one).

    ``max_tokens`` is a hard bound on the distribution itself (e.g. a dataset's longest prompt).
    Response truncation in RL (generation stops at ``max_new_tokens``) belongs to
    :class:`~rlsim.workload.config.WorkloadConfig.max_new_tokens`, which also flags the
    truncated sequences; leave ``max_tokens`` unset for responses unless the distribution
    itself is bounded.  Without ``max_tokens`` samples are clipped at ``2**53`` only so that
    they stay exact integers.  ``sigma = 0`` gives the constant ``rint(mean_tokens)``.
    """

    kind: Literal["lognormal"] = "lognormal"
    mean_tokens: float = Field(gt=0, allow_inf_nan=False)
    sigma: float = Field(ge=0, le=10, allow_inf_nan=False,
                         description="at most 10: beyond it exp(sigma**2) overflows and no length data is that wide")
    min_tokens: int = Field(default=1, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_bounds(self) -> "LognormalLength":
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens = {self.min_tokens} must be <= max_tokens = {self.max_tokens}")
        return self

    @property
    def mu(self) -> float:
        """Location of the underlying normal: ``ln(mean_tokens) - sigma**2 / 2``."""
        return math.log(self.mean_tokens) - 0.5 * self.sigma**2

    def sample(self, rng: np.random.Generator, n: int, base_dir: Path | None = None) -> IntArray:
        """Draw ``n`` standard normals and map them with :meth:`from_standard_normal`."""
        assert n >= 0, n
        return self.from_standard_normal(rng.standard_normal(n))

    def from_standard_normal(self, z: npt.NDArray[np.float64]) -> IntArray:
        """Lengths for given standard-normal noise ``z`` (lets callers correlate the noise)."""
        upper = _UNBOUNDED_MAX_TOKENS if self.max_tokens is None else self.max_tokens
        with np.errstate(over="ignore"):
            x = np.exp(self.mu + self.sigma * np.asarray(z, dtype=np.float64))
        return np.clip(np.rint(x), self.min_tokens, upper).astype(np.int64)

    def mean_tokens_estimate(self, base_dir: Path | None = None, cap_tokens: int | None = None) -> float:
        """Closed-form mean of ``min(clip(rint(X), min_tokens, max_tokens), cap_tokens)``.

        Exact for the clipping (a sample is ``lo`` when ``X < lo + 0.5`` and ``hi`` when
        ``X >= hi - 0.5``); in between ``rint(X)`` is replaced by ``X``, an error far below one
        token for any realistic length.
        """
        lo = _cap(self.min_tokens, cap_tokens)
        hi = _cap(self.max_tokens, cap_tokens)
        if hi is not None and hi <= lo:
            return float(lo)
        if self.sigma == 0.0:
            value = max(float(np.rint(self.mean_tokens)), lo)
            return value if hi is None else min(value, hi)
        a = (math.log(lo + 0.5) - self.mu) / self.sigma
        b = math.inf if hi is None else (math.log(hi - 0.5) - self.mu) / self.sigma
        below = lo * _norm_cdf(a)
        middle = self.mean_tokens * (_norm_cdf(b - self.sigma) - _norm_cdf(a - self.sigma))
        above = 0.0 if hi is None else hi * (1.0 - _norm_cdf(b))
        return below + middle + above


class EmpiricalLength(_Frozen):
    """Lengths drawn uniformly with replacement from a column of a CSV file.

    ``path`` is resolved against the ``base_dir`` given at sampling time (the scenario file's
    folder) when relative, against the working directory when ``base_dir`` is None.  The file
    must have a header row; every value of ``column`` must be an integer ``>= 1``.  The file is
    read once per (resolved path, modification time, size, column) and cached.
    """

    kind: Literal["empirical"] = "empirical"
    path: str = Field(min_length=1)
    column: str = Field(default="length", min_length=1)

    def resolved_path(self, base_dir: Path | None = None) -> Path:
        """Absolute path of the CSV file."""
        p = Path(self.path).expanduser()
        if not p.is_absolute():
            p = (Path(base_dir) if base_dir is not None else Path.cwd()) / p
        return p.resolve()

    def load(self, base_dir: Path | None = None) -> IntArray:
        """The (read-only, cached) lengths of the file; raises ConfigError if it breaks a rule."""
        resolved = self.resolved_path(base_dir)
        try:
            st = resolved.stat()
        except OSError as exc:
            rule = f"cannot be read (resolved to {resolved}): {_reason(exc)}"
            raise ConfigError.at(None, "path", self.path, rule) from None
        return load_length_column(str(resolved), st.st_mtime_ns, st.st_size, self.column, self.path)

    def sample(self, rng: np.random.Generator, n: int, base_dir: Path | None = None) -> IntArray:
        """``n`` values of the column, drawn uniformly with replacement (one integer draw each)."""
        assert n >= 0, n
        values = self.load(base_dir)
        return values[rng.integers(0, values.size, size=n)]

    def mean_tokens_estimate(self, base_dir: Path | None = None, cap_tokens: int | None = None) -> float:
        """Mean of the column (of ``min(value, cap_tokens)`` when capped)."""
        values = self.load(base_dir)
        if cap_tokens is not None:
            values = np.minimum(values, cap_tokens)
        return float(values.mean())


LengthDist = Annotated[Union[FixedLength, LognormalLength, EmpiricalLength], Field(discriminator="kind")]


@lru_cache(maxsize=64)
def load_length_column(resolved: str, mtime_ns: int, size_bytes: int, column: str, display: str) -> IntArray:
    """Read ``column`` of the CSV at ``resolved`` as int64 lengths ``>= 1`` (read-only array).

    ``mtime_ns`` and ``size_bytes`` only key the cache, so an edited file is read again.
    ``display`` is the path as the user wrote it, used in error messages.  Row numbers in
    messages are file line numbers (the header is row 1), as an editor or spreadsheet shows.
    """
    try:
        with open(resolved, newline="", encoding="utf-8") as f:
            values = _parse_column(csv.reader(f), column, display)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{display}: cannot be read as CSV: {_reason(exc)}") from None
    values.setflags(write=False)
    return values


def _parse_column(reader: _reader, column: str, display: str) -> IntArray:
    header = next(reader, None)
    if header is None:
        raise ConfigError(f"{display}: file is empty, expected a header row with column {column!r}")
    names = [h.strip() for h in header]
    if column not in names:
        rule = f"is not a column of the file (columns: {', '.join(map(repr, names))})"
        raise ConfigError.at(display, "column", column, rule)
    index = names.index(column)
    out: list[int] = []
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        cell = row[index].strip() if index < len(row) else ""
        out.append(_parse_length(cell, display, column, reader.line_num))
    if not out:
        raise ConfigError.at(display, "column", column, "has no values, need at least one length")
    return np.asarray(out, dtype=np.int64)


def _parse_length(cell: str, display: str, column: str, row: int) -> int:
    try:
        number = float(cell)
    except ValueError:
        raise ConfigError.at(display, column, cell, f"(row {row}) must be an integer >= 1") from None
    if not number.is_integer():
        raise ConfigError.at(display, column, number, f"(row {row}) must be an integer >= 1")
    value = int(number)
    if value < 1:
        raise ConfigError.at(display, column, value, f"(row {row}) must be >= 1")
    if value > _UNBOUNDED_MAX_TOKENS:
        raise ConfigError.at(display, column, value, f"(row {row}) must be <= 2**53")
    return value


def _cap(value: int | None, cap_tokens: int | None) -> int | None:
    if cap_tokens is None:
        return value
    return cap_tokens if value is None else min(value, cap_tokens)


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
