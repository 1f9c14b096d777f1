"""rlsim._fork.fork_map: order, the forked processes, the serial fallback, errors."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from rlsim._fork import fork_map


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method here")
def test_items_run_in_forked_processes_in_order():
    parent = os.getpid()
    out = fork_map(lambda x: (x * x, os.getpid()), list(range(6)), 2)
    assert [v for v, _ in out] == [0, 1, 4, 9, 16, 25]
    pids = {p for _, p in out}
    assert parent not in pids and 1 <= len(pids) <= 2  # at most two workers, never the parent


def test_one_worker_or_one_item_runs_here():
    parent = os.getpid()
    assert fork_map(lambda x: os.getpid(), [1, 2], 1) == [parent, parent]
    assert fork_map(lambda x: os.getpid(), [1], 4) == [parent]
    assert fork_map(lambda x: x, [], 3) == []


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method here")
def test_an_error_in_a_worker_reaches_the_caller():
    def boom(x):
        if x == 2:
            raise ValueError(f"bad item {x}")
        return x

    with pytest.raises(ValueError, match="bad item 2"):
        fork_map(boom, [1, 2, 3], 2)
