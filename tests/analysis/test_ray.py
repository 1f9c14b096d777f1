"""The Ray backend on a 2-CPU local instance returns the local backend's rows exactly
(skipped when Ray is not installed: pip install -e ".[dev,ray]")."""

from __future__ import annotations

import pandas as pd
import pytest
from sweep_settings import GRID, SYNC, TINY

pytest.importorskip("ray")


def test_ray_rows_identical_to_local(tiny_sweep, tmp_path):
    from rlsim.analysis import sweep

    df, _ = tiny_sweep
    ray_df = sweep(SYNC, grid=GRID, overrides=TINY, out=tmp_path / "ray.parquet", backend="ray", workers=2)
    assert ray_df.attrs["stats"]["computed"] == len(df)
    pd.testing.assert_frame_equal(ray_df, df)
