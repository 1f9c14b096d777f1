"""Hardware profiles: every shipped YAML loads, SI accessors, and one-line user errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pydantic
import pytest
import yaml

from rlsim.errors import ConfigError
from rlsim.hardware import (
    PROFILES_DIR,
    HardwareProfile,
    by_group_size,
    describe_profile,
    list_profiles,
    load_profile,
    validation_error_to_config_error,
)

SHIPPED = ["b200_sxm", "gb200", "h100_sxm", "h200_sxm"]


@pytest.fixture(scope="module")
def h100() -> HardwareProfile:
    return load_profile("h100_sxm")


@pytest.fixture(scope="module")
def h100_data() -> dict:
    return yaml.safe_load((PROFILES_DIR / "h100_sxm.yaml").read_text())


def write(tmp_path: Path, data, name: str = "hw.yaml") -> Path:
    f = tmp_path / name
    f.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return f


# --------------------------------------------------------------------------- shipped profiles


def test_list_profiles_has_the_four_shipped():
    assert list_profiles() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name):
    p = load_profile(name)
    assert p.name == name
    assert p.source.endswith(f"{name}.yaml")
    assert p.peak_flops("bf16") > 1e14
    assert p.peak_flops("fp8_block") == p.peak_flops("fp8") == pytest.approx(2 * p.peak_flops("bf16"), rel=2e-3)
    # fitted by `rlsim calibrate fit` (tests/calibration); H200 has no measurements
    assert p.calibration.status == ("transferred" if name == "h200_sxm" else "calibrated")
    json.dumps(describe_profile(p))  # JSON-able for `profiles show`


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_in_shipped_yaml_has_a_source_comment(name):
    for line in (PROFILES_DIR / f"{name}.yaml").read_text().splitlines():
        value = line.split("#")[0].partition(":")[2].strip()
        if value and (value[0].isdigit() or value[0] in "-{."):
            assert "#" in line, f"{name}.yaml: no source comment on {line.strip()!r}"


@pytest.mark.parametrize("name", SHIPPED)
def test_load_by_path_equals_load_by_name(name):
    assert load_profile(str(PROFILES_DIR / f"{name}.yaml")) == load_profile(name)


def test_h100_si_accessors(h100):
    assert h100.peak_flops("bf16") == 989e12
    assert h100.peak_flops("fp16") == 989e12
    assert h100.peak_flops("fp8") == 1979e12
    assert h100.hbm_bytes == 80 * 2**30
    assert h100.hbm_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert h100.nvlink_bw_bytes_per_s == pytest.approx(450e9)
    assert h100.nic_bw_bytes_per_s == pytest.approx(50e9)
    assert 0.5 < h100.gemm_eff("bf16").compute_eff <= 1.0  # calibrated (A3.1: ~0.8 for large shapes)
    assert h100.gemm_eff("fp16") is h100.gemm_eff("bf16")
    assert h100.moe_eff("fp8_block").per_routed_token_us >= 0


def test_h200_is_h100_efficiencies_with_its_own_datasheet(h100):
    h200 = load_profile("h200_sxm")
    assert h200.efficiency == h100.efficiency
    assert h200.collectives == h100.collectives
    assert h200.calibration.source.startswith("datasheet + Hopper efficiencies transferred from h100_sxm")
    assert h200.hbm_bandwidth_bytes_per_s == pytest.approx(4.8e12)
    assert h200.gpu.hbm_capacity_gib == 141


def test_gb200_topology_and_extrapolation_flag():
    gb = load_profile("gb200")
    assert gb.topology.nvlink_domain_gpus == 72
    assert gb.topology.gpus_per_node == 4
    assert gb.nic_bw_bytes_per_s == pytest.approx(100e9)
    assert gb.peak_flops("fp4") == 10000e12
    assert not gb.collectives_extrapolated(4)
    assert gb.collectives_extrapolated(8)


def test_profiles_are_frozen(h100):
    with pytest.raises(pydantic.ValidationError):
        h100.name = "x"


def test_by_group_size_interpolates_in_log2():
    m = {2: 6.0, 8: 18.0}
    assert by_group_size(m, 2) == 6.0
    assert by_group_size(m, 4) == pytest.approx(12.0)  # halfway in log2
    assert by_group_size(m, 16) == pytest.approx(24.0)  # extrapolated
    assert by_group_size(m, 16, clamp=True) == 18.0
    assert by_group_size(m, 1, clamp=True) == 6.0
    assert by_group_size({4: 3.0}, 64) == 3.0
    assert by_group_size(5.0, 64) == 5.0


# --------------------------------------------------------------------------- errors


def test_unknown_profile_suggests_the_closest():
    with pytest.raises(ConfigError) as e:
        load_profile("h100")
    assert str(e.value) == (
        "hardware = 'h100' is not a known profile (did you mean 'h100_sxm'?; "
        "known: b200_sxm, gb200, h100_sxm, h200_sxm)"
    )


def test_unknown_profile_names_its_source():
    with pytest.raises(ConfigError, match=r"^s\.yaml: hardware\.profile = 'tpu' is not a known profile \(known: b200"):
        load_profile("tpu", source="s.yaml", path="hardware.profile")


def test_missing_file():
    with pytest.raises(ConfigError) as e:
        load_profile("x.yaml")
    assert str(e.value) == "hardware = 'x.yaml': file not found"


def test_unknown_key_suggests_field(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    d["gpu"]["hbm_bandwdth"] = 3.35
    f = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert str(e.value) == f"{f}: gpu.hbm_bandwdth = 3.35 is not a known key (did you mean 'hbm_bandwidth_tb_per_s'?)"


def test_unknown_dtype_key_suggests_dtype(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    d["efficiency"]["gemm"]["bf61"] = {}
    f = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert str(e.value) == f"{f}: efficiency.gemm.bf61 = {{}} is not a known key (did you mean 'bf16'?)"


def test_efficiency_above_one(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    d["efficiency"]["gemm"]["bf16"]["compute_eff"] = 1.2
    f = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert str(e.value) == f"{f}: efficiency.gemm.bf16.compute_eff = 1.2 must be in (0, 1]"


def test_negative_latency(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    d["efficiency"]["decode_attention"]["latency_us"] = -1
    f = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert str(e.value) == f"{f}: efficiency.decode_attention.latency_us = -1 must be a finite number >= 0"


def test_bad_per_group_size_map(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    d["collectives"]["nccl"]["all_reduce"]["busbw_eff"] = {2: 0.7, 8: 1.5}
    f = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert str(e.value) == (
        f"{f}: collectives.nccl.all_reduce.busbw_eff = {{2: 0.7, 8: 1.5}} "
        "must be a number in (0, 1], or a map {num_gpus: a number in (0, 1]}"
    )


def test_domain_smaller_than_node(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    d["topology"]["nvlink_domain_gpus"] = 4
    f = write(tmp_path, d)
    with pytest.raises(ConfigError, match=r"topology\.nvlink_domain_gpus = 4 must be >= gpus_per_node = 8$"):
        load_profile(str(f))


def test_missing_key(tmp_path, h100_data):
    d = copy.deepcopy(h100_data)
    del d["gpu"]["sm_count"]
    f = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert str(e.value) == f"{f}: gpu.sm_count is required"


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    f = write(tmp_path, "name: x\ngpu: [1, 2\nother: 3\n")
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    msg = str(e.value)
    assert msg == f"{f}: line 3 invalid YAML: expected ',' or ']', but got ':'"
    assert "\n" not in msg


def test_top_level_not_a_mapping(tmp_path):
    f = write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_profile(str(f))


def test_profiles_dir_env_override_and_name_must_match_file(tmp_path, monkeypatch, h100_data):
    d = copy.deepcopy(h100_data)
    write(tmp_path, d, "my_gpu.yaml")
    monkeypatch.setenv("RLSIM_PROFILES_DIR", str(tmp_path))
    assert list_profiles() == ["my_gpu"]
    with pytest.raises(ConfigError) as e:
        load_profile("my_gpu")
    assert str(e.value) == f"{tmp_path / 'my_gpu.yaml'}: name = 'h100_sxm' must match the file name 'my_gpu'"
    d["name"] = "my_gpu"
    write(tmp_path, d, "my_gpu.yaml")
    assert load_profile("my_gpu").name == "my_gpu"


def test_unknown_dtype_names_profile_file(h100):
    with pytest.raises(ConfigError) as e:
        h100.peak_flops("fp4")
    assert str(e.value) == (
        f"{h100.source}: gpu.peak_tflops = 'fp4' is not a dtype this GPU has a peak for "
        "(known: bf16, fp16, fp8, fp8_block)"
    )
    with pytest.raises(ConfigError, match=r"h100_sxm\.yaml: efficiency\.gemm = 'int8' has no entry for this dtype"):
        h100.gemm_eff("int8")


def test_converter_is_generic():
    class Inner(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        speed_m_per_s: float

    class Outer(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        items: list[Inner]
        named: dict[str, Inner] = {}

    data = {"items": [{"speed_m_per_s": 1}, {"sped_m_per_s": 2}]}
    with pytest.raises(pydantic.ValidationError) as e:
        Outer.model_validate(data)
    err = validation_error_to_config_error(e.value, "f.yaml", data, model=Outer)
    assert str(err) == "f.yaml: items[1].sped_m_per_s = 2 is not a known key (did you mean 'speed_m_per_s'?)"

    data = {"items": [], "named": {"a": {"speed_m_per_s": "fast"}}}
    with pytest.raises(pydantic.ValidationError) as e:
        Outer.model_validate(data)
    err = validation_error_to_config_error(e.value, None, data, prefix="root")
    assert str(err) == "root.named.a.speed_m_per_s = 'fast' input should be a valid number, unable to parse string as a number"
