"""Length distributions: sampling, means, bounds, empirical CSV files and their errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from rlsim.errors import ConfigError
from rlsim.workload import EmpiricalLength, FixedLength, LengthDist, LognormalLength


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _write_csv(tmp_path: Path, text: str, name: str = "lengths.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fixed_length_is_constant_and_int64() -> None:
    out = FixedLength(tokens=7).sample(_rng(), 5)
    assert out.dtype == np.int64
    assert out.tolist() == [7] * 5
    assert FixedLength(tokens=7).mean_tokens_estimate() == 7.0
    assert FixedLength(tokens=7).mean_tokens_estimate(cap_tokens=4) == 4.0


def test_lognormal_mean_of_untruncated_distribution() -> None:
    dist = LognormalLength(mean_tokens=1000.0, sigma=0.8)
    out = dist.sample(_rng(1), 200_000)
    assert out.dtype == np.int64
    assert out.mean() == pytest.approx(1000.0, rel=0.02)
    assert dist.mean_tokens_estimate() == pytest.approx(1000.0, rel=1e-3)


def test_lognormal_clips_to_bounds_and_estimate_matches() -> None:
    dist = LognormalLength(mean_tokens=1000.0, sigma=1.0, min_tokens=200, max_tokens=1500)
    out = dist.sample(_rng(2), 200_000)
    assert out.min() == 200 and out.max() == 1500
    assert dist.mean_tokens_estimate() == pytest.approx(out.mean(), rel=5e-3)
    capped = np.minimum(out, 800)
    assert dist.mean_tokens_estimate(cap_tokens=800) == pytest.approx(capped.mean(), rel=5e-3)


def test_lognormal_sigma_zero_is_constant() -> None:
    dist = LognormalLength(mean_tokens=99.6, sigma=0.0)
    assert dist.sample(_rng(), 3).tolist() == [100, 100, 100]
    assert dist.mean_tokens_estimate() == 100.0
    assert LognormalLength(mean_tokens=3, sigma=0.0, min_tokens=5).mean_tokens_estimate() == 5.0


def test_lognormal_min_greater_than_max_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        LognormalLength(mean_tokens=10, sigma=0.5, min_tokens=5, max_tokens=3)
    assert info.value.errors()[0]["msg"] == "Value error, min_tokens = 5 must be <= max_tokens = 3"


@pytest.mark.parametrize("field, value", [("mean_tokens", -5), ("mean_tokens", float("inf")), ("sigma", -1.0)])
def test_lognormal_rejects_bad_parameters(field: str, value: float) -> None:
    kwargs = {"mean_tokens": 10.0, "sigma": 0.5, field: value}
    with pytest.raises(ValidationError, match=field):
        LognormalLength(**kwargs)


def test_discriminated_union_and_frozen_models() -> None:
    adapter = TypeAdapter(LengthDist)
    dist = adapter.validate_python({"kind": "lognormal", "mean_tokens": 5, "sigma": 0.1})
    assert isinstance(dist, LognormalLength)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "fixed", "tokens": 3, "extra": 1})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "uniform", "tokens": 3})
    with pytest.raises(ValidationError):
        dist.sigma = 2.0  # type: ignore[misc]


def test_empirical_samples_only_file_values(tmp_path: Path) -> None:
    _write_csv(tmp_path, "id,length\na,5\nb,17\n\nc,230\n")
    dist = EmpiricalLength(path="lengths.csv")
    out = dist.sample(_rng(3), 1000, base_dir=tmp_path)
    assert out.dtype == np.int64
    assert set(out.tolist()) == {5, 17, 230}
    assert np.array_equal(out, dist.sample(_rng(3), 1000, base_dir=tmp_path))
    assert dist.mean_tokens_estimate(tmp_path) == pytest.approx(84.0)
    assert dist.mean_tokens_estimate(tmp_path, cap_tokens=10) == pytest.approx(25.0 / 3)


def test_empirical_other_column_absolute_path_and_reload(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, "tokens\n4\n4\n", name="t.csv")
    dist = EmpiricalLength(path=str(path), column="tokens")
    assert dist.sample(_rng(), 3, base_dir=Path("/elsewhere")).tolist() == [4, 4, 4]
    path.write_text("tokens\n9\n")  # changed file (size differs) is read again
    assert dist.sample(_rng(), 2).tolist() == [9, 9]


def test_empirical_missing_file(tmp_path: Path) -> None:
    dist = EmpiricalLength(path="nope.csv")
    resolved = (tmp_path / "nope.csv").resolve()
    expected = f"path = 'nope.csv' cannot be read (resolved to {resolved}): No such file or directory"
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        dist.sample(_rng(), 1, base_dir=tmp_path)


def test_empirical_missing_column(tmp_path: Path) -> None:
    _write_csv(tmp_path, "tokens,id\n5,a\n")
    expected = "lengths.csv: column = 'length' is not a column of the file (columns: 'tokens', 'id')"
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        EmpiricalLength(path="lengths.csv").load(tmp_path)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("length\n1\n2\n3\n-3\n", "lengths.csv: length = -3 (row 5) must be >= 1"),
        ("length\n0\n", "lengths.csv: length = 0 (row 2) must be >= 1"),
        ("length\n1\n2.5\n", "lengths.csv: length = 2.5 (row 3) must be an integer >= 1"),
        ("length\nabc\n", "lengths.csv: length = 'abc' (row 2) must be an integer >= 1"),
        ("length\n", "lengths.csv: column = 'length' has no values, need at least one length"),
    ],
)
def test_empirical_bad_values(tmp_path: Path, body: str, expected: str) -> None:
    _write_csv(tmp_path, body)
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        EmpiricalLength(path="lengths.csv").sample(_rng(), 1, base_dir=tmp_path)


def test_empirical_cached_array_is_read_only(tmp_path: Path) -> None:
    _write_csv(tmp_path, "length\n3\n")
    values = EmpiricalLength(path="lengths.csv").load(tmp_path)
    with pytest.raises(ValueError):
        values[0] = 4
