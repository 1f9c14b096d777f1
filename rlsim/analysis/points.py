"""Sweep axes (``--grid`` / ``--zip``), the points they expand to, and their keys.

* ``--grid path=v1,v2,...``: a full-factorial axis; several ``--grid`` multiply.
* ``--zip path=v1,v2,...``: zipped axes; every ``--zip`` must have the same number of values
  and they advance together (one axis of the product).
* Values are YAML (``0.6``, ``true``, ``null``, ``fp8``); commas inside ``[...]`` / ``{...}``
  do not split; ``a..b`` (integers) is the inclusive range, e.g. ``k=1..8``.

A point's key is ``sha256(scenario file bytes, base overrides + point overrides, seed)``: the
same command on the same file finds its finished points again; editing the scenario file
recomputes everything.  The baseline key hashes the validated scenario with the speculative
settings (``rollout.engine.speculative_config``, ``rl.drafter``) removed, plus the seed: points
that differ only in k or acceptance share one no-speculation baseline.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import types
import typing

from pydantic import BaseModel

from rlsim._yaml import parse_yaml_value
from rlsim.config.work import MAX_POINTS
from rlsim.errors import ConfigError, short_repr

__all__ = ["parse_axis", "expand", "point_key", "baseline_key", "check_path", "file_sha"]

_RANGE = re.compile(r"^\s*(-?\d{1,18})\s*\.\.\s*(-?\d{1,18})\s*$")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_axis(spec: str, option: str = "--grid") -> tuple[str, list]:
    """``"a.b=1,2,3"`` -> ``("a.b", [1, 2, 3])``; one-line ConfigError on a malformed spec."""
    if "=" not in spec:
        raise ConfigError(f"{option} {short_repr(spec)} must look like path.to.field=v1,v2,...")
    path, raw = spec.split("=", 1)
    path = path.strip()
    if not path or not all(path.split(".")):
        raise ConfigError(f"{option} {short_repr(spec)}: field path {short_repr(path)} has an empty component")
    m = _RANGE.match(raw)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
            raise ConfigError(f"{option} {short_repr(spec)}: range {lo}..{hi} is empty")
        if hi - lo + 1 > MAX_POINTS:
            raise ConfigError(f"{option} {short_repr(spec)}: range {lo}..{hi} has {hi - lo + 1:,} values, more than a "
                              f"sweep may have points ({MAX_POINTS:,})")
        return path, list(range(lo, hi + 1))
    values = []
    for item in _split_top(raw):
        if not item.strip():
            raise ConfigError(f"{option} {short_repr(spec)}: empty value in the list")
        values.append(parse_yaml_value(item, f"{option} {path}"))
    return path, values


def _fmt(v) -> str:
    """A value as the YAML text ``apply_overrides`` parses back to the same value."""
    if isinstance(v, str):
        try:
            parsed = parse_yaml_value(v, "value") if v else None
        except ConfigError:
            return json.dumps(v)
        return v if parsed == v else json.dumps(v)
    return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")


def expand(grid: list[tuple[str, list]], zipped: list[tuple[str, list]]) -> list[dict]:
    """Points as ``{path: value}`` dicts, in a fixed order (grid axes in the order given, the
    zipped axis last, the last axis varying fastest)."""
    paths = [p for p, _ in grid] + [p for p, _ in zipped]
    dup = {p for p in paths if paths.count(p) > 1}
    if dup:
        raise ConfigError(f"--grid/--zip: field {sorted(dup)[0]!r} is given more than once")
    size = math.prod(len(v) for _, v in grid) * (len(zipped[0][1]) if zipped else 1)
    if size > MAX_POINTS:
        raise ConfigError(f"--grid/--zip: {size:,} points, more than a sweep may have ({MAX_POINTS:,})")
    axes = [[(p, v) for v in vals] for p, vals in grid]
    if zipped:
        n = {len(v) for _, v in zipped}
        if len(n) > 1:
            raise ConfigError("--zip: every zipped field needs the same number of values, got "
                              + ", ".join(f"{p} ({len(v)})" for p, v in zipped))
        axes.append([tuple(kv for kv in zip([p for p, _ in zipped], vals))
                     for vals in zip(*[v for _, v in zipped])])
    out = []
    for combo in itertools.product(*axes) if axes else [()]:
        point = {}
        for item in combo:
            if item and isinstance(item[0], tuple):
                point.update(dict(item))
            else:
                point[item[0]] = item[1]
        out.append(point)
    return out


def overrides_of(point: dict) -> list[str]:
    """``{path: value}`` -> ``["path=value", ...]`` (``--set`` syntax)."""
    return [f"{p}={_fmt(v)}" for p, v in point.items()]


def file_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def point_key(scenario_sha: str, overrides: list[str], seed: int) -> str:
    """The resume key of one point (16 hex digits)."""
    blob = json.dumps({"scenario": scenario_sha, "overrides": list(overrides), "seed": int(seed)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def baseline_key(scenario_sha: str, scenario, seed: int) -> str:
    """Key of the no-speculation baseline a point shares (see the module docstring)."""
    d = scenario.model_dump(mode="json")
    d.get("rollout", {}).get("engine", {}).pop("speculative_config", None)
    if isinstance(d.get("rl"), dict):
        d["rl"].pop("drafter", None)
    d.pop("seed", None)
    d.pop("name", None)
    d.pop("description", None)
    blob = json.dumps({"scenario": scenario_sha, "resolved": d, "seed": int(seed)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _models_of(tp) -> list[type[BaseModel]]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _models_of(a)]
    if origin is typing.Annotated:
        return _models_of(typing.get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def check_path(path: str, option: str = "--grid") -> None:
    """Fail fast on a field path the scenario schema does not have (a typo would otherwise
    make every point a failed row)."""
    from rlsim.config.scenario import Scenario

    if path == "seed":
        raise ConfigError(f"{option} seed: seeds are swept with --seeds N (from --seed FIRST), not as an axis "
                          "(every row already has a seed column)")
    models: list[type[BaseModel]] = [Scenario]
    keys = path.split(".")
    for i, key in enumerate(keys):
        fields = {}
        for m in models:
            fields.update(m.model_fields)
        if not fields:
            return  # a free-form mapping (or a type we do not walk): let validation speak
        if key not in fields:
            where = ".".join(keys[:i]) or "the scenario"
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{option} {path}: {key!r} is not a field of {where} (fields: {known})")
        models = _models_of(fields[key].annotation)
        if not models and i < len(keys) - 1:
            return
