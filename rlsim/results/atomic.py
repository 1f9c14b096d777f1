"""Atomic file writes: a reader (or a killed run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text_atomic", "probe_writable"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer the format
    from it work); on success it replaces ``path`` in one rename, on failure it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """``Path(path).write_text(text)`` through :func:`atomic_path` (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def probe_writable(folder: Path) -> None:
    """Create and remove a probe file in ``folder``: OSError when it cannot be written."""
    probe = folder / f".rlsim-probe-{os.getpid()}"
    with probe.open("w", encoding="utf-8") as fh:
        fh.write("probe\n")
    probe.unlink()
