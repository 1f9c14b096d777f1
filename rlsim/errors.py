"""The exceptions rlsim raises for things a user can cause.

Hierarchy::

    RlsimError                 anything the user can fix; the CLI prints it on one line, exit 2
     +-- ConfigError           a file, key, type or value that breaks a stated rule
     |    +-- InfeasibleConfig a valid configuration that cannot run (does not fit in memory, ...)
     +-- CalibrationError      measured data that cannot be read or fitted

Bugs are assertions, never RlsimError.  Every message names where the value came from
(file and field path), the value, and the rule it breaks, e.g.::

    scenario.yaml: rollout.engine.tensor_parallel_size = 3 does not divide num_key_value_heads = 8
"""

from __future__ import annotations

from typing import Any

__all__ = ["RlsimError", "ConfigError", "InfeasibleConfig", "CalibrationError", "format_location"]


class RlsimError(Exception):
    """Base class of every error a user can cause and fix."""


class ConfigError(RlsimError):
    """A configuration value breaks a rule (unknown key, wrong type, out of range, ...)."""

    @classmethod
    def at(cls, source: str | None, path: str, value: Any, rule: str) -> "ConfigError":
        """Build the canonical one-line message ``source: path = value rule``."""
        return cls(f"{format_location(source, path)} = {value!r} {rule}")


class InfeasibleConfig(ConfigError):
    """A well-formed configuration that cannot run: weights do not fit, KV too small, ..."""


class CalibrationError(RlsimError):
    """Measured kernel data that cannot be read, or a fit that cannot be made."""


def format_location(source: str | None, path: str) -> str:
    """``file: field.path`` (or just the path when there is no file)."""
    return f"{source}: {path}" if source else path
