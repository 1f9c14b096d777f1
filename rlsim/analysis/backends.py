"""Where sweep tasks run: a local process pool, or a Ray cluster (``pip install "rlsim[ray]"``).

Both take an iterable of ``(tag, task)`` and yield ``(tag, result)`` as tasks finish (any
order; the sweep sorts rows itself).  Tasks are plain dicts evaluated by
:func:`rlsim.analysis.worker.run_task`, so both backends compute the identical rows.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterable, Iterator

from rlsim.analysis.worker import run_task
from rlsim.errors import ConfigError

__all__ = ["run_local", "run_ray", "default_workers", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Make this worker process end when the sweep that started it does, however it ends
    (``kill -9`` included): Linux delivers SIGKILL on the parent's death (``prctl
    PR_SET_PDEATHSIG``); a daemon thread also polls the parent's pid (other systems, and a
    parent gone before the prctl took effect) and exits the worker when it is gone."""
    import signal
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the thread below does it
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rlsim-parent-watch", daemon=True).start()


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_local(tasks: Iterable[tuple], workers: int) -> Iterator[tuple]:
    """``workers`` = 1 runs in this process (no pickling, easy to debug); more use a process
    pool, forked on Linux (works from scripts without a ``__main__`` guard and from notebooks;
    workers inherit the imported simulator), spawned elsewhere."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for tag, task in tasks:
            yield tag, run_task(task)
        return
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pending = {}
    it = iter(tasks)
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        def submit_one() -> bool:
            try:
                tag, task = next(it)
            except StopIteration:
                return False
            pending[pool.submit(run_task, task)] = tag
            return True

        for _ in range(2 * workers):  # a short queue: results stream back in submission order
            submit_one()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                tag = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as err:  # noqa: BLE001 - a worker died (OOM kill, ...): record it
                    result = {"status": "error", "error": f"{type(err).__name__}: {err}"}
                yield tag, result
                submit_one()


def run_ray(tasks: Iterable[tuple], workers: int | None, address: str | None) -> Iterator[tuple]:
    """Run on Ray: ``address`` None starts a local instance with ``workers`` CPUs (and stops it
    at the end); ``"auto"`` or ``"ray://host:10001"`` joins an existing cluster, whose nodes
    must have rlsim installed (same version) -- see the README."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--backend ray needs Ray: pip install "rlsim[ray]"') from None
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers or default_workers(), **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(run_task)
        window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
        it = iter(tasks)
        pending: dict = {}

        def submit_one() -> bool:
            try:
                tag, task = next(it)
            except StopIteration:
                return False
            pending[remote.remote(task)] = tag
            return True

        for _ in range(window):
            submit_one()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                tag = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a lost worker / node: record it
                    result = {"status": "error", "error": f"{type(err).__name__}: {err}"}
                yield tag, result
                submit_one()
    finally:
        if started:
            ray.shutdown()
