"""The engine factory: vLLM engines (and their speculation runtime) for a resolved scenario.

One place builds engines for every caller -- one rollout batch (:mod:`rlsim.sim.rollout`), the
RL engine pool (:mod:`rlsim.rl.pipeline`) and request-serving benchmarks -- so a new engine
setting is wired once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from rlsim.cost.dp import DataParallelForward
from rlsim.engine import Engine, EngineParams
from rlsim.engine.dp_group import DataParallelGroup
from rlsim.sim.build import Resolved
from rlsim.speculation.acceptance import AcceptanceSampler, temperature_scale
from rlsim.speculation.runtime import SpecRuntime

__all__ = ["engine_params", "spec_runtime", "build_engines", "sequence_table", "spec_decode_summary", "members"]


def engine_params(res: Resolved, speculative: bool = False) -> EngineParams:
    """Scheduler and host settings of the scenario's engines (KV blocks with or without the drafter)."""
    e = res.scenario.rollout.engine
    memory = res.spec_memory if speculative else res.memory
    c = e.cpu_overhead
    return EngineParams(
        max_num_seqs=e.max_num_seqs,
        max_num_batched_tokens=e.max_num_batched_tokens,
        block_size=e.block_size,
        num_blocks=memory.num_blocks,
        enable_chunked_prefill=e.enable_chunked_prefill,
        enable_prefix_caching=e.enable_prefix_caching,
        async_scheduling=e.async_scheduling,
        cpu_step_s=c.step_us * 1e-6,
        cpu_per_seq_s=c.per_seq_us * 1e-6,
        cpu_per_prefill_token_s=c.per_prefill_token_us * 1e-6,
        async_exposed_s=c.async_exposed_us * 1e-6,
        async_exposed_per_seq_s=c.async_exposed_per_seq_us * 1e-6,
        fast=res.scenario.simulation.mode == "fast",
        scheduling_policy=e.scheduling_policy,
    )


def spec_runtime(res: Resolved, seq_ids: np.ndarray, response: np.ndarray, seed: int, fwd, extra_scale=None,
                 draft_budget=None) -> SpecRuntime:
    """Drafter, acceptance sampler and k policy of a scenario's speculative_config.

    ``extra_scale`` (per sequence) multiplies acceptance, e.g. a frozen drafter's drift in RL;
    ``draft_budget`` (per sequence, None: none) caps the drafts each verifies (SpecRuntime)."""
    spec = res.speculative
    k = spec.num_speculative_tokens
    if spec.acceptance.measured_temperature == 0 and spec.sampling_temperature > 0:
        t = temperature_scale()  # greedy-measured rates for requests sampled at temperature > 0
        extra_scale = t if extra_scale is None else np.asarray(extra_scale) * t
    sampler = AcceptanceSampler(spec.acceptance, k, seed, seq_ids, response, extra_scale=extra_scale)
    expected = np.array([spec.acceptance.mean_acceptance_length(j) - 1.0 if j else 0.0 for j in range(k + 1)])
    adaptive = spec.adaptive_k is not None and spec.adaptive_k.enabled
    min_k = min(spec.adaptive_k.min_k, k) if spec.adaptive_k is not None else 0
    budgets = None if draft_budget is None else np.asarray(draft_budget, dtype=np.int64)
    return SpecRuntime(k, res.drafter, sampler, fwd, expected, spec.disable_by_batch_size, adaptive, min_k,
                       spec.sampling_temperature, budgets=budgets)


def build_engines(res: Resolved, spec: SpecRuntime | None, owner: np.ndarray | None = None, seq_ids=None,
                  group_ids=None, prompt=None, response=None, record_token_gaps: bool = False,
                  async_admission_lag: bool = False) -> list[Engine]:
    """``res.num_engines`` engines; with ``owner`` (engine of each sequence) each gets its share
    of the sequences, else all start empty (fed later with ``add_sequences``).
    ``record_token_gaps`` keeps inter-token latencies, ``async_admission_lag`` delays arrivals
    by the step async scheduling decided ahead (serving benchmarks; see EngineParams)."""
    fwd = res.forward_model() if spec is None else spec.target
    params = engine_params(res, speculative=spec is not None)
    if record_token_gaps or async_admission_lag:
        params = dataclasses.replace(params, record_token_gaps=record_token_gaps, async_admission_lag=async_admission_lag)
    engines = []
    for e in range(res.num_engines):
        engine = _engine(res, e, fwd, params, spec)
        if owner is not None:
            idx = np.flatnonzero(owner == e)
            engine.add_sequences(seq_ids[idx], group_ids[idx], prompt[idx], response[idx])
        engines.append(engine)
    return engines


def _engine(res: Resolved, engine_id: int, fwd, params: EngineParams, spec):
    """One engine, or a lock-step group of ``res.dp`` data-parallel ranks."""
    empty = np.zeros(0, dtype=np.int64)
    if not res.lockstep:
        return Engine(engine_id, fwd, params, empty, empty, empty, empty, spec=spec)
    ranks = [Engine(engine_id, fwd, params, empty, empty, empty, empty, spec=spec) for _ in range(res.dp)]
    return DataParallelGroup(engine_id, ranks, DataParallelForward(fwd))


def members(engines) -> list[Engine]:
    """The engines whose records summaries read: each engine, or each rank of a DP group."""
    return [m for e in engines for m in e.members]


def sequence_table(engines: list[Engine], arrivals: bool = False) -> pd.DataFrame:
    """One row per sequence the engines served, by global id: engine, lengths, tokens emitted,
    preemptions, first admission, first token and finish times (and arrival times); after a
    migration, its final row only, with ``moved_in`` (1: the request arrived by migration)."""
    parts = []
    migrated = any(e.requests.moved_in.any() for e in members(engines))  # rlsim.rl.policies.tail_migration
    for e in members(engines):
        r = e.requests
        moved = ~np.isnan(r.moved_s)  # rows migrated away (their request goes on elsewhere)
        extra = {"moved_in": r.moved_in} if migrated else {}
        part = pd.DataFrame({
            "seq_id": r.seq_ids, "engine": e.id, "prompt_len": r.prompt, "response_len": r.response,
            "generated": r.generated, "preemptions": r.preemptions, "admit_s": r.admit_s,
            "first_token_s": r.first_token_s, "finish_s": r.finish_s,
            **({"arrival_s": r.arrival_s, "first_token_seg": r.first_token_seg, "finish_seg": r.finish_seg}
               if arrivals else {}),
            **extra,
        })
        parts.append(part[~moved] if moved.any() else part)
    return pd.concat(parts).sort_values("seq_id").reset_index(drop=True)


def spec_decode_summary(engines: list[Engine], k_max: int | None) -> dict:
    """vLLM's spec-decode metrics over the engines' run (None values without speculation:
    ``k_max`` None): mean acceptance length ``1 + accepted / drafts``, unconditional
    per-position rates, draft acceptance rate ``accepted / drafted`` and the raw counters."""
    if k_max is None:
        return {"mean_acceptance_length": None, "per_position_acceptance": None, "draft_acceptance_rate": None,
                "num_drafts": 0, "num_draft_tokens": 0, "num_accepted_tokens": 0}
    engines = members(engines)
    drafts = sum(e.stats.num_drafts for e in engines)
    draft_tokens = sum(e.stats.num_draft_tokens for e in engines)
    accepted = sum(e.stats.num_accepted_tokens for e in engines)
    per_pos = sum(e.stats.accepted_per_pos for e in engines)[:k_max]
    return {
        "mean_acceptance_length": 1.0 + accepted / drafts if drafts else None,
        "per_position_acceptance": (per_pos / drafts).tolist() if drafts else None,
        "draft_acceptance_rate": accepted / draft_tokens if draft_tokens else None,
        "num_drafts": int(drafts), "num_draft_tokens": int(draft_tokens), "num_accepted_tokens": int(accepted),
    }
