"""Kernel choice per (op, weight dtype, GPU) and the fallbacks a run reports (rlsim.hardware.kernels)."""

from __future__ import annotations

import pytest

from rlsim.errors import ConfigError
from rlsim.hardware import load_profile
from rlsim.hardware.kernels import gemm_kernel, moe_kernel, params_key
from rlsim.hardware.profile import HardwareProfile


def _without(name: str, op: str, key: str) -> HardwareProfile:
    d = load_profile(name).model_dump()
    d["efficiency"][op][key] = None
    return HardwareProfile.model_validate(d)


def test_params_key():
    assert [params_key(d) for d in ("fp16", "bf16", "int4_g32", "int4", "mxfp4", "fp4")] == [
        "bf16", "bf16", "int4", "int4", "mxfp4", "fp4"]


def test_own_kernels_have_no_fallback():
    h100, b200 = load_profile("h100_sxm"), load_profile("b200_sxm")
    for hw in (h100, b200):
        assert gemm_kernel(hw, "fp8_block").compute_dtype == "fp8" and gemm_kernel(hw, "fp8_block").fallback is None
        assert gemm_kernel(hw, "bf16").weight_bytes == 2.0
    c = gemm_kernel(b200, "fp4")
    assert (c.params_key, c.compute_dtype, c.weight_bytes, c.fallback) == ("fp4", "fp4", 0.5625, None)
    c = moe_kernel(b200, "fp4")
    assert (c.params_key, c.compute_dtype, c.fallback) == ("fp4", "fp4", None)


def test_nvfp4_on_hopper_is_marlin_w4a16():
    h100 = load_profile("h100_sxm")
    c = gemm_kernel(h100, "fp4")
    assert (c.params_key, c.compute_dtype, c.weight_bytes) == ("bf16", "bf16", 0.5625)
    assert c.fallback == ("gemm fp4 on h100_sxm: no FP4 tensor cores: vLLM runs weight-only FP4 through Marlin (W4A16); "
                          "timed with the gemm.bf16 parameters, bf16 tensor-core peak and 0.5625 bytes/weight (not "
                          "calibrated for this kernel)")
    m = moe_kernel(h100, "fp4")
    assert (m.params_key, m.compute_dtype) == ("int4", "bf16")  # the measured Marlin MoE
    assert "Marlin (W4A16)" in m.fallback and "moe.int4 parameters" in m.fallback
    assert moe_kernel(_without("h100_sxm", "moe", "int4"), "fp4").params_key == "bf16"


def test_weight_only_moe_kernels_are_calibrated_w4a16():
    for name in ("h100_sxm", "b200_sxm", "gb200", "h200_sxm"):
        hw = load_profile(name)
        for dtype, key, nbytes in (("mxfp4", "mxfp4", 0.53125), ("int4_g32", "int4", 0.5625)):
            c = moe_kernel(hw, dtype)
            assert (c.params_key, c.compute_dtype, c.weight_bytes, c.fallback) == (key, "bf16", nbytes, None), name


def test_uncalibrated_entries_fall_back_and_say_so():
    hw = _without("h100_sxm", "moe", "mxfp4")
    c = moe_kernel(hw, "mxfp4")
    assert c.params_key == "bf16"
    assert c.fallback == ("moe mxfp4 on h100_sxm: no calibrated mxfp4 fused MoE in this profile; timed with the moe.bf16 "
                          "parameters, bf16 tensor-core peak and 0.5312 bytes/weight (not calibrated for this kernel)")
    g = gemm_kernel(load_profile("h100_sxm"), "int4_g32")
    assert g.fallback.startswith("gemm int4_g32 on h100_sxm: weight-only 4-bit GEMM (Marlin / Machete W4A16) has no "
                                 "measured kernel")
    nofp4 = _without("b200_sxm", "gemm", "fp4")
    c = gemm_kernel(nofp4, "fp4")
    assert (c.params_key, c.compute_dtype) == ("bf16", "fp4") and "no calibrated NVFP4 gemm kernel" in c.fallback


def test_unknown_dtype_and_missing_fp8_entry_are_errors():
    hw = load_profile("h100_sxm")
    with pytest.raises(ConfigError, match=r"efficiency.gemm = 'int8' has no entry for this dtype \(known: fp32, bf16"):
        gemm_kernel(hw, "int8")
    with pytest.raises(ConfigError, match="efficiency.moe = 'fp8' has no entry for this dtype"):
        moe_kernel(_without("h100_sxm", "moe", "fp8"), "fp8")


def test_mxfp4_experts_run_with_mxfp8_activations_where_calibrated():
    """auto: Blackwell profiles have the MXFP4 x MXFP8 kernel (fp8 MMA), Hopper ones do not."""
    from rlsim.hardware.kernels import mxfp4_moe_dtype

    for name, auto in (("b200_sxm", "mxfp4_mxfp8"), ("gb200", "mxfp4_mxfp8"), ("h100_sxm", "mxfp4"), ("h200_sxm", "mxfp4")):
        hw = load_profile(name)
        assert mxfp4_moe_dtype(hw, "mxfp4") == auto, name
        assert mxfp4_moe_dtype(hw, "mxfp4", "bf16") == "mxfp4"
        assert mxfp4_moe_dtype(hw, "mxfp4", "mxfp8") == "mxfp4_mxfp8"
        assert mxfp4_moe_dtype(hw, "int4_g32", "mxfp8") == "int4_g32"  # only MXFP4 experts have the choice
    c = moe_kernel(load_profile("b200_sxm"), "mxfp4_mxfp8")
    assert (c.params_key, c.compute_dtype, c.weight_bytes, c.fallback) == ("mxfp4_mxfp8", "fp8", 0.53125, None)


def test_mxfp8_activations_without_the_kernel_fall_back_to_the_bf16_one():
    c = moe_kernel(load_profile("h100_sxm"), "mxfp4_mxfp8")
    assert (c.params_key, c.compute_dtype, c.weight_bytes) == ("mxfp4", "bf16", 0.53125)
    assert c.fallback == ("moe mxfp4_mxfp8 on h100_sxm: no calibrated MXFP4 x MXFP8 fused MoE in this profile; timed "
                          "with the moe.mxfp4 parameters, bf16 tensor-core peak and 0.5312 bytes/weight (not calibrated "
                          "for this kernel)")


def test_mxfp4_moe_activation_rejects_unknown_values():
    from rlsim.hardware.kernels import mxfp4_moe_dtype

    with pytest.raises(ValueError) as e:
        mxfp4_moe_dtype(load_profile("b200_sxm"), "mxfp4", "fp8")
    assert str(e.value) == "mxfp4_moe_activation = 'fp8'; expected one of auto, bf16, mxfp8"
