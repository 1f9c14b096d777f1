"""Reproducible result folders: what ``--out`` records so ``rlsim run --from DIR`` reruns it.

``DIR/scenario.resolved.yaml`` is the scenario after ``--set`` and ``--seed`` (the YAML mapping
the run validated, keys sorted), and ``DIR/run.json`` records:

* ``command``: the command line (``sys.argv``) and the run options that are not scenario fields
  (``seeds``, ``baseline``, ``baseline_mode``);
* ``rlsim_version`` (installed package metadata) and ``git_commit`` of the source tree (with
  ``git_dirty``: uncommitted changes to tracked files), or null outside a git checkout;
* ``scenario``: the original file, its SHA-256, the ``--set`` overrides and the folder relative
  paths in the scenario resolve against (``base_dir``);
* ``hardware_profile``: the profile file, its SHA-256 and its calibration status / source;
* ``seed``.

:func:`load_reproduction` reads both back; the rerun loads the resolved mapping with the original
source name and base folder, so its ``summary.json`` is byte-identical to the first run's
(tests/results/test_reproduce.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from rlsim.errors import ConfigError

__all__ = ["RESOLVED_NAME", "RUN_JSON_NAME", "write_reproduction", "load_reproduction", "git_commit", "rlsim_version"]

RESOLVED_NAME = "scenario.resolved.yaml"
RUN_JSON_NAME = "run.json"


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def rlsim_version() -> str:
    """The installed rlsim version (package metadata), ``unknown`` when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rlsim")
    except PackageNotFoundError:
        return "unknown"


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the source tree rlsim runs from; (None, None) outside a checkout."""
    import rlsim

    root = Path(rlsim.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def _profile_file(loaded) -> Path | None:
    from rlsim.hardware.profile import profiles_dir

    name = loaded.scenario.cluster.hardware
    if "/" in name or name.endswith((".yaml", ".yml")):
        p = Path(name).expanduser()
        return p if p.is_absolute() else loaded.base_dir / p
    return profiles_dir() / f"{name}.yaml"


def write_reproduction(out: Path, loaded, overrides: list[str], options: dict, argv: list[str] | None = None) -> list[Path]:
    """Write ``scenario.resolved.yaml`` and ``run.json`` into ``out`` (module docstring)."""
    from rlsim.hardware import load_profile

    out = Path(out)
    resolved = out / RESOLVED_NAME
    resolved.write_text(yaml.safe_dump(loaded.raw, sort_keys=True, allow_unicode=True), encoding="utf-8")
    commit, dirty = git_commit()
    prof = _profile_file(loaded)
    hw = load_profile(str(prof)) if prof is not None and prof.is_file() else None
    src = Path(loaded.source)
    info = {
        "command": {"argv": list(sys.argv if argv is None else argv), "options": options},
        "rlsim_version": rlsim_version(), "git_commit": commit, "git_dirty": dirty,
        "scenario": {"source": loaded.source, "sha256": _sha(src), "overrides": list(overrides),
                     "base_dir": str(loaded.base_dir), "name": loaded.scenario.name, "model": loaded.scenario.model.name,
                     "hardware": loaded.scenario.cluster.hardware, "num_gpus": loaded.scenario.cluster.num_gpus},
        "hardware_profile": None if hw is None else {
            "file": str(prof), "sha256": _sha(prof), "name": hw.name, "calibration_status": hw.calibration.status,
            "calibration_source": hw.calibration.source, "vllm_version": hw.calibration.vllm_version},
        "seed": loaded.scenario.seed,
    }
    run = out / RUN_JSON_NAME
    run.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [resolved, run]


def load_reproduction(folder: Path, overrides: list[str] = ()) -> tuple[object, dict]:
    """(LoadedScenario, run.json) of a result folder written by :func:`write_reproduction`;
    ``overrides`` apply on top (the rerun is then not the recorded one)."""
    from rlsim.analysis.worker import load_text

    folder = Path(folder)
    resolved, run = folder / RESOLVED_NAME, folder / RUN_JSON_NAME
    for p in (resolved, run):
        if not p.is_file():
            raise ConfigError(f"--from = {str(folder)!r}: {p.name} not found (write one with rlsim run --out)")
    try:
        info = json.loads(run.read_text(encoding="utf-8"))
        src = info["scenario"]["source"]
        base = Path(info["scenario"]["base_dir"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{run}: not a run record ({type(exc).__name__}: {exc})") from None
    if not base.is_dir():  # the folder moved to another machine: relative paths from the folder itself
        base = folder.resolve()
    loaded = load_text(resolved.read_text(encoding="utf-8"), src, str(base), list(overrides), None)
    return loaded, info
