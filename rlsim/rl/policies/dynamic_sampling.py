"""DAPO dynamic sampling: over-generate, drop the groups whose rewards are all equal, refill.

Mechanism (DAPO, arXiv:2503.14476, Sec. 3.2 "Dynamic Sampling" and Algorithm 1): a GRPO group
whose ``n`` samples all get the same reward (all correct or all wrong) has zero advantage and
no gradient; DAPO over-samples prompts and filters such groups out "until the batch is fully
filled with samples whose accuracy is neither 0 nor 1".  As in verl's DAPO recipe, generation
runs in rounds of ``ceil(oversample_factor x G)`` groups (G = ``num_prompts_per_step``) until G
groups are kept (at most ``max_rounds``); the trainer trains the first G kept groups.

Reward-variance model (assumed; DAPO reports only that the share of all-correct prompts grows
during training, Sec. 3.2): each group's pass rate ``p ~ Beta(alpha, beta)``; its ``n`` binary
rewards are i.i.d. Bernoulli(p), so the group is filtered with probability

    q = E[p^n + (1 - p)^n] = B(alpha + n, beta) / B(alpha, beta) + B(alpha, beta + n) / B(alpha, beta)

(:func:`filtered_probability`; alpha = beta = 1 gives q = 2 / (n + 1)).

Simplification: the rounds of one step are dealt together (verl runs them one after another),
so when a second round is needed the step time is a lower bound; with the default factor a
second round is rare (:func:`expected_rounds_one_suffices`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlsim.rl.policies.seam import DATA_COLUMNS, PolicyPlan, PolicySeam, restride

__all__ = ["DynamicSampling", "DynamicSamplingSeam", "filtered_probability", "expected_rounds_one_suffices"]


class DynamicSampling(BaseModel):
    """``rl.policy`` of DAPO's dynamic sampling."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["dynamic_sampling"] = "dynamic_sampling"
    oversample_factor: float = Field(
        default=3.0, ge=1.0, le=16.0,
        description="groups generated per round / groups trained (verl recipe/dapo: gen_prompt_bsz = 3 x "
                    "train_prompt_bsz; from the recipe script, unverified)")
    max_rounds: int = Field(default=4, ge=1, le=16, description="rounds before training a short batch (assumed)")
    pass_rate_alpha: float = Field(default=0.5, gt=0, description="Beta(alpha, beta) per-group pass rate (assumed)")
    pass_rate_beta: float = Field(default=0.5, gt=0, description="Beta(alpha, beta) per-group pass rate (assumed)")


def filtered_probability(alpha: float, beta: float, n: int) -> float:
    """Probability that a group of ``n`` Bernoulli(p) rewards, p ~ Beta(alpha, beta), is all equal."""
    from scipy.special import betaln  # lazy (scipy / pandas: the config imports this module)

    return float(math.exp(betaln(alpha + n, beta) - betaln(alpha, beta))
                 + math.exp(betaln(alpha, beta + n) - betaln(alpha, beta)))


def expected_rounds_one_suffices(alpha: float, beta: float, n: int, groups: int, round_groups: int) -> float:
    """P(one round of ``round_groups`` groups keeps at least ``groups``): binomial in the kept count."""
    q = filtered_probability(alpha, beta, n)
    from scipy.stats import binom

    return float(binom.sf(groups - 1, round_groups, 1.0 - q))


class DynamicSamplingSeam(PolicySeam):
    name = "dynamic_sampling"

    def __init__(self, cfg: DynamicSampling) -> None:
        self.cfg = cfg

    def plan(self, res, base: list, seed: int) -> PolicyPlan:
        wl = res.scenario.workload
        G, n = wl.num_prompts_per_step, wl.num_generations_per_prompt
        M = int(math.ceil(self.cfg.oversample_factor * G - 1e-9))
        gen, train, rows = [], [], []
        for t, b in enumerate(base):
            prompts, responses = _groups(b, n)
            k = 0
            while len(prompts) < M * self.cfg.max_rounds:
                extra = _extra_batch(res, seed, t, k)
                p2, r2 = _groups(extra, n)
                prompts, responses, k = np.concatenate([prompts, p2]), np.concatenate([responses, r2]), k + 1
            kept = self._kept(seed, t, len(prompts), n)
            rounds = 1
            while kept[: rounds * M].sum() < G and rounds < self.cfg.max_rounds:
                rounds += 1
            used = rounds * M
            keep_idx = np.flatnonzero(kept[:used])[:G]
            gen.append((np.repeat(np.arange(used), n), np.repeat(prompts[:used], n), responses[:used].ravel()))
            train.append((np.repeat(np.arange(len(keep_idx)), n), np.repeat(prompts[keep_idx], n),
                          responses[keep_idx].ravel()))
            rows.append((used * n, len(keep_idx) * n, int(responses[keep_idx].sum()), int(used - kept[:used].sum()),
                         used / max(1, len(keep_idx))))
        generate, stride = restride(gen)
        trained, _ = restride(train)
        import pandas as pd

        data = pd.DataFrame(rows, columns=list(DATA_COLUMNS[:5]))
        for c in ("off_policy_token_share", "off_policy_seq_share", "mean_staleness_steps"):
            data[c] = 0.0
        return PolicyPlan(generate, trained, data, stride)

    def _kept(self, seed: int, t: int, groups: int, n: int) -> np.ndarray:
        """Per group (in generation order): True when its rewards differ (the group trains)."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(18, t))))
        p = rng.beta(self.cfg.pass_rate_alpha, self.cfg.pass_rate_beta, groups)
        correct = rng.binomial(n, p)
        return (correct > 0) & (correct < n)


def _groups(b, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompt per group, responses (groups, n)) of a step batch whose groups are consecutive."""
    g = len(b.prompt) // n
    return b.prompt.reshape(g, n)[:, 0].copy(), b.response.reshape(g, n).copy()


def _extra_batch(res, seed: int, t: int, k: int):
    """The k-th extra workload batch of step t (its own seeded stream; the base batch is untouched)."""
    from rlsim.rl.pipeline import StepBatch
    from rlsim.sim.rollout import clip_to_model_len
    from rlsim.workload import sample_batch

    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(17, t, k))))
    b = sample_batch(res.scenario.workload, rng, res.base_dir)
    return StepBatch(b.seq_id, b.group_id, b.prompt_len, clip_to_model_len(b, res))
