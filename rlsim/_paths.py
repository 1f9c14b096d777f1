"""Path-like strings checked before the filesystem sees them: a name over the limits would be
``OSError: File name too long`` (or ``ValueError: embedded null byte``) deep inside a loader."""

from __future__ import annotations

from rlsim.errors import ConfigError, format_location, short_repr

__all__ = ["check_path_text", "MAX_PATH_BYTES", "MAX_NAME_BYTES"]

#: Linux PATH_MAX and NAME_MAX (bytes, UTF-8): the longest path and path component.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def check_path_text(value: str, source: str | None, field: str) -> str:
    """``value`` unchanged when it can be a path; else a ConfigError naming ``source: field``."""
    where = format_location(source, field)
    if "\x00" in value:
        raise ConfigError(f"{where} = {short_repr(value)} contains a NUL character (not allowed in a name or path)")
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        raise ConfigError(f"{where} = {short_repr(value)} is too long for a path ({len(encoded):,} bytes; "
                          f"at most {MAX_PATH_BYTES:,})")
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > MAX_NAME_BYTES:
        raise ConfigError(f"{where} = {short_repr(value)} is too long for a file name (a part of {longest:,} bytes; "
                          f"at most {MAX_NAME_BYTES} between slashes)")
    return value
