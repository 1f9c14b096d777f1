"""Dealing GRPO groups to the rollout pool's engines (``rollout.dispatch``).

A group stays on one engine (its samples share the prompt's KV blocks under prefix caching).
Policies, applied to the groups of a batch in order at the moment it is dispatched:

* ``round_robin`` -- group ``g`` to engine ``g mod E`` (vLLM's data-parallel default, NeMo-RL);
* ``least_outstanding_tokens`` -- load-aware: each group to the engine with the fewest
  *outstanding tokens*, what a router knows without seeing generation progress: the sum over
  its unfinished requests of ``prompt + expected response`` (the workload's mean response
  length), updated as groups are dealt and as requests finish;
* ``length_aware`` -- longest-processing-time first: groups sorted by their *predicted* work
  (``n x prompt + sum of predicted responses``) and each given to the least-loaded engine; the
  predictor sees each true response length times ``exp(N(0, dispatch_length_noise^2))``
  (assumed predictor quality; 0 = an oracle -- what a perfect length predictor would buy).

Loads are outstanding tokens per engine (:class:`Outstanding`), so a batch dispatched while the
previous one still runs (async) goes preferentially to engines that have drained.
"""

from __future__ import annotations

import numpy as np

__all__ = ["POLICIES", "Outstanding", "assign_groups"]

POLICIES = ("round_robin", "least_outstanding_tokens", "length_aware")


class Outstanding:
    """Outstanding tokens per engine and the estimate charged for each request (by global id)."""

    def __init__(self, engines: int) -> None:
        self.tokens = np.zeros(engines)
        self._charge: dict[int, tuple[int, float]] = {}

    def add(self, seq_ids: np.ndarray, owner: np.ndarray, estimate: np.ndarray) -> None:
        np.add.at(self.tokens, owner, estimate)
        for s, e, x in zip(seq_ids.tolist(), owner.tolist(), estimate.tolist()):
            self._charge[s] = (e, x)

    def finish(self, seq_id: int) -> None:
        e, x = self._charge.pop(int(seq_id), (None, 0.0))
        if e is not None:
            self.tokens[e] = max(0.0, self.tokens[e] - x)


def _greedy(order: np.ndarray, work: np.ndarray, loads: np.ndarray) -> np.ndarray:
    """Each group (in ``order``) to the currently least-loaded engine (lowest index on ties)."""
    loads = loads.astype(float).copy()
    engine_of = np.empty(len(work), dtype=np.int64)
    for g in order:
        e = int(np.argmin(loads))
        engine_of[g] = e
        loads[e] += work[g]
    return engine_of


def assign_groups(policy: str, group_ids: np.ndarray, prompt: np.ndarray, response: np.ndarray, loads: np.ndarray,
                  expected_response: float, noise: float = 0.0, rng: np.random.Generator | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(owner engine per sequence, outstanding-token estimate per sequence)``.

    ``loads``: outstanding tokens per engine now; ``response`` (true lengths) is read only by
    ``length_aware``, through its noisy predictor."""
    engines = len(loads)
    est = prompt.astype(float) + float(expected_response)
    if policy == "round_robin":
        return (group_ids % engines).astype(np.int64), est
    uniq, inv = np.unique(group_ids, return_inverse=True)
    if policy == "least_outstanding_tokens":
        work = np.bincount(inv, weights=est, minlength=len(uniq))
        first = np.full(len(uniq), len(group_ids))
        np.minimum.at(first, inv, np.arange(len(group_ids)))
        return _greedy(np.argsort(first, kind="stable"), work, loads)[inv], est
    if policy == "length_aware":
        rng = rng if rng is not None else np.random.default_rng(0)
        pred = response.astype(float) * np.exp(noise * rng.standard_normal(len(response))) if noise > 0 else response.astype(float)
        est = prompt.astype(float) + pred
        work = np.bincount(inv, weights=est, minlength=len(uniq))
        return _greedy(np.argsort(-work, kind="stable"), work, loads)[inv], est
    raise ValueError(f"dispatch = {policy!r}; expected one of {POLICIES}")
