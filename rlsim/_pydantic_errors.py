"""Turn a pydantic ``ValidationError`` into rlsim's one-line ``ConfigError``.

Generic and reusable by any loader that validates raw YAML/JSON data with a pydantic model::

    try:
        Model.model_validate(data)
    except pydantic.ValidationError as err:
        raise validation_error_to_config_error(err, "scenario.yaml", data, model=Model) from None

Only one pydantic error is reported (users fix one thing at a time): the first unknown key if
there is one (a typo also makes the intended key "missing"), else the first error, as

    ``{source}: {dotted.path} = {value!r} {rule}``

where the path is pydantic's ``loc`` with union/tag members dropped (only the components that
exist in the raw data are kept), the value is looked up in the raw data, and the rule is
pydantic's message with its first letter lower-cased (``Value error, `` prefixes removed).
Unknown keys (``extra_forbidden``) read ``... is not a known key (did you mean 'x'?)``, the
suggestion coming from the field names of the model at that path (``difflib``); missing keys
read ``{source}: {path} is required``.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from rlsim.errors import ConfigError, format_location

__all__ = ["validation_error_to_config_error", "suggest", "annotations_at", "fields_of_model_at", "validate_strict", "check_finite"]

_MISSING = object()
M = typing.TypeVar("M", bound=pydantic.BaseModel)


def suggest(word: str, choices: Sequence[str], cutoff: float = 0.5) -> str | None:
    """The closest of ``choices`` to ``word`` (difflib ratio >= cutoff), a prefix match, or None."""
    choices = sorted(str(c) for c in choices)
    prefixed = [c for c in choices if c.startswith(word) or word.startswith(c)]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    if close:
        return close[0]
    return prefixed[0] if prefixed else None


def _get(container: Any, key: Any) -> Any:
    """``container[key]`` for a mapping (also matching int keys given as str) or a sequence."""
    if isinstance(container, Mapping):
        if key in container:
            return container[key]
        for k in container:  # YAML int keys vs pydantic's str loc, and vice versa
            if str(k) == str(key):
                return container[k]
        return _MISSING
    if isinstance(container, Sequence) and not isinstance(container, str) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else _MISSING
    return _MISSING


def _resolve_loc(loc: tuple[Any, ...], data: Any, missing_last: bool) -> tuple[list[Any], Any]:
    """Keep the ``loc`` parts that index into ``data``; return (parts, value or _MISSING)."""
    parts: list[Any] = []
    cur = data
    for i, part in enumerate(loc):
        nxt = _get(cur, part)
        if nxt is not _MISSING:
            parts.append(part)
            cur = nxt
        elif i == len(loc) - 1 and missing_last and isinstance(cur, Mapping):
            parts.append(part)
            return parts, _MISSING
        # else: a union member / discriminator tag / '[key]' marker -> not part of the user path
    return parts, cur


def _dotted(parts: Sequence[Any], prefix: str = "") -> str:
    out = prefix
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """pydantic model classes reachable through Optional / Union / Annotated / dict / list."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in args for m in _models_in(a)]
    return []


def _container_value(annotation: Any) -> Any | None:
    """For dict[K, V] / list[V] (possibly inside Optional/Annotated) return V."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _container_value(args[0])
    if origin in (typing.Union, types.UnionType):
        for a in args:
            v = _container_value(a)
            if v is not None:
                return v
        return None
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, tuple, Sequence) and args:
        return args[0]
    return None


def annotations_at(model: type[pydantic.BaseModel], parts: Sequence[Any], mapping_keys: bool = True) -> list[Any]:
    """The annotations that validate the value at ``parts`` below ``model`` (every union member
    kept; empty when the path leads nowhere).  A part steps into a model's field of that name and
    into a container's values (``mapping_keys=False``: only integer parts step into containers,
    i.e. list indices, not dict keys)."""
    current: list[Any] = [model]
    for part in parts:
        nxt: list[Any] = []
        for ann in current:
            for m in _models_in(ann):
                field = m.model_fields.get(str(part))
                if field is not None:
                    nxt.append(field.annotation)
            value_type = _container_value(ann)
            if value_type is not None and (mapping_keys or isinstance(part, int)):
                nxt.append(value_type)
        current = nxt
        if not current:
            break
    return current


def fields_of_model_at(model: type[pydantic.BaseModel], parts: Sequence[Any]) -> list[str] | None:
    """Field names of the model that validates the mapping at ``parts`` (None if unknown)."""
    current = annotations_at(model, parts)
    if not current:
        return None
    names = [name for ann in current for m in _models_in(ann) for name in m.model_fields]
    return sorted(set(names)) or None


def _tags_at(model: type[pydantic.BaseModel], parts: Sequence[Any], field: str) -> list[str]:
    """The ``field`` (discriminator) values of the union members that validate ``parts``."""
    current = annotations_at(model, parts)
    tags: list[str] = []
    for ann in current:
        for m in _models_in(ann):
            f = m.model_fields.get(field)
            if f is not None:
                tags += [str(a) for a in typing.get_args(f.annotation)]
    return list(dict.fromkeys(tags))


def _union_tag_error(first: dict, source: str | None, data: Any, model, prefix: str) -> ConfigError:
    """A discriminated union names its discriminator: ``path.kind = 'x' must be one of ...``."""
    field = str(first.get("ctx", {}).get("discriminator", "'kind'")).strip("'")
    parts, value = _resolve_loc(tuple(first["loc"]), data, missing_last=False)
    tags = _tags_at(model, parts, field) if model is not None else []
    if not tags and first["type"] == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(first["ctx"].get("expected_tags", "")).split(",") if t.strip()]
    path = _dotted([*parts, field], prefix)
    one_of = ", ".join(tags)
    if first["type"] == "union_tag_invalid" and isinstance(value, Mapping):
        return ConfigError.at(source, path, value.get(field), f"must be one of: {one_of}")
    if isinstance(value, Mapping):
        return ConfigError(f"{format_location(source, path)} is required (one of: {one_of})")
    return ConfigError.at(source, _dotted(parts, prefix) or "(top level)", value,
                          f"must be a mapping with a {field}: key (one of: {one_of})")


def _rule(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def validation_error_to_config_error(
    err: pydantic.ValidationError,
    source: str | None,
    data: Any,
    *,
    model: type[pydantic.BaseModel] | None = None,
    prefix: str = "",
) -> ConfigError:
    """Convert one error of ``err`` (the first unknown key, else the first) to a one-line ``ConfigError``.

    ``source`` names the file, ``data`` is the raw (pre-validation) data the model was given,
    ``model`` (optional) the validated class, used to suggest a field for unknown keys, and
    ``prefix`` is prepended to the dotted path (e.g. ``"hardware"`` for a nested section).
    """
    errors = err.errors(include_url=False)
    # a mistyped key yields "missing" + "extra_forbidden": the unknown key (with its suggestion)
    # is the more useful of the two, so it is reported first
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    kind = first["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _union_tag_error(first, source, data, model, prefix)
    loc = tuple(first["loc"])
    parts, value = _resolve_loc(loc, data, missing_last=(kind == "missing"))
    path = _dotted(parts, prefix) or "(top level)"
    if kind == "missing" or value is _MISSING:
        return ConfigError(f"{format_location(source, path)} is required")
    if kind == "extra_forbidden":
        known = fields_of_model_at(model, parts[:-1]) if model is not None else None
        rule = "is not a known key"
        if known:
            hint = suggest(str(parts[-1]), known)
            tags = [p for p in loc[:-1] if isinstance(p, str) and p not in parts]
            if hint == str(parts[-1]) and tags:  # valid for another member of a tagged union
                rule = f"is not a key of kind {tags[-1]!r} (remove it, or change kind)"
            else:
                rule += f" (did you mean {hint!r}?)" if hint else f" (known: {', '.join(known)})"
        return ConfigError.at(source, path, value, rule)
    return ConfigError.at(source, path, value, _rule(first["msg"]))


#: Largest integer magnitude accepted anywhere (exact in a float64; beyond it sizes overflow numpy's int64).
MAX_INT = 2**53
#: Largest float magnitude accepted anywhere: every input number is in human units (us, GiB, TB/s, ...), so
#: 1e15 is far beyond any real value, while 1e200 us squared (a standard deviation) overflows.
MAX_FLOAT = 1e15


def check_finite(data: Any, source: str | None, prefix: str = "") -> None:
    """Every number in raw ``data`` finite (``.inf`` / ``.nan`` are refused wherever they are:
    an infinite time or size is never a valid input), every integer within +-2**53 and every
    float within +-1e15 (:data:`MAX_FLOAT`); iterative, any depth."""
    stack: list[tuple[list[Any], Any]] = [([], data)]
    while stack:
        parts, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError.at(source, _dotted(parts, prefix) or "(top level)", value, "must be a finite number")
        if isinstance(value, float) and abs(value) > MAX_FLOAT:
            raise ConfigError.at(source, _dotted(parts, prefix) or "(top level)", value,
                                 "is out of range (numbers are at most 1e15 in magnitude: inputs are in us, GiB, "
                                 "TB/s, ...)")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise ConfigError.at(source, _dotted(parts, prefix) or "(top level)", value,
                                 "is out of range (integers are at most 2**53 = 9,007,199,254,740,992)")
        if isinstance(value, Mapping):
            stack.extend(([*parts, k], v) for k, v in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend(([*parts, i], v) for i, v in reversed(list(enumerate(value))))


def validate_strict(model: type[M], data: Any, source: str | None, *, prefix: str = "") -> M:
    """``model`` from raw YAML/JSON ``data`` in pydantic's strict mode (no bool as a number, no
    float as an int, no string as a number), finite numbers only; one-line ConfigError."""
    check_finite(data, source, prefix)
    try:
        return model.model_validate(data, strict=True)
    except pydantic.ValidationError as err:
        raise validation_error_to_config_error(err, source, data, model=model, prefix=prefix) from None
