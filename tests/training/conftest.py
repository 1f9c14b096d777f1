"""Fixtures for the training tests: a profile with round, pinned numbers (independent of ongoing
calibration of the shipped YAMLs)."""

from __future__ import annotations

import pytest

from rlsim.hardware import load_profile
from rlsim.hardware.profile import HardwareProfile


def _pinned(name: str, *, training: dict | None | str = "keep", **gpu) -> HardwareProfile:
    """``name``'s profile with round collective / elementwise numbers:
    NCCL reduce-scatter and all-gather alpha 10 us, busbw_eff 0.5; scale-out alpha 20 us,
    busbw_eff 0.5; elementwise mem_eff 1.0, latency 0.  ``training``: a dict, None (section
    removed) or "keep"."""
    d = load_profile(name).model_dump()
    for op in ("reduce_scatter", "all_gather"):
        d["collectives"]["nccl"][op] = {"alpha_us": 10.0, "busbw_eff": 0.5}
    d["collectives"]["scale_out"] = {"alpha_us": 20.0, "busbw_eff": 0.5}
    d["efficiency"]["elementwise"] = {"mem_eff": 1.0, "latency_us": 0.0}
    if training != "keep":
        d["training"] = training
    d["gpu"].update(gpu)
    return HardwareProfile.model_validate(d)


@pytest.fixture
def pinned():
    """Factory: ``pinned("gb200", training=None, hbm_capacity_gib=...)``."""
    return _pinned
