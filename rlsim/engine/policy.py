"""Scheduling policies: the one seam through which an engine's batch choices can change.

A policy decides two things, and nothing else (the token budget, chunking, KV accounting and
the order in which *running* requests are served stay vLLM's, in :mod:`rlsim.engine.scheduler`):

* **which waiting request is considered next for admission** -- it supplies the waiting queue
  (``push`` a new or preempted request, ``peek`` / ``pop`` the next one);
* **which running request is preempted** when a running request needs a KV block and none is
  free (``victim``).

What it sees: the engine's :class:`~rlsim.engine.requests.RequestTable` (read-only: token
counts, response lengths, arrival order = slot order) and the running list.  Admission stays
head-of-line, as in vLLM: when the next request does not fit, nobody behind it is admitted.

Policies:

* :class:`Fcfs` -- vLLM V1's default ``--scheduling-policy fcfs``: waiting requests in arrival
  order, a preempted request goes back to the *front* (``prepend_request``), the victim is the
  most recently admitted running request (``self.running.pop()``; vllm/v1/core/sched/
  scheduler.py).
* :class:`ShortestRemaining` -- length-aware scheduling with an oracle length predictor (the
  upper bound of what predictor-based schedulers such as SSJF or learning-to-rank can reach):
  the waiting request with the fewest tokens left to emit goes first (ties: arrival order), and
  the victim is the running request with the most tokens left (ties: the latest admitted), so
  long reasoning responses yield KV to short ones.  Preemption semantics follow vLLM's priority
  policy: the victim may be a request already scheduled this step, which is then unscheduled.

Add a policy by writing a class with ``name``, ``waiting_queue(requests)`` and
``victim(running, requests)`` here and naming it in :data:`POLICIES`; the engine code does not
change.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Iterator, Protocol

from rlsim.engine.requests import RequestTable

__all__ = ["SchedulingPolicy", "WaitingQueue", "Fcfs", "ShortestRemaining", "POLICIES", "policy_named"]


class WaitingQueue(Protocol):
    """The waiting requests (slots) in the order a policy admits them."""

    def push(self, slot: int) -> None: ...            # a newly arrived request
    def push_preempted(self, slot: int) -> None: ...  # a request just preempted
    def peek(self) -> int: ...
    def pop(self) -> int: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[int]: ...


class SchedulingPolicy(Protocol):
    """What a scheduling policy must provide (see the module docstring)."""

    name: str
    #: True when ``victim`` is always the last running request (never one already scheduled).
    victim_is_last: bool

    def waiting_queue(self, requests: RequestTable) -> WaitingQueue: ...
    def victim(self, running: list[int], requests: RequestTable) -> int: ...


class _FifoQueue:
    """Arrival order; preempted requests at the front (vLLM's FCFS request queue)."""

    def __init__(self) -> None:
        self._q: deque[int] = deque()

    def push(self, slot: int) -> None:
        self._q.append(slot)

    def push_preempted(self, slot: int) -> None:
        self._q.appendleft(slot)

    def peek(self) -> int:
        return self._q[0]

    def pop(self) -> int:
        return self._q.popleft()

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[int]:
        return iter(self._q)


class _KeyedQueue:
    """A heap on ``(key(slot), slot)``: smallest key first, then arrival (slot) order."""

    def __init__(self, key) -> None:
        self._key = key
        self._heap: list[tuple[int, int]] = []

    def push(self, slot: int) -> None:
        heapq.heappush(self._heap, (self._key(slot), slot))

    push_preempted = push

    def peek(self) -> int:
        return self._heap[0][1]

    def pop(self) -> int:
        return heapq.heappop(self._heap)[1]

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[int]:
        return (slot for _, slot in sorted(self._heap))


class Fcfs:
    """vLLM V1's first-come-first-served policy (the default)."""

    name = "fcfs"
    victim_is_last = True

    def waiting_queue(self, requests: RequestTable) -> WaitingQueue:
        return _FifoQueue()

    def victim(self, running: list[int], requests: RequestTable) -> int:
        return running[-1]


class ShortestRemaining:
    """Fewest tokens left first; preempt the running request with the most tokens left."""

    name = "shortest_remaining"
    victim_is_last = False

    def waiting_queue(self, requests: RequestTable) -> WaitingQueue:
        return _KeyedQueue(lambda slot: int(requests.response[slot] - requests.generated[slot]))

    def victim(self, running: list[int], requests: RequestTable) -> int:
        left = requests.response[running] - requests.generated[running]
        return running[len(running) - 1 - int(left[::-1].argmax())]  # ties: the latest admitted


#: Policies by their scenario name (``rollout.engine.scheduling_policy``).
POLICIES: dict[str, type] = {p.name: p for p in (Fcfs, ShortestRemaining)}


def policy_named(name: str) -> SchedulingPolicy:
    """A fresh policy object for ``name`` (one of :data:`POLICIES`)."""
    return POLICIES[name]()
