"""GPU hardware: profiles (datasheet + efficiencies + topology) and roofline op timing.

``load_profile("h100_sxm")`` reads ``hardware_profiles/h100_sxm.yaml`` (folder
:data:`PROFILES_DIR`, overridable with ``$RLSIM_PROFILES_DIR``); :mod:`rlsim.hardware.ops`
turns a profile and op shapes into seconds.
"""

from rlsim.hardware.profile import (
    PROFILES_DIR,
    PROFILES_DIR_ENV,
    HardwareProfile,
    by_group_size,
    describe_profile,
    list_profiles,
    load_profile,
    profiles_dir,
)
from rlsim.hardware.ops import (
    COLLECTIVE_OPS,
    collective_time_s,
    decode_attention_time_s,
    elementwise_time_s,
    expected_experts_touched,
    gemm_time_s,
    moe_layer_time_s,
    moe_time_s,
    p2p_time_s,
    prefill_attention_time_s,
)
from rlsim._pydantic_errors import validation_error_to_config_error

__all__ = [
    "PROFILES_DIR",
    "PROFILES_DIR_ENV",
    "HardwareProfile",
    "by_group_size",
    "describe_profile",
    "list_profiles",
    "load_profile",
    "profiles_dir",
    "COLLECTIVE_OPS",
    "collective_time_s",
    "decode_attention_time_s",
    "elementwise_time_s",
    "expected_experts_touched",
    "gemm_time_s",
    "moe_layer_time_s",
    "moe_time_s",
    "p2p_time_s",
    "prefill_attention_time_s",
    "validation_error_to_config_error",
]
