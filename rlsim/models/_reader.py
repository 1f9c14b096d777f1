"""Typed access to one HF config dict, raising one-line ConfigErrors that name source and key."""

from __future__ import annotations

from typing import Any

from rlsim.errors import ConfigError, format_location

MISSING = object()


class Reader:
    """Typed reads of ``config`` (keys shown as ``prefix + key``, e.g. ``text_config.hidden_size``)."""

    def __init__(self, config: dict[str, Any], source: str, model_type: str, prefix: str = "") -> None:
        self.config, self.source, self.model_type, self.prefix = config, source, model_type, prefix

    def error(self, key: str, value: Any, rule: str) -> ConfigError:
        return ConfigError.at(self.source, self.prefix + key, value, rule)

    def missing(self, key: str) -> ConfigError:
        where = format_location(self.source, self.prefix + key)
        return ConfigError(f"{where} is missing (required for model_type {self.model_type!r})")

    def int(self, key: str, default: Any = MISSING, minimum: int = 1) -> Any:
        value = self.config.get(key, MISSING)
        if value is MISSING or (value is None and default is not MISSING):
            if default is MISSING:
                raise self.missing(key)
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(key, value, f"must be {kind}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.config.get(key, default)
        if value is None:
            return default
        if value not in options:
            raise self.error(key, value, f"is not supported (supported: {', '.join(options)})")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.config.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self.error(key, value, "must be a list of layer indices")
        return value

    def str_list(self, key: str) -> list[str] | None:
        value = self.config.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, value, "must be a list of strings")
        return value
