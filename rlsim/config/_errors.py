"""Turn a pydantic ValidationError into one ConfigError line: file, field path, value, rule."""

from __future__ import annotations

import difflib
from typing import Any

import pydantic

from rlsim.errors import ConfigError

__all__ = ["validation_error_to_config_error", "closest"]

_MISSING = object()


def closest(word: str, candidates: list[str]) -> str | None:
    """The closest candidate to ``word`` (difflib ratio >= 0.5), or None."""
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return found[0] if found else None


def validation_error_to_config_error(
    err: pydantic.ValidationError, source: str | None, data: Any, model: type[pydantic.BaseModel] | None = None, prefix: str = ""
) -> ConfigError:
    """Convert the first error of ``err`` into ``source: a.b.c = value rule``.

    ``data`` is the raw mapping that was validated (to show the offending value);
    ``model`` is the pydantic class (to suggest the closest valid key for unknown ones).
    """
    first = err.errors()[0]
    loc = _clean_loc(first["loc"])
    path = prefix + ".".join(str(p) for p in loc)
    value = _lookup(data, loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1]) if model is not None else []
        hint = closest(str(loc[-1]), valid)
        rule = "is not a known key" + (f" (did you mean '{hint}'?)" if hint else "")
        if valid:
            rule += f"; valid keys: {', '.join(sorted(valid))}"
        return ConfigError(f"{_where(source, path)} {rule}")
    if kind == "missing":
        return ConfigError(f"{_where(source, path)} is required but missing")
    msg = first["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    msg = msg.replace("Value error, ", "").replace("value error, ", "")
    shown = "<missing>" if value is _MISSING else repr(value)
    return ConfigError(f"{_where(source, path)} = {shown}: {msg}")


def _where(source: str | None, path: str) -> str:
    return f"{source}: {path}" if source else path


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's discriminator tags (e.g. 'lognormal') from union locations."""
    out: list = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(part)
    return tuple(out)


def _lookup(data: Any, loc: tuple) -> Any:
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
        else:
            # a discriminated-union tag inserted by pydantic: skip it
            if isinstance(cur, dict) and isinstance(part, str):
                continue
            return _MISSING
    return cur


def _fields_at(model: type[pydantic.BaseModel] | None, loc: tuple) -> list[str]:
    """Field names of the (nested) model at ``loc``; best effort through unions."""
    import typing

    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, pydantic.BaseModel)):
            return []
        field = cur.model_fields.get(str(part))
        if field is None:
            # a union tag: pick the union member whose kind matches
            return []
        ann = field.annotation
        cur = _unwrap(ann, typing)
    if isinstance(cur, type) and issubclass(cur, pydantic.BaseModel):
        return list(cur.model_fields)
    return []


def _unwrap(ann: Any, typing: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(ann)[0], typing)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0], typing)
        return None
    return ann
