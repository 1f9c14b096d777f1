"""What an engine needs at run time to speculate: drafter, acceptance sampler, k policy.

The k used in an iteration (vLLM: ``num_speculative_tokens``) is

* 0 when the running batch reaches ``disable_by_batch_size`` (vLLM's switch);
* with ``adaptive_k``: ``argmax_k B * E[tokens | k] / step_time(B, k, ctx)`` over
  ``min_k..num_speculative_tokens`` (goodput, SmartSpec-style), where the mean context per
  sequence is quantised to powers of two so the decision is piecewise constant (the fast path
  ends a jump where the bucket changes, keeping it identical to one-iteration stepping);
* otherwise ``num_speculative_tokens``.

Besides the drafter's own time (:class:`~rlsim.speculation.drafter.Drafter`), a round costs the
verification work beyond the target's kernels and host time (:mod:`rlsim.speculation.costs`):
:meth:`SpecRuntime.verify_extra_s` (GPU, in the pass) and :meth:`SpecRuntime.host_parts_s`
(overlappable host time and the n-gram proposer's critical-path time).

**Per-request draft budgets** (``budgets``, rlsim.rl.policies.length_aware_draft): request i
verifies at most ``k_i`` of the iteration's k drafts.  The iteration's k is capped at the largest
budget among the running requests (the engine), a request accepts ``min(A, k_i)`` of its draw
(the engine's ``JumpPlanner.accepted``), and the verify pass skips the ``slack = sum_i (k - k_i)``
draft slots its requests do not verify (:meth:`SpecRuntime.budget_slack`, the same rule as the
n-gram proposer's unmatched requests: :meth:`SpecRuntime.unmatched_tokens`).  The drafter still
drafts every running request for k rounds (a chain drafter runs the batch in lock-step, as vLLM's
EAGLE proposer does) and KV slots stay reserved for 1 + k tokens per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlsim.cost.forward import ForwardModel
from rlsim.hardware import ops
from rlsim.speculation.costs import RANDOM_SAMPLING_PASSES
from rlsim.speculation.decoupled import DecoupledDrafting
from rlsim.speculation.drafter import Drafter
from rlsim.speculation.draws import AcceptanceDraws

__all__ = ["SpecRuntime", "ctx_bucket"]


def ctx_bucket(mean_ctx_per_seq):
    """Power-of-two bucket of the mean context per sequence (vectorised)."""
    return np.floor(np.log2(np.maximum(np.asarray(mean_ctx_per_seq, dtype=np.float64), 1.0))).astype(np.int64)


@dataclass
class SpecRuntime:
    """Speculation settings resolved for one engine pool (shared by its engines)."""

    k_max: int
    drafter: Drafter
    sampler: object  # rlsim.speculation.acceptance.AcceptanceSampler
    target: ForwardModel
    expected_accepted: np.ndarray  # E[accepted | k] for k = 0..k_max (base acceptance model)
    disable_by_batch_size: int | None = None
    adaptive: bool = False
    min_k: int = 0
    temperature: float = 1.0  # the requests' sampling temperature (0: greedy rejection sampling)
    #: per sampler sequence (``sampler.seq_ids`` order), its draft budget k_i; None: no budgets
    budgets: np.ndarray | None = None
    #: the drafter on its own GPUs, pipelined with verification (rlsim.speculation.decoupled); None: vLLM's coupled drafting
    decoupled: DecoupledDrafting | None = None
    _cache: dict = field(default_factory=dict)
    draws: AcceptanceDraws = field(init=False)

    def __post_init__(self) -> None:
        self.draws = AcceptanceDraws(self.sampler)  # accepted drafts by sequence id, buffered

    def drafting_share(self, k: int) -> float:
        """Share of requests carrying drafts in a round: 1 for GPU drafters; for n-gram with a
        regime acceptance model whose hard stretches accept nothing (no match: vLLM's proposer
        returns no drafts and the request decodes normally), the share of rounds in easy
        stretches (the verify pass is priced at that expected share)."""
        model = self.sampler.model
        if self.drafter.method != "ngram" or getattr(model, "kind", "") != "regime" or model.hard_rate > 0:
            return 1.0
        return model.easy_round_fraction(k)

    def budget_of(self, seq_ids: np.ndarray) -> np.ndarray:
        """The draft budgets of global sequence ids (only with ``budgets``)."""
        return self.budgets[self.sampler.index_of(np.asarray(seq_ids, dtype=np.int64))]

    @staticmethod
    def budget_slack(drafts: np.ndarray | int, budgets: np.ndarray) -> int:
        """Draft slots that requests with ``budgets`` do not verify when scheduled for ``drafts``
        each: ``sum_i max(0, drafts_i - k_i)`` (the one rule of both engine paths)."""
        return int(np.maximum(np.asarray(drafts, dtype=np.int64) - budgets, 0).sum())

    def unmatched_tokens(self, batch: int, k: int, slack: int = 0) -> int:
        """Draft slots the verify pass does not compute: the ``slack`` slots beyond the requests'
        draft budgets (:meth:`budget_slack`), and of the others those of requests without drafts
        (n-gram), rounded so that the expected draft tokens are rounded up."""
        if k <= 0:
            return 0
        return batch * k - int(math.ceil((batch * k - slack) * self.drafting_share(k) - 1e-9))

    def verify_extra_s(self, batch: int, k: int, slack: int = 0) -> float:
        """Verification time beyond the target's kernels for ``batch`` requests with ``k`` drafts
        (``slack`` of them beyond the requests' budgets, not verified): the fitted per-draft-token
        floor (:meth:`SpecCosts.verify_extra_s` against the growth of the pass's token-dependent
        kernels over a plain decode step) plus, at temperature > 0, the random rejection sampler's
        passes over the ``batch x (1 + k)`` rows of fp32 logits (the pass's logits, not reduced by
        the slack, as in :meth:`target_times_s`)."""
        if k <= 0 or batch <= 0:
            return 0.0
        key = ("verify", batch, k, slack)
        if key not in self._cache:
            costs = self.drafter.costs
            t = 0.0
            if costs is not None:
                growth = (sum(self.target.decode_const_parts(batch, 1 + k).values())
                          - sum(self.target.decode_const_parts(batch, 1).values()))
                t = float(costs.verify_extra_s((batch * k - slack) * self.drafting_share(k), growth))
            if self.temperature > 0:
                logits_bytes = batch * (1 + k) * self.target.arch.vocab_size * 4.0
                t += float(ops.elementwise_time_s(self.target.hw, RANDOM_SAMPLING_PASSES * logits_bytes))
            self._cache[key] = t
        return self._cache[key]

    def host_parts_s(self, batch: int, k: int, history_tokens, slack: int = 0):
        """(host time async scheduling can overlap, host time on the critical path) of a step
        with ``batch`` drafting requests holding ``history_tokens`` tokens (scalar or array),
        ``slack`` of their ``batch x k`` draft slots beyond their budgets: the first is
        ``spec_host_us`` plus a GPU drafter's round overhead beyond its kernels
        (:meth:`Drafter.overhead_host_s`; not with a decoupled drafter, whose own host runs it),
        the second the n-gram proposer's scan and its handling of the drafts it proposes (the
        verified ones, :meth:`unmatched_tokens`)."""
        costs = self.drafter.costs
        if k <= 0 or batch <= 0 or costs is None:
            return 0.0, 0.0
        own = self.drafter.overhead_host_s(batch, k) if self.decoupled is None else 0.0
        drafted = batch * k - self.unmatched_tokens(batch, k, slack)
        return costs.spec_host_s + own, self.drafter.host_time_s(batch, history_tokens, drafted)

    def step_time_s(self, batch: int, ctx_tokens: float, k: int) -> float:
        """GPU time of one iteration (verify pass of 1 + k tokens per sequence, its extra
        verification work, drafting) plus the drafting's critical-path host time."""
        ctx = np.array([ctx_tokens + batch * k], dtype=np.float64)
        t = self.target_times_s(batch, ctx, k) + self.drafter.propose_times_s(batch, ctx, k)
        _, serial = self.host_parts_s(batch, k, ctx)
        return float((t + self.verify_extra_s(batch, k) + serial)[0])

    def target_times_s(self, batch: int, ctx: np.ndarray, k: int, slack: int = 0) -> np.ndarray:
        """The verify pass (``1 + k`` tokens per request, less the slots :meth:`unmatched_tokens`
        skips: the token-dependent kernels run on ``batch (1 + k) - skip`` tokens; attention and
        logits stay at ``1 + k`` per request)."""
        return self.target_split_s(batch, ctx, k, slack)[0]

    def target_split_s(self, batch: int, ctx: np.ndarray, k: int, slack: int = 0):
        """:meth:`target_times_s`, its exposed dispatch per pass and the tokens its
        token-dependent kernels ran on (:meth:`verify_tokens`)."""
        tokens = self.verify_tokens(batch, k, slack)
        times, launch = self.target.decode_split_s(batch, ctx, q=1 + k, padded_tokens=tokens)
        return times, launch, tokens

    def verify_tokens(self, batch: int, k: int, slack: int = 0) -> int | None:
        """Tokens the verify pass's token-dependent kernels run on (None: all ``batch (1 + k)``)."""
        skip = self.unmatched_tokens(batch, k, slack)
        return batch * (1 + k) - skip if skip else None

    def k_for(self, batch: int, ctx_tokens: float) -> int:
        """k for an iteration with ``batch`` decoding sequences holding ``ctx_tokens`` in all."""
        if self.disable_by_batch_size is not None and batch >= self.disable_by_batch_size:
            return 0
        if not self.adaptive:
            return self.k_max
        bucket = int(ctx_bucket(ctx_tokens / max(batch, 1)))
        key = (batch, bucket)
        if key not in self._cache:
            self._cache[key] = self._best_k(batch, float(2.0 ** bucket) * math.sqrt(2.0) * batch)
        return self._cache[key]

    def _best_k(self, batch: int, ctx_tokens: float) -> int:
        best, best_rate = self.min_k, -1.0
        for k in range(self.min_k, self.k_max + 1):
            rate = (1.0 + self.expected_accepted[k]) / self.step_time_s(batch, ctx_tokens, k)
            if rate > best_rate * (1 + 1e-12):
                best, best_rate = k, rate
        return best
