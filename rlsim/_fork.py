"""Independent simulations in forked worker processes (``--workers``), results identical to one
process.

:func:`fork_map` calls ``fn(item)`` for every item, in ``workers`` processes started by
``fork`` (the children inherit ``fn`` and the items, so neither needs to pickle; only the
results travel back).  Where ``fork`` is unavailable, or with one worker or one item, it runs
in this process.  Every simulation in rlsim is a pure function of its inputs and seed (op-time
and draw caches are keyed by their inputs), so the results do not depend on the split; progress
reporting (:mod:`rlsim.results.progress`) is off in the children.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, Sequence, TypeVar

__all__ = ["fork_map"]

T = TypeVar("T")
R = TypeVar("R")

_TASK: tuple[Callable, Sequence] | None = None  # what the forked children call (set before the fork)


def fork_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]``, in up to ``workers`` forked processes (in order)."""
    global _TASK
    workers = min(int(workers), len(items))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(x) for x in items]
    _TASK = (fn, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_call, range(len(items)), chunksize=1)
    finally:
        _TASK = None


def _call(i: int):
    from rlsim.results.progress import tracking

    fn, items = _TASK
    with tracking(None):  # the parent's bar is not the children's to draw
        return fn(items[i])
