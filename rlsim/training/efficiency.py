"""Trainer efficiency: which MFU a training (or logprob) pass runs at, and where it came from.

Order of precedence: ``rl.training.mfu`` (the scenario's override) > the hardware profile's
optional ``training`` section (``mfu_dense`` / ``mfu_moe``, each with its source) >
:data:`DEFAULT_MFU_DENSE` / :data:`DEFAULT_MFU_MOE` below.

The defaults are assumptions, not measurements: a Megatron-class bf16 trainer on dense models
is usually quoted at roughly 35-50 % MFU in pre-training; an RL trainer sees variable-length
packed micro-batches, small global batches and frequent optimizer steps, so it sits at the low
end; MoE models lose more (expert all-to-all, router, grouped-GEMM load imbalance).  Values are
deliberately conservative and every report should show which one was used (``mfu_source``).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MFU_DENSE", "DEFAULT_MFU_MOE", "resolve_mfu"]

#: Trainer MFU of a dense model when neither the scenario nor the profile sets one (assumed).
DEFAULT_MFU_DENSE = 0.35
#: Trainer MFU of an MoE model when neither the scenario nor the profile sets one (assumed).
DEFAULT_MFU_MOE = 0.20


def resolve_mfu(arch, hw, mfu_override: float | None) -> tuple[float, str]:
    """``(mfu, source)`` for model ``arch`` on profile ``hw``.

    ``mfu_override`` (``TrainingConfig.mfu``) wins; else the profile's ``training.mfu_moe`` for
    an MoE model / ``training.mfu_dense`` otherwise; else the module defaults.  ``source`` says
    which, e.g. ``"gb200 profile training.mfu_dense (assumed: ...)"``.
    """
    if mfu_override is not None:
        return float(mfu_override), "rl.training.mfu"
    key = "mfu_moe" if arch.is_moe else "mfu_dense"
    section = getattr(hw, "training", None)
    if section is not None:
        return float(getattr(section, key)), f"{hw.name} profile training.{key} ({section.mfu_source})"
    default = DEFAULT_MFU_MOE if arch.is_moe else DEFAULT_MFU_DENSE
    return default, f"rlsim default {key} = {default} (assumed; {hw.name} profile has no training section)"
