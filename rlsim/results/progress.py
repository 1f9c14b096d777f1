"""Progress bars: ``rich`` on a terminal, ``tqdm.auto`` in a notebook, nothing under ``--quiet``
or when stderr is not a terminal (a log file gets no bar lines).

Two ways in:

* :class:`ProgressBar` -- a context manager called as ``bar(done, total, row=None)`` (the sweep /
  plan / sensitivity callback signature);
* :func:`tracking` -- a context in which the RL pipeline reports each trained step
  (:func:`report_step`, called by rlsim.rl.pipeline; a no-op outside a context), so ``rlsim run``
  and :func:`rlsim.simulate` in a notebook show the steps of each run as they are simulated.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from typing import Callable, Iterator

__all__ = ["ProgressBar", "bar_kind", "in_notebook", "report_step", "tracking"]

_HOOK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("rlsim_progress", default=None)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell)."""
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except Exception:  # noqa: BLE001 - no IPython shell
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def bar_kind(quiet: bool = False) -> str | None:
    """``"tqdm"`` in a notebook, ``"rich"`` when stderr is a terminal, else None."""
    if quiet:
        return None
    if in_notebook():
        return "tqdm"
    try:
        return "rich" if sys.stderr.isatty() else None
    except (AttributeError, ValueError):
        return None


class ProgressBar:
    """``with ProgressBar("sweep") as bar: bar(done, total)`` -- see the module docstring."""

    def __init__(self, what: str, quiet: bool = False, kind: str | None = "auto"):
        self.what = what
        self.kind = bar_kind(quiet) if kind == "auto" else kind
        self._impl = self._task = None
        self._label = what

    def __enter__(self) -> "ProgressBar":
        if self.kind == "rich":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._impl = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=False)
            self._impl.start()
        return self

    def __call__(self, done: int, total: int, row=None, label: str | None = None) -> None:
        label = label or self.what
        if self.kind == "rich":
            if self._task is None:
                self._task = self._impl.add_task(label, total=total, completed=done)
            else:
                self._impl.update(self._task, total=total, completed=done, description=label)
        elif self.kind == "tqdm":
            if self._impl is None or label != self._label:
                if self._impl is not None:
                    self._impl.close()
                from tqdm.auto import tqdm

                self._impl, self._label = tqdm(total=total, desc=label), label
            self._impl.total = total
            self._impl.n = done
            self._impl.refresh()

    def __exit__(self, *exc) -> bool:
        if self._impl is not None:
            (self._impl.stop if self.kind == "rich" else self._impl.close)()
        return False


def report_step(label: str, done: int, total: int) -> None:
    """The RL pipeline trained step ``done`` of at most ``total`` (a no-op outside :func:`tracking`)."""
    hook = _HOOK.get()
    if hook is not None:
        hook(done, total, None, label)


@contextlib.contextmanager
def tracking(bar: ProgressBar | None) -> Iterator[None]:
    """Route :func:`report_step` to ``bar`` while the context is open (None: nowhere)."""
    token = _HOOK.set(bar if bar is not None and bar.kind is not None else None)
    try:
        yield
    finally:
        _HOOK.reset(token)
