"""The one YAML reader: a mapping from a file, every failure a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path

import yaml

from rlsim.errors import ConfigError

__all__ = ["read_yaml_mapping"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{self._rlsim_path}: line {key_node.start_mark.line + 1} duplicate key {key!r} "
                                  f"(first given on line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """Read ``path`` as a YAML mapping; ``what`` names the argument in messages (``scenario``)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} = {str(path)!r}: is a folder, not a YAML file")
    if not p.is_file():
        raise ConfigError(f"{what} = {str(path)!r}: file not found")
    try:
        loader = _UniqueKeyLoader(p.read_text(encoding="utf-8"))
        loader._rlsim_path = str(path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): is this a YAML file?") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data
