"""Profiles for GPUs without measurements: datasheet + efficiencies of a calibrated GPU of the
same architecture (DESIGN.md section 9), labelled ``transferred``."""

from __future__ import annotations

from pathlib import Path

from rlsim.calibration.profile_io import write_profile
from rlsim.hardware.profile import HardwareProfile, load_profile

__all__ = ["transfer_efficiencies"]


def transfer_efficiencies(source: str, target: str, *, out: str | Path | None = None) -> HardwareProfile:
    """Copy ``source``'s efficiency and collective parameters (and benchmark effects) into
    ``target``, keeping ``target``'s datasheet, topology and price; status ``transferred``."""
    src, dst = load_profile(source, path="--from"), load_profile(target, path="--to")
    data = dst.model_dump(mode="python")
    s = src.model_dump(mode="python")
    data["efficiency"] = s["efficiency"]
    data["collectives"] = s["collectives"]
    data["calibration"] = {
        "status": "transferred",
        "source": f"datasheet + Hopper efficiencies transferred from {src.name} (UNCALIBRATED on {dst.name}: "
                  f"no {dst.name} measurements; {src.name}: {src.calibration.source})",
        "vllm_version": src.calibration.vllm_version,
        "errors": {k: v for k, v in src.calibration.errors.items()},
        "benchmark_effects": dict(src.calibration.benchmark_effects),
    }
    note = f"transferred from {src.name} by rlsim calibrate transfer (errors measured on {src.name}, not {dst.name})"
    comments = {}
    for sec in ("efficiency", "collectives"):
        _mark(s[sec], (sec,), comments, note)
    comments[("calibration",)] = note
    target_path = Path(out) if out is not None else Path(dst.source)
    header = [f"Efficiencies and collectives transferred from {src.name} (fitted there); datasheet, topology and",
              f"price are {dst.name}'s own.  Status: transferred = not calibrated on this GPU."]
    return write_profile(Path(dst.source), data, target_path, comments, header)


def _mark(d: dict, path: tuple, out: dict, note: str) -> None:
    for k, v in d.items():
        if isinstance(v, dict) and not all(isinstance(x, int) for x in v):
            _mark(v, path + (k,), out, note)
        elif v is not None and not isinstance(v, str):
            out[path + (k,)] = note
