"""Acceptance models for speculative decoding, and a deterministic sampler of accepted tokens.

Definitions (vLLM V1; ``shared/reference/hardware_and_models.md`` C3).  A draft round proposes
``k`` tokens; the rejection sampler accepts a prefix of length ``A`` in ``[0, k]`` and then emits
one more token (recovered or bonus), so a round yields ``A + 1`` tokens.

* conditional acceptance ``a_i = P(A >= i | A >= i - 1)`` (1-based; EAGLE's "n-alpha");
* vLLM's unconditional per-position rate ``r_i = P(A >= i) = a_1 * ... * a_i`` (what
  ``Per-position acceptance rate`` and ``spec_decode_num_accepted_tokens_per_pos / num_drafts``
  report; non-increasing in ``i``);
* mean acceptance length ``AL = 1 + E[A] = 1 + sum_i r_i`` (the ``+1`` is the bonus token);
* draft acceptance rate ``E[A] / k`` (``accepted / drafted``).

Every model is a frozen pydantic model tagged by ``kind`` (:data:`AcceptanceModel`) and offers
``conditional_rates(k)``, ``per_position_rates(k)``, ``mean_acceptance_length(k)`` and
``draft_acceptance_rate(k)``; these describe the *base* model: a typical sequence at a context
length at or below ``context_decay.reference_tokens``.  Three optional refinements are shared by
all kinds:

* ``concentration`` -- per-sequence heterogeneity (some responses are easy to draft, some are
  not).  Sequence ``s`` draws ``z_s ~ Beta(kappa * m, kappa * (1 - m))`` with ``m`` the mean of the
  base conditional rates over positions ``1..k_max``, and uses ``clip(a_i * z_s / m, 0, 1)``.
  ``E[z_s / m] = 1``, so the mean over sequences of each conditional rate is preserved exactly
  unless the clip at 1 binds (positions with ``a_i > m`` and sequences with large ``z_s``).  The
  unconditional rates and the AL are *not* preserved: ``E[prod_i a_i z / m] = prod_i a_i *
  E[(z/m)^i] >= prod_i a_i`` (Jensen), so heterogeneity raises the mean AL for ``k >= 2``.
  Large ``kappa`` means little heterogeneity (``Var z = m (1 - m) / (kappa + 1)``).  The Beta
  form is an assumption (a standard model for a bounded per-item rate), not a fit.
* ``length_correlation`` -- Gaussian-copula correlation, on normal scores, between a sequence's
  Beta draw and the rank of its response length (e.g. negative when long, hard reasoning
  responses are harder to draft).  Needs ``concentration``.
* ``context_decay`` -- conditional rates fall with context length, halving every
  ``half_life_tokens`` beyond ``reference_tokens`` (vllm-project/speculators#684: Qwen3-8B
  EAGLE-3 on LongBench-v2, AL 2.30 at 2k context -> 1.09 at 16k).

:class:`RegimeAcceptance` (``kind: regime``) is bursty: acceptance depends on *where* in the
text a round starts (easy stretches, copy runs), so rounds are drawn one after the other from
their context positions, and its per-round rates depend on ``k`` (a round in an easy stretch
moves further, so larger ``k`` spends fewer rounds there) -- what the measured traces show.

:class:`AcceptanceSampler` turns a model into accepted-token counts per (sequence, draft round)
using counter-based random numbers (:mod:`rlsim.speculation._hash`), so outcomes depend only on
(seed, sequence id, round index, position) -- never on batching, call pattern or simulation path.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import special

from rlsim.speculation._hash import round_uniforms, seq_keys, uniforms

__all__ = [
    "AcceptanceModel",
    "AcceptanceSampler",
    "ConstantAcceptance",
    "ContextDecay",
    "EmpiricalAcceptance",
    "PerPositionAcceptance",
    "RegimeAcceptance",
    "conditional_from_unconditional",
    "sequence_scales",
    "temperature_scale",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Entropy tag mixed into the seed of the per-sequence heterogeneity draws ("ACCE"ptance).
_SCALE_STREAM = 0xACCE
#: Context decay is evaluated at the start of the context's bucket of this many tokens (a step of
#: 1.8 % of the factor at a 4,900-token half-life), so that a round's acceptance changes only
#: where its bucket does and a jump's rounds can be drawn together (rlsim.speculation.draws).
DECAY_BUCKET_TOKENS = 128
#: Position key of the block-regime uniforms (distinct from the round uniforms' key 0).
_REGIME_POS = 0xB10C
_PER_POSITION_HINT = "vLLM's per-position rates are unconditional, so non-increasing"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContextDecay(_Frozen):
    """Acceptance falls with context length: conditional rates times ``2 ** (-excess / half_life)``.

    ``excess = max(0, ctx - reference_tokens)`` where ``ctx`` is the sequence's context length
    (prompt + generated tokens) at the start of the draft round (the few tokens within a round
    are ignored), taken at the start of its :data:`DECAY_BUCKET_TOKENS` bucket by the sampler.  The same factor multiplies every position's conditional rate, so the AL falls
    faster than the factor.  Source: vllm-project/speculators#684 (Qwen3-8B EAGLE-3,
    LongBench-v2, full attention): AL 2.30 at 2k context -> 1.09 at 16k.  With ``k = 3`` and
    i.i.d. acceptance those points mean ``a = 0.64`` at 2048 and ``0.083`` at 16384 tokens, i.e.
    ``reference_tokens = 2048, half_life_tokens ~ 4900`` (the exponential form is an assumption).
    """

    reference_tokens: int = Field(default=0, ge=0)
    half_life_tokens: float = Field(gt=0, allow_inf_nan=False)

    def factor(self, ctx: npt.ArrayLike) -> FloatArray:
        """Multiplier in ``(0, 1]`` of the conditional rates at context lengths ``ctx``."""
        excess = np.maximum(np.asarray(ctx, dtype=np.float64) - self.reference_tokens, 0.0)
        return np.exp2(-excess / self.half_life_tokens)


class _AcceptanceBase(_Frozen):
    """Fields and derived metrics shared by every acceptance model (see the module docstring)."""

    concentration: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    length_correlation: float = Field(default=0.0, ge=-1.0, le=1.0)
    context_decay: ContextDecay | None = None
    measured_temperature: float | None = Field(
        default=None, ge=0, description="sampling temperature the rates were measured at; 0 with requests sampled at "
                                        "> 0 scales the rates by temperature_scale() (None: use the rates as given)")

    @model_validator(mode="after")
    def _correlation_needs_heterogeneity(self) -> "_AcceptanceBase":
        if self.length_correlation != 0.0 and self.concentration is None:
            raise ValueError(
                f"length_correlation = {self.length_correlation} needs concentration "
                "(per-sequence heterogeneity) to be set"
            )
        return self

    def _conditional(self, k: int) -> FloatArray:
        raise NotImplementedError

    def conditional_rates(self, k: int) -> FloatArray:
        """Base conditional acceptance ``a_1..a_k`` (float64, length ``k``, each in [0, 1])."""
        assert k >= 0, k
        return self._conditional(k)

    def per_position_rates(self, k: int) -> FloatArray:
        """vLLM's unconditional per-position rates ``r_i = P(A >= i)``, ``i = 1..k``."""
        return np.cumprod(self.conditional_rates(k))

    def mean_acceptance_length(self, k: int) -> float:
        """vLLM's mean acceptance length ``1 + sum_i r_i`` (tokens per round, bonus included)."""
        return 1.0 + float(self.per_position_rates(k).sum())

    def draft_acceptance_rate(self, k: int) -> float:
        """vLLM's draft acceptance rate ``E[A] / k`` (accepted / drafted), a fraction."""
        assert k >= 1, k
        return (self.mean_acceptance_length(k) - 1.0) / k


class ConstantAcceptance(_AcceptanceBase):
    """Every draft token is accepted with probability ``rate``, independently (Leviathan et al.,
    arXiv:2211.17192, alpha); AL ``= (1 - rate**(k+1)) / (1 - rate)``."""

    kind: Literal["constant"] = "constant"
    rate: float = Field(ge=0.0, le=1.0)

    def _conditional(self, k: int) -> FloatArray:
        return np.full(k, self.rate, dtype=np.float64)


class _PrefixRates(_AcceptanceBase):
    """A model given by unconditional rates ``r_1..r_K``; positions beyond ``K`` extrapolate.

    With ``extrapolate`` (default) the conditional rate of position ``K`` repeats beyond it
    (geometric extrapolation: ``r_{K+j} = r_K * a_K**j``); without it positions beyond ``K``
    are never accepted (as if the drafter could not propose more than ``K`` tokens).
    """

    extrapolate: bool = True

    def _unconditional(self) -> FloatArray:
        raise NotImplementedError

    def _conditional(self, k: int) -> FloatArray:
        known = conditional_from_unconditional(self._unconditional())
        if k <= known.size:
            return known[:k]
        tail = known[-1] if self.extrapolate else 0.0
        return np.concatenate([known, np.full(k - known.size, tail)])

    def per_position_rates(self, k: int) -> FloatArray:
        """As given for ``i <= K`` (no round trip through conditional rates), then extrapolated."""
        given = self._unconditional()
        if k <= given.size:
            return given[:k].copy()
        tail = given[-1] * np.cumprod(self.conditional_rates(k)[given.size :])
        return np.concatenate([given, tail])


class PerPositionAcceptance(_PrefixRates):
    """vLLM's ``Per-position acceptance rate`` list (unconditional ``r_i``, fractions in [0, 1]).

    Conditional rates are ``a_i = r_i / r_{i-1}`` (``r_0 = 1``, ``0/0 -> 0``), as in vLLM's
    docs.  Example (Llama-3.1-8B EAGLE-3, MT-Bench, vLLM issue 20780, derived from the AL by k):
    ``[0.78, 0.58, 0.43, 0.29, 0.24, 0.14, 0.08]``.
    """

    kind: Literal["per_position"] = "per_position"
    rates: list[Annotated[float, Field(allow_inf_nan=False)]]

    @field_validator("rates")
    @classmethod
    def _check_rates(cls, rates: list[float]) -> list[float]:
        if not rates:
            raise ValueError("rates must not be empty (give vLLM's per-position acceptance rates, e.g. [0.78, 0.58])")
        for i, r in enumerate(rates):
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"rates[{i}] = {r} must be in [0, 1] (a fraction: divide percentages by 100)")
            if i > 0 and r > rates[i - 1]:
                raise ValueError(f"rates[{i}] = {r} must be <= rates[{i - 1}] = {rates[i - 1]} ({_PER_POSITION_HINT})")
        return rates

    def _unconditional(self) -> FloatArray:
        return np.asarray(self.rates, dtype=np.float64)


class EmpiricalAcceptance(_PrefixRates):
    """A histogram of accepted draft tokens per round: ``accepted_counts[j]`` rounds accepted
    exactly ``j`` tokens, ``j = 0..K`` (counts or frequencies; only proportions matter).

    Converted to ``r_i = P(A >= i) = sum_{j >= i} c_j / sum_j c_j`` for ``i = 1..K``, then
    treated as :class:`PerPositionAcceptance` (same ``extrapolate`` rule).
    """

    kind: Literal["empirical"] = "empirical"
    accepted_counts: list[Annotated[float, Field(allow_inf_nan=False)]]

    @field_validator("accepted_counts")
    @classmethod
    def _check_counts(cls, counts: list[float]) -> list[float]:
        if len(counts) < 2:
            raise ValueError(
                f"accepted_counts = {counts} needs at least 2 entries "
                "(rounds with 0, 1, ..., K accepted draft tokens)"
            )
        for j, c in enumerate(counts):
            if c < 0:
                raise ValueError(f"accepted_counts[{j}] = {c} must be >= 0 (a number of draft rounds)")
        if sum(counts) <= 0:
            raise ValueError("accepted_counts sum to 0, need at least one draft round")
        return counts

    def _unconditional(self) -> FloatArray:
        c = np.asarray(self.accepted_counts, dtype=np.float64)
        at_least = np.cumsum(c[::-1])[::-1]  # at_least[j] = rounds with A >= j
        return at_least[1:] / at_least[0]


class RegimeAcceptance(_AcceptanceBase):
    """Bursty acceptance from easy and hard stretches of text.

    A sequence's positions come in blocks of ``block_tokens``; each block is *easy* with
    probability ``easy_fraction``, independently (uniforms keyed by seed, sequence and block).  A
    round starting in an easy (hard) block accepts each of its drafts with ``easy_rate``
    (``hard_rate``) until the first rejection (a truncated geometric).  For n-gram, *easy* is "a
    match exists" (copy runs, long accepted stretches) and ``hard_rate = 0`` means no match: the
    request proposes nothing and decodes normally.

    Over many rounds the fraction of rounds starting in easy blocks is ``f_k = pi (1 + E_h) /
    (pi (1 + E_h) + (1 - pi)(1 + E_e))`` with ``E_s = sum_{i<=k} rate_s^i`` the mean accepted drafts
    (rounds advance ``1 + A`` positions), so the unconditional per-position rates are ``r_i(k) =
    f_k easy_rate^i + (1 - f_k) hard_rate^i`` (boundary effects of blocks ignored).  Parameters
    are fitted to measured traces by :mod:`rlsim.calibration.acceptance`.
    """

    kind: Literal["regime"] = "regime"
    easy_fraction: float = Field(ge=0.0, le=1.0)
    easy_rate: float = Field(ge=0.0, le=1.0)
    hard_rate: float = Field(ge=0.0, le=1.0)
    block_tokens: int = Field(ge=1, description="length of an easy / hard stretch, tokens")

    def easy_round_fraction(self, k: int) -> float:
        """``f_k``: the fraction of rounds starting in easy blocks (see the class docstring)."""
        i = np.arange(1, k + 1)
        e_easy, e_hard = float((self.easy_rate ** i).sum()), float((self.hard_rate ** i).sum())
        num = self.easy_fraction * (1.0 + e_hard)
        den = num + (1.0 - self.easy_fraction) * (1.0 + e_easy)
        return num / den if den > 0 else 0.0

    def per_position_rates(self, k: int) -> FloatArray:
        i = np.arange(1, k + 1, dtype=np.float64)
        f = self.easy_round_fraction(k)
        return f * self.easy_rate ** i + (1.0 - f) * self.hard_rate ** i

    def _conditional(self, k: int) -> FloatArray:
        return conditional_from_unconditional(self.per_position_rates(k))


AcceptanceModel = Annotated[
    Union[ConstantAcceptance, PerPositionAcceptance, EmpiricalAcceptance, RegimeAcceptance], Field(discriminator="kind")
]


#: DeepSeek-V3-0324's MTP head reused at K = 7: AL 3.20 at temperature 0, 3.09 at temperature 1
#: (hardware_and_models.md C3 table, [NEBIUS]).
_T0_T1_AL = (7, 3.20, 3.09)


def temperature_scale() -> float:
    """Multiplier of greedy (temperature 0) conditional rates for requests sampled at temperature
    1.  vLLM's rejection sampler passes ``draft_probs = None``: a draft token is accepted with
    ``p_target(draft)`` at temperature > 0 instead of ``draft == argmax`` (C3), which accepts a
    little less often.  Derived from [NEBIUS]'s K = 7 pair by solving ``AL = (1 - a^(K+1)) / (1 -
    a)`` for an i.i.d. rate at each temperature (a rate ratio ~0.97); the same ratio for every
    drafter and position is an assumption."""
    from scipy.optimize import brentq

    k, al0, al1 = _T0_T1_AL
    solve = lambda al: brentq(lambda a: (1 - a ** (k + 1)) / (1 - a) - al, 1e-6, 1 - 1e-9)  # noqa: E731
    return solve(al1) / solve(al0)


def conditional_from_unconditional(rates: npt.ArrayLike) -> FloatArray:
    """``a_i = r_i / r_{i-1}`` with ``r_0 = 1`` and ``0 / 0 -> 0`` (rates non-increasing in [0, 1])."""
    r = np.asarray(rates, dtype=np.float64)
    prev = np.concatenate([[1.0], r[:-1]])
    out = np.zeros_like(r)
    np.divide(r, prev, out=out, where=prev > 0.0)
    return np.minimum(out, 1.0)


def sequence_scales(
    model: AcceptanceModel, k_max: int, seed: int, response_len: npt.ArrayLike
) -> FloatArray:
    """Per-sequence multipliers ``z_s / m`` of the conditional rates (all 1 without heterogeneity).

    ``z_s = F^-1(Phi(w_s))`` with ``F`` the CDF of ``Beta(kappa * m, kappa * (1 - m))`` and
    ``w_s = rho * q_s + sqrt(1 - rho**2) * e_s`` (Gaussian copula): ``e_s ~ N(0, 1)`` and ``q_s``
    the standardised normal score of sequence ``s``'s response-length rank (ties broken at
    random, so the marginal of ``w`` stays standard normal).  Draw order from
    ``Generator(PCG64(SeedSequence([seed, 0xACCE])))`` is fixed -- ``n`` normals, then ``n``
    tie-break uniforms -- whatever ``rho``, so changing ``rho`` re-pairs the same draws.
    """
    lengths = np.asarray(response_len, dtype=np.float64)
    n = lengths.size
    m = float(model.conditional_rates(k_max).mean())
    kappa = model.concentration
    if kappa is None or n == 0 or m <= 0.0 or m >= 1.0:
        return np.ones(n, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SCALE_STREAM])))
    noise = rng.standard_normal(n)
    tie_break = rng.random(n)
    rho = model.length_correlation
    w = rho * _normal_scores(lengths, tie_break) + math.sqrt(1.0 - rho * rho) * noise
    z = special.betaincinv(kappa * m, kappa * (1.0 - m), special.ndtr(w))
    return z / m


def _normal_scores(values: FloatArray, tie_break: FloatArray) -> FloatArray:
    """Van der Waerden scores ``Phi^-1((rank + 1/2) / n)``, rescaled to unit variance."""
    n = values.size
    ranks = np.empty(n, dtype=np.float64)
    ranks[np.lexsort((tie_break, values))] = np.arange(n)
    q = special.ndtri((ranks + 0.5) / n)
    rms = math.sqrt(float(np.mean(q * q)))
    return q / rms if rms > 0.0 else q


class AcceptanceSampler:
    """Accepted draft tokens per (sequence, draft round), deterministic and path independent.

    Built once per batch of sequences.  The per-sequence conditional rates (heterogeneity
    included, context decay not) are fixed at construction; round ``t`` of sequence ``s``
    accepts ``A = #{i <= k : u < P(A >= i)}`` with one uniform ``u = u(seed, seq_id_s, t)``
    (:func:`rlsim.speculation._hash.uniforms`) and ``P(A >= i) = prod_{j<=i} a_j(s) decay(ctx)``
    -- inverse-CDF sampling of the accepted prefix, one draw per round instead of k.  So a
    sequence's outcome in a round depends only on (seed, its id, the round index, k, its
    context length): not on batch composition, order, or how many rounds one call samples; and
    a round with smaller ``k`` accepts ``min(A, k)`` of the same draw (adaptive ``k`` compares
    like with like).

    Attributes: ``seq_ids`` (n,), ``scales`` (n,) the heterogeneity multipliers, and
    ``conditional`` (n, k_max) the per-sequence conditional rates; all read-only.
    """

    def __init__(
        self,
        model: AcceptanceModel,
        k_max: int,
        seed: int,
        seq_ids: npt.ArrayLike,
        response_len: npt.ArrayLike,
        extra_scale: npt.ArrayLike | None = None,
    ) -> None:
        """``extra_scale`` (n,) multiplies each sequence's conditional rates (clipped to 1), e.g.
        a frozen drafter's drift as the policy moves away from it (rlsim.rl)."""
        assert k_max >= 1 and seed >= 0, (k_max, seed)
        self.model = model
        self.k_max = int(k_max)
        self.seed = int(seed)
        self.seq_ids = _read_only(np.array(seq_ids, dtype=np.int64))
        lengths = np.asarray(response_len)
        assert lengths.shape == self.seq_ids.shape and self.seq_ids.ndim == 1, (lengths.shape, self.seq_ids.shape)
        scales = sequence_scales(model, self.k_max, self.seed, lengths)
        if extra_scale is not None:
            scales = scales * np.broadcast_to(np.asarray(extra_scale, dtype=np.float64), scales.shape)
        self.scales = _read_only(scales)
        base = model.conditional_rates(self.k_max)
        self.conditional = _read_only(np.clip(self.scales[:, None] * base[None, :], 0.0, 1.0))
        self.needs_context = model.context_decay is not None or isinstance(model, RegimeAcceptance)
        self._survive = _read_only(np.cumprod(self.conditional, axis=1))  # P(A >= i), no decay
        self._powers: dict[int, FloatArray] = {}  # k -> table of the decay factor's powers by bucket
        self._seq_keys = _read_only(seq_keys(self.seed, self.seq_ids))
        n = self.seq_ids.size
        contiguous = n > 0 and bool(np.array_equal(self.seq_ids, self.seq_ids[0] + np.arange(n)))
        self._id_base = int(self.seq_ids[0]) if contiguous else None
        self._id_order = None if contiguous else np.argsort(self.seq_ids, kind="stable")

    def rescale(self, seq_idx: npt.ArrayLike, factor: float) -> None:
        """Multiply the heterogeneity scales of sequences ``seq_idx`` by ``factor`` (their
        conditional rates clipped to 1 again), before any of their rounds is drawn: a drafter
        that improves during the run (rlsim.rl.policies.drafter_tail_training)."""
        idx = np.asarray(seq_idx, dtype=np.intp)
        scales = self.scales.copy()
        scales[idx] *= float(factor)
        self.scales = _read_only(scales)
        conditional = self.conditional.copy()
        conditional[idx] = np.clip(scales[idx, None] * self.model.conditional_rates(self.k_max)[None, :], 0.0, 1.0)
        self.conditional = _read_only(conditional)
        self._survive = _read_only(np.cumprod(self.conditional, axis=1))

    def index_of(self, seq_ids: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Positions in the construction arrays of global sequence ids ``seq_ids`` (every id must
        have been given at construction)."""
        ids = np.asarray(seq_ids, dtype=np.int64)
        if self._id_base is not None:
            idx = ids - self._id_base
            assert idx.size == 0 or (idx.min() >= 0 and idx.max() < self.seq_ids.size), "unknown sequence ids"
        else:
            pos = np.searchsorted(self.seq_ids, ids, sorter=self._id_order)
            idx = self._id_order[np.minimum(pos, max(self.seq_ids.size - 1, 0))]
            assert np.array_equal(self.seq_ids[idx], ids), "unknown sequence ids"
        return idx.astype(np.intp, copy=False)

    def expected_tokens_per_round(self, k: int) -> float:
        """Mean tokens per round of the base model (its AL: no heterogeneity, no context decay)."""
        return self.model.mean_acceptance_length(k)

    def sample(
        self,
        seq_idx: npt.ArrayLike,
        first_round: npt.ArrayLike,
        num_rounds: int,
        k: int,
        ctx: npt.ArrayLike | None = None,
        u: npt.NDArray[np.float64] | None = None,
    ) -> IntArray:
        """Accepted draft tokens, int64 ``(num_rounds, B)``: row ``r`` is round ``first_round + r``.

        ``seq_idx`` (B,) indexes the arrays given at construction; ``first_round`` (B,) is each
        sequence's next draft-round index; ``k <= k_max`` drafts per round.  ``ctx`` (anything
        broadcastable to ``(num_rounds, B)``) gives context lengths for ``context_decay`` and is
        required when the model has one.  Memory is ``O(num_rounds * B * k)``: keep it <= ~1e6.
        ``u``: the rounds' uniforms from :meth:`round_uniforms` (computed here when None).
        """
        idx = np.asarray(seq_idx, dtype=np.intp)
        first = np.asarray(first_round, dtype=np.int64)
        assert idx.ndim == 1 and first.shape == idx.shape, (idx.shape, first.shape)
        assert 0 <= k <= self.k_max and num_rounds >= 0, (k, self.k_max, num_rounds)
        if k == 0 or num_rounds == 0 or idx.size == 0:
            return np.zeros((num_rounds, idx.size), dtype=np.int64)
        if isinstance(self.model, RegimeAcceptance):
            survive = self._regime_survive(idx, num_rounds, k, ctx)
        elif self.model.context_decay is None:
            survive = self._survive[idx, :k][None, :, :]
        else:  # P(A >= i) = prod_{j <= i} a_j f(ctx) = survive_i f^i
            assert ctx is not None, "the acceptance model has context_decay: pass ctx (context lengths)"
            survive = self._survive[idx, :k][None, :, :] * self._decay_powers(ctx, k)
        if u is None:
            u = self.round_uniforms(idx, first, num_rounds)
        return (u[:, :, None] < survive).sum(axis=-1, dtype=np.int64)

    def survive_at(self, seq_idx: npt.ArrayLike, k: int, ctx: npt.ArrayLike) -> FloatArray:
        """``P(A >= i)``, ``i = 1..k``, of sequences ``seq_idx`` (n,) at contexts ``ctx`` (n,) with
        context decay, ``(n, k)`` (the values :meth:`sample` compares its uniforms with)."""
        return self._survive[np.asarray(seq_idx, dtype=np.intp), :k] * self._decay_powers(ctx, k)

    def _decay_powers(self, ctx: npt.ArrayLike, k: int) -> FloatArray:
        """``f(bucket start) ** i`` for ``i = 1..k`` at context lengths ``ctx``, ``ctx.shape + (k,)``:
        looked up by bucket in a table (the same floats as evaluating the factor per element)."""
        bucket = np.floor(np.asarray(ctx, dtype=np.float64) / DECAY_BUCKET_TOKENS).astype(np.int64)
        top = int(bucket.max(initial=0)) + 1
        table = self._powers.get(k)
        if table is None or table.shape[0] < top:
            starts = np.arange(max(top, 2 * (0 if table is None else table.shape[0])), dtype=np.float64) * DECAY_BUCKET_TOKENS
            table = self.model.context_decay.factor(starts)[:, None] ** np.arange(1, k + 1, dtype=np.float64)
            self._powers[k] = table
        return table[np.maximum(bucket, 0)]

    def context_keys(self, ctx: npt.ArrayLike) -> list[np.ndarray]:
        """What of a round's context its acceptance depends on: the decay bucket and the regime
        block (equal keys, equal draws)."""
        c = np.asarray(ctx, dtype=np.float64)
        keys = []
        if self.model.context_decay is not None:
            keys.append(np.floor(c / DECAY_BUCKET_TOKENS))
        if isinstance(self.model, RegimeAcceptance):
            keys.append(np.floor(c / self.model.block_tokens))
        return keys

    def round_uniforms(self, seq_idx: npt.ArrayLike, first_round: npt.ArrayLike, num_rounds: int) -> FloatArray:
        """The uniform of each (round, sequence), ``(num_rounds, B)`` (one per round: the accepted
        prefix is drawn by inverse CDF)."""
        idx = np.asarray(seq_idx, dtype=np.intp)
        rounds = np.asarray(first_round, dtype=np.int64)[None, :] + np.arange(num_rounds, dtype=np.int64)[:, None]
        return round_uniforms(self._seq_keys[idx][None, :], rounds)

    def seq_round_uniforms(self, seq_idx: npt.ArrayLike, first_round: npt.ArrayLike, num_rounds: int) -> FloatArray:
        """:meth:`round_uniforms` laid out by sequence, ``(B, num_rounds)`` (the same values)."""
        idx = np.asarray(seq_idx, dtype=np.intp)
        rounds = np.asarray(first_round, dtype=np.int64)[:, None] + np.arange(num_rounds, dtype=np.int64)[None, :]
        return round_uniforms(self._seq_keys[idx][:, None], rounds)

    def _regime_survive(self, idx: npt.NDArray[np.intp], num_rounds: int, k: int, ctx: npt.ArrayLike | None) -> FloatArray:
        """``P(A >= i)``, ``(num_rounds, B, k)``, from the regime of the block each round starts in."""
        m = self.model
        assert ctx is not None, "regime acceptance needs ctx (the rounds' context positions)"
        pos = np.broadcast_to(np.asarray(ctx, dtype=np.float64), (num_rounds, idx.size))
        block = (pos // m.block_tokens).astype(np.int64)
        easy = uniforms(self.seed, self.seq_ids[idx][None, :], block, _REGIME_POS) < m.easy_fraction
        rate = np.where(easy, m.easy_rate, m.hard_rate) * self.scales[idx][None, :]
        if m.context_decay is not None:
            rate = rate * m.context_decay.factor(_bucketed(pos))
        rate = np.clip(rate, 0.0, 1.0)
        return rate[:, :, None] ** np.arange(1, k + 1, dtype=np.float64)[None, None, :]


def _bucketed(ctx: npt.ArrayLike) -> np.ndarray:
    """The start of each context's :data:`DECAY_BUCKET_TOKENS` bucket."""
    return np.floor(np.asarray(ctx, dtype=np.float64) / DECAY_BUCKET_TOKENS) * DECAY_BUCKET_TOKENS


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a
