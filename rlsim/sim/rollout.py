"""Simulate one RL batch of rollouts on a pool of data-parallel vLLM engines.

GRPO groups are dealt to engines by ``rollout.dispatch`` (round-robin by default; load- and
length-aware options: rlsim.rl.dispatch); a group stays on one engine so its samples share the
prompt's KV blocks.  Engines do not interact during a rollout and each keeps its own clock, so
the event loop is the thinnest there is: each engine is stepped to completion in turn (an
interleaving simpy loop gives the same segments; the segment table is sorted by engine and
start time either way) -- which is also what lets engines run in separate processes.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from rlsim.cost.forward import COMPONENTS
from rlsim.engine import Engine, Segment
from rlsim.errors import ConfigError
from rlsim.results.result import RunResult
from rlsim.sim.build import Resolved
from rlsim.sim.engines import build_engines, members, sequence_table, spec_decode_summary, spec_runtime
from rlsim.speculation.runtime import SpecRuntime
from rlsim.units import GB
from rlsim.workload import Batch, sample_batch

__all__ = ["RolloutResult", "simulate_rollout", "rng_streams"]


#: A rollout's result is the common :class:`~rlsim.results.RunResult` (``kind="rollout"``).
RolloutResult = RunResult


def rng_streams(seed: int, n: int = 4) -> list[np.random.Generator]:
    """Independent generators per subsystem: [workload, acceptance, reserved, reserved]."""
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(n)]


def clip_to_model_len(batch: Batch, res: Resolved) -> np.ndarray:
    """Responses cut at ``max_model_len`` minus the prompt; a prompt that leaves no room is a ConfigError."""
    limit = res.max_model_len
    too_long = batch.prompt_len >= limit
    if np.any(too_long):
        p = int(batch.prompt_len[too_long].max())
        raise ConfigError.at(res.source, "rollout.engine.max_model_len", limit,
                             f"leaves no room for a response to a {p}-token prompt (must exceed the longest prompt)")
    return np.minimum(batch.response_len, limit - batch.prompt_len)


def _owners(res: Resolved, batch: Batch, response: np.ndarray) -> np.ndarray:
    """Engine of each sequence under ``rollout.dispatch`` (rlsim.rl.dispatch), all engines empty."""
    from rlsim.rl.dispatch import assign_groups

    ro, seed = res.scenario.rollout, res.scenario.seed
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(9,))))
    expected = res.scenario.workload.mean_response_tokens_estimate(res.base_dir)
    owner, _ = assign_groups(ro.dispatch, batch.group_id, batch.prompt_len, response, np.zeros(res.num_engines),
                             expected, ro.dispatch_length_noise, rng)
    return owner


def _run(engines: list[Engine], workers: int = 1) -> list[Segment]:
    """Every engine's segments, each engine stepped until its sequences are done; with
    ``workers`` > 1 the engines are split into that many contiguous slices, each run in a
    forked process (:func:`rlsim._fork.fork_map`), and their records (requests, stats) copied
    back: the same numbers as one process, since engines share nothing a run changes but cached
    draws and op times (each a pure function of its key)."""
    from rlsim._fork import fork_map

    workers = min(workers, len(engines))
    if workers <= 1:
        return _run_slice(engines)
    bounds = np.linspace(0, len(engines), workers + 1).round().astype(int)
    slices = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    outcomes = fork_map(lambda ab: _run_records(engines[ab[0]:ab[1]]), slices, workers)
    segments: list[Segment] = []
    for (a, _), (records, segs) in zip(slices, outcomes):
        for engine, members_records in zip(engines[a:], records):
            for member, (requests, stats, peak_running, max_kv_used) in zip(engine.members, members_records):
                member.requests, member.stats, member.max_kv_used = requests, stats, max_kv_used
                member.scheduler.peak_running = peak_running
        segments.extend(segs)
    return segments


def _run_slice(engines: list[Engine]) -> list[Segment]:
    segments: list[Segment] = []
    for engine in engines:
        advance, done, extend = engine.advance, engine.done, segments.extend
        while not done():
            extend(advance())
    return segments


def _run_records(engines: list[Engine]):
    """Run ``engines`` (in a worker); their records and segments."""
    segments = _run_slice(engines)
    records = [[(m.requests, m.stats, m.scheduler.peak_running, m.max_kv_used) for m in e.members] for e in engines]
    return records, segments


def simulate_rollout(res: Resolved, seed: int | None = None, speculative: bool = True, paired: bool = True,
                     workers: int = 1) -> RolloutResult:
    """Simulate one batch (num_prompts_per_step x num_generations_per_prompt sequences);
    ``workers`` > 1 runs the engines in that many forked processes (identical results).

    With a ``speculative_config`` (and ``speculative``), the run speculates and, if ``paired``,
    the baseline without speculation is simulated on the identical sequences; the summary then
    gains ``baseline`` and ``speedup.rollout`` = baseline rollout time / speculative rollout time.
    """
    sc = res.scenario
    seed = sc.seed if seed is None else seed
    rng_workload, rng_accept = rng_streams(seed)[:2]
    batch = sample_batch(sc.workload, rng_workload, res.base_dir)
    response = clip_to_model_len(batch, res)
    spec = None
    if speculative and res.speculative is not None:
        accept_seed = int(rng_accept.integers(0, 2**62))
        spec = spec_runtime(res, batch.seq_id, response, accept_seed, res.forward_model())
    result = _simulate_batch(res, seed, batch, response, spec, workers)
    if spec is not None and paired:
        base = _simulate_batch(res, seed, batch, response, None, workers)
        result.baseline = base
        result.summary["baseline"] = base.summary
        result.summary["speedup"] = {"rollout": base.summary["rollout_time_s"] / result.summary["rollout_time_s"]}
    return result


def _simulate_batch(res: Resolved, seed: int, batch: Batch, response: np.ndarray, spec: SpecRuntime | None,
                    workers: int = 1) -> RolloutResult:
    owner = _owners(res, batch, response)  # a group stays on one engine
    engines = build_engines(res, spec, owner, batch.seq_id, batch.group_id, batch.prompt_len, response)
    segments = _run(engines, workers)
    seqs = _sequence_table(engines, batch)
    segs = pd.DataFrame([s.__dict__ for s in segments]).sort_values(["engine", "t0_s"], kind="stable").reset_index(drop=True)
    summary = _summary(res, seed, engines, seqs, segs, spec)
    return RolloutResult(summary, seqs, segs)


def _sequence_table(engines: list[Engine], batch: Batch) -> pd.DataFrame:
    df = sequence_table(engines)
    df.insert(1, "group_id", batch.group_id[df["seq_id"].to_numpy()])
    df["truncated"] = batch.truncated[df["seq_id"].to_numpy()] | (df["response_len"].to_numpy() < batch.response_len[df["seq_id"].to_numpy()])
    return df


def _summary(res: Resolved, seed: int, engines: list[Engine], seqs: pd.DataFrame, segs: pd.DataFrame,
             spec: SpecRuntime | None = None) -> dict:
    finish = np.sort(seqs["finish_s"].to_numpy())
    n = len(finish)
    rollout_s = float(finish[-1])
    t90 = float(finish[int(np.ceil(0.9 * n)) - 1])
    generated = int(seqs["generated"].sum())
    dur = (segs["t1_s"] - segs["t0_s"]).to_numpy()
    busy_engine_s = float(dur.sum())
    mean_running = float((segs["running"].to_numpy() * dur).sum() / busy_engine_s) if busy_engine_s > 0 else 0.0
    engines = members(engines)
    comp: dict[str, float] = {}
    for e in engines:
        for k, v in e.stats.components_s.items():
            comp[k] = comp.get(k, 0.0) + v
    total_comp = sum(comp.values())
    hw, arch = res.hw, res.arch
    mem = res.spec_memory if spec is not None else res.memory
    sp = res.speculative
    out = {
        "scenario": res.scenario.name,
        "seed": seed,
        "rollout_time_s": rollout_s,
        "generated_tokens": generated,
        "output_tokens_per_s": generated / rollout_s,
        "num_sequences": n,
        "preemptions": int(seqs["preemptions"].sum()),
        "tail_time_s": rollout_s - t90,
        "tail_frac": (rollout_s - t90) / rollout_s,
        "time_90pct_finished_s": t90,
        "mean_running_batch": mean_running,
        "peak_running_batch": int(max(e.peak_running for e in engines)),
        "engine_iterations": int(sum(e.stats.iterations for e in engines)),
        "prefill_tokens": int(sum(e.stats.prefill_tokens for e in engines)),
        "recomputed_tokens": int(sum(e.stats.recomputed_tokens for e in engines)),
        "mean_response_tokens": float(seqs["response_len"].mean()),
        "truncated_frac": float(seqs["truncated"].mean()),
        "num_engines": res.num_engines,
        "tensor_parallel_size": res.tp,
        "rollout_gpus": res.rollout_gpus,
        "engine_busy_frac": busy_engine_s / (rollout_s * res.num_engines),
        "time_breakdown_frac": {k: v / total_comp for k, v in comp.items()} if total_comp else {},
        "hardware": hw.calibration_summary(),
        "model": {"name": arch.name, "total_params": arch.total_params, "active_params": arch.active_params,
                  "weight_dtype": res.weight_dtype, "kv_cache_dtype": res.kv_dtype},
        "memory": {"weight_gb_per_gpu": mem.weight_bytes / GB, "kv_cache_gb_per_gpu": mem.kv_bytes / GB,
                   "kv_capacity_tokens_per_engine": mem.kv_capacity_tokens, "max_model_len": res.max_model_len,
                   "peak_kv_blocks_used_frac": max(e.max_kv_used for e in engines) / max(1, mem.num_blocks)},
        "speculative": None if spec is None else {
            "method": sp.method, "num_speculative_tokens": sp.num_speculative_tokens, "drafter": res.drafter.name,
            "adaptive_k": spec.adaptive, "disable_by_batch_size": sp.disable_by_batch_size,
            "spec_iterations_frac": sum(e.stats.spec_iterations for e in engines) / max(1, sum(e.stats.iterations for e in engines)),
            "engine_time_s": [spec_time_split(e) for e in engines],
        },
    }
    out.update(spec_decode_summary(engines, None if spec is None else spec.k_max))
    out["warnings"] = _warnings(res)
    return out


def spec_time_split(engine) -> dict:
    """One engine's time: target passes (verify and prefill), drafting, verification beyond the
    target's kernels (rejection sampler), exposed host and the drafter's critical-path host time."""
    c = engine.stats.components_s
    return {"engine": engine.id, "target_pass_s": sum(c[k] for k in COMPONENTS), "drafting_s": c["drafting"],
            "rejection_sampling_s": c["rejection_sampling"], "host_exposed_s": c["host_exposed"],
            "drafting_host_s": c["drafting_host"], "busy_s": engine.stats.busy_s}


def _warnings(res: Resolved) -> list[str]:
    from rlsim.sim.warnings import run_warnings

    return run_warnings(res)
