"""Tiny sweep settings shared by the analysis tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sweep_settings import GRID, SYNC, TINY  # noqa: E402

@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """8 points of qwen8b_sync on tiny settings (one process), with its output file."""
    from rlsim.analysis import sweep

    out = tmp_path_factory.mktemp("sweep") / "r.parquet"
    df = sweep(SYNC, grid=GRID, overrides=TINY, out=out, workers=1)
    return df, out
