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

import reprlib
from typing import Any

__all__ = ["RlsimError", "ConfigError", "InfeasibleConfig", "CalibrationError", "format_location", "short_repr",
           "MAX_VALUE_CHARS"]

#: Longest value (its ``repr``) a message shows; longer ones keep their head and say how long they were.
MAX_VALUE_CHARS = 80

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 4 * MAX_VALUE_CHARS, 4 * MAX_VALUE_CHARS, 4 * MAX_VALUE_CHARS


class RlsimError(Exception):
    """Base class of every error a user can cause and fix."""


class ConfigError(RlsimError):
    """A configuration value breaks a rule (unknown key, wrong type, out of range, ...)."""

    @classmethod
    def at(cls, source: str | None, path: str, value: Any, rule: str) -> "ConfigError":
        """Build the canonical one-line message ``source: path = value rule``."""
        return cls(f"{format_location(source, path)} = {short_repr(value)} {rule}")


class InfeasibleConfig(ConfigError):
    """A well-formed configuration that cannot run: weights do not fit, KV too small, ..."""


class CalibrationError(RlsimError):
    """Measured kernel data that cannot be read, or a fit that cannot be made."""


def format_location(source: str | None, path: str) -> str:
    """``file: field.path`` (or just the path when there is no file)."""
    return f"{source}: {path}" if source else path


def _size(value: Any) -> str:
    if isinstance(value, (str, bytes)):
        return f"{len(value):,} characters"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f"{len(value):,} items"
    return "long"


def _small(value: Any, budget: int = 4 * MAX_VALUE_CHARS) -> bool:
    """Whether ``value`` holds fewer than ``budget`` items in all (a full ``repr`` is cheap)."""
    stack, seen = [value], 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, (str, bytes)) and len(v) > budget:
            return False
    return True


def short_repr(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)`` for a message, bounded in time and length: nested containers are cut by
    :mod:`reprlib` (never expanded in full), and a repr over ``limit`` characters keeps its
    head and says how long the value was, e.g. ``'aaaa...' (100,000 characters)``."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"an integer of {value.bit_length():,} bits"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit - 20]!r}... ({_size(value)})"
    text = repr(value) if _small(value) else _REPR.repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}... ({_size(value)})"
