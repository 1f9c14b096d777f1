"""Resolve a model argument: a catalog name, an HF repo id, or a path to a ``config.json``.

Resolution order: catalog name or ``_hf_ids`` alias (case-insensitive) -> an existing file (or a
directory holding ``config.json``) -> ``org/<catalog name>`` -> error.  A checkpoint's ModelOpt
``hf_quant_config.json`` is read from beside its ``config.json`` (or ``<stem>.hf_quant_config.json``
beside ``<stem>.json``) and supplies the quantisation when the config has none.  A value that looks like a
path (contains ``/`` or ends with ``.json``) and does not exist is reported as a missing file.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from rlsim.catalog import model_files
from rlsim.errors import ConfigError, format_location
from rlsim._paths import check_path_text
from rlsim.models.arch import ModelArch
from rlsim.models.hf import model_from_hf_config

__all__ = ["load_model", "list_models", "catalog_entry", "catalog_source", "catalog_name"]


def list_models() -> list[str]:
    """Catalog model names, sorted."""
    return sorted(model_files())


def load_model(name_or_path: str, *, source: str | None = None, path: str = "model") -> ModelArch:
    """The architecture of a catalog model, an HF id of one, or a ``config.json`` path.

    ``source`` / ``path`` say where the name came from, for the message when it cannot be
    found (e.g. ``source="scenario.yaml", path="model.name"``)."""
    check_path_text(name_or_path, source, path)
    name = _catalog_name(name_or_path)
    if name is not None:
        return _load_catalog(name)
    file = Path(name_or_path)
    if file.is_dir() and (file / "config.json").is_file():
        file = file / "config.json"
    if file.is_file():
        stem = file.parent.name if file.name == "config.json" and file.parent.name else file.stem
        sidecar = _quant_sidecar(file)
        side = _read_json(sidecar, str(sidecar)) if sidecar is not None else None
        return model_from_hf_config(_read_json(file, str(name_or_path)), stem, str(name_or_path),
                                    quant_sidecar=side, sidecar_source=str(sidecar) if sidecar else None)
    tail = _catalog_name(name_or_path.rsplit("/", 1)[-1]) if name_or_path.count("/") == 1 else None
    if tail is not None:
        return _load_catalog(tail)
    if "/" in name_or_path or name_or_path.endswith(".json"):
        raise ConfigError(f"{format_location(source, path)} = {name_or_path!r}: file not found")
    raise ConfigError.at(source, path, name_or_path, _unknown_rule(name_or_path))


def _quant_sidecar(config_file: Path) -> Path | None:
    """A ModelOpt ``hf_quant_config.json`` belonging to ``config_file``: ``hf_quant_config.json``
    beside a checkpoint's ``config.json``, or ``<stem>.hf_quant_config.json`` beside ``<stem>.json``."""
    if config_file.name == "config.json":
        side = config_file.parent / "hf_quant_config.json"
    else:
        side = config_file.with_name(f"{config_file.stem}.hf_quant_config.json")
    return side if side.is_file() else None


def catalog_entry(name: str) -> dict[str, Any]:
    """The raw JSON dict of catalog model ``name`` (exact catalog name)."""
    return dict(_catalog_json(name))


def catalog_source(name: str) -> str | None:
    """The ``_source`` note of catalog model ``name``, or None when it is not in the catalog."""
    if name not in model_files():
        return None
    return _catalog_json(name).get("_source")


@lru_cache(maxsize=None)
def _load_catalog(name: str) -> ModelArch:
    return model_from_hf_config(_catalog_json(name), name, f"catalog/{name}.json")


@lru_cache(maxsize=None)
def _catalog_json(name: str) -> dict[str, Any]:
    file = model_files()[name]
    return _parse_json(file.read_text(encoding="utf-8"), f"catalog/{name}.json")


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    """Lower-cased catalog names and HF ids -> catalog name."""
    table: dict[str, str] = {}
    for name in model_files():
        table[name.lower()] = name
        for hf_id in _catalog_json(name).get("_hf_ids", []):
            table[hf_id.lower()] = name
    return table


def _catalog_name(value: str) -> str | None:
    return _aliases().get(value.lower())


def catalog_name(value: str) -> str | None:
    """The catalog name a model name or HF id resolves to (case-insensitive), else None."""
    return _catalog_name(value)


def _read_json(path: Path, shown: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{shown}: cannot be read ({err.__class__.__name__}: {err})") from None
    return _parse_json(text, shown)


def _parse_json(text: str, shown: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{shown}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: top level must be a JSON object, got {type(data).__name__}")
    return data


def _unknown_rule(value: str) -> str:
    names = list_models()
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1)
    hint = f"did you mean {lowered[close[0]]!r}?; " if close else ""
    return f"is not a catalog model or a file ({hint}catalog: {', '.join(names)})"
