"""The switch-fabric collective model: monotone in the group size on one fabric (property),
physical extrapolation beyond the measured sizes, and no 'fit:' label on an unmeasured size."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rlsim.hardware import collective_time_s, list_profiles, load_profile
from rlsim.hardware.collectives import bus_factor, measured_sizes, ring_steps
from rlsim.hardware.profile import PROFILES_DIR, HardwareProfile

US = 1e-6
OPS = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
SIZES = np.logspace(2, 10, 33)  # 100 B .. 10 GB


@pytest.mark.parametrize("name", list_profiles())
def test_time_never_decreases_with_group_size_on_one_fabric(name):
    """At fixed bytes, more GPUs never cost less for NCCL's collectives: inside the NVLink
    domain (every n) and across domains (whole numbers of domains).  (vLLM's custom all-reduce
    is exempt: its fixed one-shot choice at 2 GPUs is measured slower than two-shot at 4 --
    5.2 ms vs 2.9 ms for 1 GiB on GB200 -- and the model reproduces that.)"""
    hw = load_profile(name)
    g = hw.topology.nvlink_domain_gpus
    fabrics = [list(range(2, g + 1)), [g * r for r in range(2, 9)]]
    for op in OPS:
        for ns in fabrics:
            t = np.array([collective_time_s(hw, op, SIZES, n, backend="nccl") for n in ns])
            rel = np.diff(t, axis=0) / t[:-1]
            assert rel.min() >= -1e-12, (name, op, ns[int(np.argmin(rel.min(axis=1)))], rel.min())


def test_beyond_the_measured_sizes_is_physics_not_fit():
    """GB200: 8 to 72 GPUs add one step latency per extra ring step and keep the 4-GPU link
    efficiency (NVL72 is non-blocking); an 8-GPU all-reduce is never faster than the measured 4."""
    hw = load_profile("gb200")
    ar = hw.collectives.nccl.all_reduce
    assert measured_sizes(ar) == [2, 4] and hw.collectives.measured_max_gpus == 4
    step = hw.collectives.nccl_step_us
    big_step = hw.collectives.nccl_large_step_us
    assert step > 0 and big_step > 0
    for n in (8, 16, 72):
        small = 4096.0
        ll = (ar.alpha_us[4] + step * (ring_steps("all_reduce", n) - 6)) * US + small * bus_factor("all_reduce", n) / (900e9 * ar.busbw_eff[4])
        simple = (ar.large_alpha_us[4] + big_step * (ring_steps("all_reduce", n) - 6)) * US + \
            small * bus_factor("all_reduce", n) / (900e9 * ar.large_busbw_eff[4])
        assert collective_time_s(hw, "all_reduce", small, n, backend="nccl") == pytest.approx(min(ll, simple), rel=1e-12)
    for b in (4096.0, 2**20, 2**28):
        assert collective_time_s(hw, "all_reduce", b, 8) >= collective_time_s(hw, "all_reduce", b, 4)


def test_hierarchical_all_reduce_sums_stages_on_the_same_links():
    """16 H100s: reduce-scatter and all-gather inside each node both use NVLink (their times add),
    so the two-node all-reduce is not faster than the one-node one (it was, with the max)."""
    hw = load_profile("h100_sxm")
    for b in (2**24, 2**28, 2**30):
        assert collective_time_s(hw, "all_reduce", b, 16) > collective_time_s(hw, "all_reduce", b, 8)


def test_nvls_is_independent_of_the_group_size():
    d = load_profile("gb200").model_dump()
    d["collectives"]["nccl"]["all_reduce"].update(nvls_alpha_us=30.0, nvls_algbw_eff=0.6)
    hw = HardwareProfile.model_validate(d)
    b = 2.0**30
    nvls = 30e-6 + b / (900e9 * 0.6)
    for n in (8, 16, 72):
        assert collective_time_s(hw, "all_reduce", b, n) == pytest.approx(nvls, rel=1e-12)


_MAP = re.compile(r"^\s*(?P<key>[a-z_]+): \{(?P<body>[^}]*)\}\s*#\s*(?P<comment>.*)$")


@pytest.mark.parametrize("name", list_profiles())
def test_no_fitted_label_on_an_unmeasured_group_size(name):
    """Every per-group-size map labelled 'fit:' in a shipped profile holds only group sizes up to
    measured_max_gpus (extrapolated values are computed, never written as fitted); with the
    measurements present, only the sizes the data holds for that op."""
    path = PROFILES_DIR / f"{name}.yaml"
    hw = load_profile(name)
    measured = _measured_sizes(name)
    section, op = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^(\s*)([a-z_0-9]+):\s*(#.*)?$", line)
        if head and len(head.group(1)) == 4:
            op = head.group(2)
        if head and len(head.group(1)) == 0:
            section = head.group(2)
        m = _MAP.match(line)
        if not m or "fit:" not in m["comment"] or section != "collectives":
            continue  # per-group-size maps live in collectives (efficiency maps are keyed otherwise)
        sizes = [int(kv.split(":")[0]) for kv in m["body"].split(",") if kv.strip()]
        assert max(sizes) <= hw.collectives.measured_max_gpus, (name, line)
        if section == "collectives" and measured is not None and op in measured:
            assert set(sizes) <= measured[op], (name, op, line, measured[op])


def _measured_sizes(name: str) -> dict[str, set[int]] | None:
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    f = shared / "traces" / "aiconfigurator" / name / "comm" / "nccl" / "2.29.2" / "nccl_perf.parquet"
    if not f.is_file():
        return None
    import pandas as pd

    df = pd.read_parquet(f)
    return {op: set(int(n) for n in g["num_gpus"].unique()) for op, g in df.groupby("op_name")}
