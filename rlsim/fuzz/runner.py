"""Run the ``rlsim`` command line in this process and record what a user would see.

:func:`invoke` calls :func:`rlsim.cli.main` (the console-script entry point, so usage errors
are the one-line ``error: ...`` users get) with ``sys.argv`` set, stdout / stderr captured,
the working folder set, and a wall-clock bound enforced with ``SIGALRM`` (main thread only):
a run past its bound is a hang.  Anything escaping ``main`` other than ``SystemExit`` is a
traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outcome", "invoke"]


@dataclass(frozen=True)
class Outcome:
    """What one command did."""

    code: int | None          # exit code; None for a traceback or a hang
    stdout: str
    stderr: str
    wall_s: float
    traceback: str | None = None
    hang: bool = False

    @property
    def stderr_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


class _Hang(BaseException):
    """Raised by the alarm in the middle of a run past its bound."""


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Hang()


def invoke(args: list[str], cwd: Path, timeout_s: float) -> Outcome:
    """``rlsim ARGS`` in folder ``cwd``, bounded by ``timeout_s`` seconds of wall time."""
    from rlsim.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cwd = sys.argv, os.getcwd()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    code: int | None = None
    tb = None
    hang = False
    try:
        os.chdir(cwd)
        sys.argv = ["rlsim", *args]
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _Hang:
        hang = True
    except BaseException:  # noqa: BLE001 - exactly what the fuzzer looks for
        tb = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        sys.argv = old_argv
        os.chdir(old_cwd)
    wall = time.perf_counter() - t0
    text_err = err.getvalue()
    if tb is None and "Traceback (most recent call last)" in text_err + out.getvalue():
        tb = text_err
    return Outcome(None if (tb or hang) else code, out.getvalue(), text_err, wall, tb, hang)
