"""What a run's numbers rest on that a user should know (DESIGN 2.7): every run reports these
in its output and ``summary.json`` (``warnings``)."""

from __future__ import annotations

from rlsim.sim.build import Resolved

__all__ = ["run_warnings", "model_warnings"]


def run_warnings(res: Resolved) -> list[str]:
    """Uncalibrated hardware, extrapolated collectives, and :func:`model_warnings`."""
    hw, out = res.hw, []
    if hw.calibration.status != "calibrated":
        out.append(f"hardware profile {hw.name} is {hw.calibration.status}: {hw.calibration.source}")
    if res.tp > 1 and hw.collectives_extrapolated(res.tp):
        out.append(f"{hw.name}: collectives over {res.tp} GPUs extrapolate beyond the measured group sizes")
    return out + [w for w in model_warnings(res) if w not in out]


def model_warnings(res: Resolved) -> list[str]:
    """Kernels timed by a fallback, what the model has that is not timed, a drafter that does
    not fit its target, and the settings of rlsim.sim.config_warnings."""
    out: list[str] = []
    fwd = res.forward_model()
    out += [w for w in fwd.warnings if w not in out]
    out += [f"{res.arch.name}: {n}" for n in fwd.notes]
    if res.drafter is not None and getattr(res.drafter, "fwd", None) is not None:
        from rlsim.models.compat import draft_target_warnings

        out += list(draft_target_warnings(res.drafter.fwd.arch, res.arch))
    from rlsim.sim.config_warnings import setting_warnings

    out += [w for w in setting_warnings(res) if w not in out]
    return out
