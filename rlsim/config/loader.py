"""Load a scenario YAML, apply ``--set a.b.c=value`` overrides, validate once."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from rlsim._pydantic_errors import validate_strict
from rlsim._yaml import parse_yaml_value, read_yaml_mapping
from rlsim.config.rules import check_rules
from rlsim.config.scenario import Scenario
from rlsim.errors import ConfigError, short_repr

__all__ = ["LoadedScenario", "load_scenario", "scenario_from_dict", "apply_overrides", "read_yaml"]


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario plus where it came from (for messages and relative paths)."""

    scenario: Scenario
    source: str
    base_dir: Path
    raw: dict


def read_yaml(path: str | Path, what: str = "scenario") -> dict:
    """Read a YAML mapping; every failure is a one-line ConfigError naming the file."""
    return read_yaml_mapping(path, what)


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of ``data`` with each ``a.b.c=value`` applied (value parsed as YAML)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {short_repr(item)} must look like path.to.field=value")
        path, raw_value = item.split("=", 1)
        keys = [k for k in path.strip().split(".")]
        if not all(keys):
            raise ConfigError(f"--set {short_repr(item)}: field path {short_repr(path)} has an empty component")
        value = parse_yaml_value(raw_value, f"--set {path.strip()}")
        cur = out
        for k in keys[:-1]:
            if not isinstance(cur, dict):
                raise ConfigError(f"--set {short_repr(item)}: {short_repr(k)} is not inside a section")
            nxt = cur.get(k)
            if nxt is None:
                nxt = cur[k] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {short_repr(item)}: {k} is a value, not a section")
            cur = nxt
        cur[keys[-1]] = value
    return out


def scenario_from_dict(data: dict, source: str | None = None) -> Scenario:
    """Validate a raw mapping into a Scenario (strict types, finite numbers, path-like fields
    short enough for the filesystem, :mod:`rlsim.config.rules`), errors as one ConfigError line.
    Top-level keys starting with ``_`` are notes, ignored: a place for YAML anchors that merge
    keys (``<<: *base``) reuse."""
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}  # anchors for merges
    scenario = validate_strict(Scenario, data, source)
    check_rules(scenario, source)
    return scenario


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> LoadedScenario:
    """Load ``path``, apply overrides (and ``seed`` if given), validate."""
    raw = read_yaml(path)
    data = apply_overrides(raw, list(overrides))
    if seed is not None:
        data["seed"] = seed
    scenario = scenario_from_dict(data, str(path))
    return LoadedScenario(scenario=scenario, source=str(path), base_dir=Path(path).resolve().parent, raw=data)
