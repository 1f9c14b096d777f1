"""A simulated ``vllm bench serve``: a client sends requests to the scenario's engines.

The client (one simpy process) sends request ``i`` once it is ready (its arrival time) and
fewer than ``max_concurrency`` requests are in flight (vLLM's semaphore; a finished request
frees its slot at once, so an unlimited rate with a cap is a closed loop).  A request goes to the
engine with the lowest ``4 x waiting + running`` (vLLM's data-parallel load balancer,
vllm/v1/engine/core_client.py), ties to the lowest index.  A request reaching an engine during
a step is scheduled from the next step on (the engine does not re-plan a step in flight).
Engines run as in a rollout (:class:`rlsim.rl.pool.EnginePool`); the RL rollout is the special
case "every request ready at t = 0, no cap".
"""

from __future__ import annotations

import numpy as np
import simpy

from rlsim.results.result import RunResult
from rlsim.rl.pool import EnginePool
from rlsim.serving.metrics import bench_metrics
from rlsim.serving.requests import Requests, sample_requests
from rlsim.sim.build import Resolved
from rlsim.sim.engines import build_engines, members, sequence_table, spec_decode_summary, spec_runtime

__all__ = ["simulate_bench"]


class _Client:
    """Sends the requests, holding at most ``cap`` in flight; each passes the API server (one
    process, first come first served: ``frontend_s(prompt)`` each) before it reaches an engine."""

    def __init__(self, env: simpy.Environment, reqs: Requests, cap: int | None, frontend_s, progress=None) -> None:
        self.env, self.reqs, self.cap, self.frontend_s = env, reqs, cap, frontend_s
        self.progress, self.done = progress, 0
        self._report_every = max(1, len(reqs) // 200)  # at most ~200 bar updates
        self.pool: EnginePool | None = None
        self.in_flight = 0
        self.send_s = np.full(len(reqs), np.nan)
        self._slot: simpy.Event | None = None
        self._frontend_free_s = 0.0

    def finished(self, seq_ids: list[int], t: float) -> None:
        self.in_flight -= len(seq_ids)
        if self.progress is not None:
            before, self.done = self.done, self.done + len(seq_ids)
            if self.done // self._report_every > before // self._report_every or self.done == len(self.reqs):
                self.progress(self.done, len(self.reqs))
        if self._slot is not None and not self._slot.triggered:
            self._slot.succeed()

    def run(self):
        r = self.reqs
        shared = r.prefix_len > 0
        for i in range(len(r)):
            if r.ready_s[i] > self.env.now:
                yield self.env.timeout(r.ready_s[i] - self.env.now)
            while self.cap is not None and self.in_flight >= self.cap:
                self._slot = self.env.event()
                yield self._slot
            self.in_flight += 1
            self.send_s[i] = self.env.now
            reach_s = max(self.env.now, self._frontend_free_s) + self.frontend_s(int(r.prompt_len[i]))
            self._frontend_free_s = reach_s
            self.env.process(self._deliver(i, reach_s, shared))

    def _deliver(self, i: int, reach_s: float, shared: bool):
        if reach_s > self.env.now:
            yield self.env.timeout(reach_s - self.env.now)
        r = self.reqs
        group = 0 if shared else i  # a common prefix: one prefix group for every request
        self.pool.submit_to(self._pick_engine(), [i], [group], [int(r.prompt_len[i])], [int(r.output_len[i])],
                            [r.prefix_len] if shared else None)

    def _pick_engine(self) -> int:
        loads = [4 * len(st.engine.waiting) + len(st.engine.running) for st in self.pool.states]
        return int(np.argmin(loads))


def simulate_bench(res: Resolved, seed: int | None = None, speculative: bool = True,
                   percentiles: tuple[float, ...] = (99.0,), record_trace: bool = False, trace_weights=None,
                   progress=None) -> RunResult:
    """Run the scenario's ``serving:`` benchmark; the summary carries vLLM's result keys
    (``percentiles``: vLLM's ``--metric-percentiles``).  ``record_trace`` keeps the run's
    composition for refitting engine overheads (``result.runs["trace"]``).  ``progress(done, total)``
    is called as requests finish (about 200 times in all; the last call has ``done == total``)."""
    sc = res.scenario
    seed = sc.seed if seed is None else seed
    reqs = sample_requests(sc.serving, seed, res.base_dir, res.source)
    spec = None
    if speculative and res.speculative is not None:
        accept_seed = int(np.random.SeedSequence([seed, 0xACC]).generate_state(1, dtype=np.uint64)[0] >> 2)
        spec = spec_runtime(res, np.arange(len(reqs)), reqs.output_len, accept_seed, res.forward_model())
    env = simpy.Environment()
    c = sc.rollout.engine.cpu_overhead  # resolved: every field set
    jitter = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xF0])))
    cv2 = c.api_server_cv ** 2

    def frontend_s(prompt: int) -> float:
        mean = 1e-6 * (c.api_server_us + c.api_server_us_per_prompt_token * prompt)
        return float(jitter.gamma(1.0 / cv2, mean * cv2)) if cv2 > 0 else mean

    client = _Client(env, reqs, sc.serving.max_concurrency, frontend_s, progress)
    pool = EnginePool(env, build_engines(res, spec, record_token_gaps=True, async_admission_lag=True),
                      on_finished=client.finished)
    client.pool = pool
    env.process(client.run())
    env.run()
    engines = [st.engine for st in pool.states]
    seqs = sequence_table(engines, arrivals=True)
    seqs.insert(seqs.columns.get_loc("arrival_s"), "send_s", client.send_s[seqs["seq_id"].to_numpy()])
    gaps = [e.token_gaps.arrays() for e in members(engines)]
    summary = bench_metrics(seqs, np.concatenate([g[0] for g in gaps]), np.concatenate([g[1] for g in gaps]), percentiles)
    summary.update(_spec_metrics(engines, spec))
    summary.update(_settings(res, seed))
    segs = _segments(pool)
    runs = {}
    if record_trace:
        from rlsim.calibration.e2e_fit import trace_from_run

        from rlsim.calibration.e2e_fit import PARAMS

        c = sc.rollout.engine.cpu_overhead
        moe_layers = res.arch.num_moe_layers if res.arch.is_moe else 0
        runs["trace"] = trace_from_run(segs, seqs, sc.rollout.engine.async_scheduling, trace_weights, moe_layers,
                                       {k: getattr(c, k) for k in PARAMS})
    return RunResult(summary, seqs, segs, runs=runs, kind="serving")


def _spec_metrics(engines, spec) -> dict:
    """vLLM bench's ``spec_decode_*`` keys (acceptance rate in %, per-position rates as fractions)."""
    if spec is None:
        return {}
    d = spec_decode_summary(engines, spec.k_max)
    rate = d["draft_acceptance_rate"]
    return {"spec_decode_acceptance_rate": None if rate is None else 100.0 * rate,
            "spec_decode_acceptance_length": d["mean_acceptance_length"], "spec_decode_num_drafts": d["num_drafts"],
            "spec_decode_draft_tokens": d["num_draft_tokens"], "spec_decode_accepted_tokens": d["num_accepted_tokens"],
            "spec_decode_per_position_acceptance_rates": d["per_position_acceptance"]}


def _segments(pool: EnginePool):
    import pandas as pd

    segs = pd.DataFrame([s.__dict__ for s in pool.segments()])
    return segs.sort_values(["engine", "t0_s"], kind="stable").reset_index(drop=True) if len(segs) else segs


def _settings(res: Resolved, seed: int) -> dict:
    """The benchmark's settings under vLLM's save-result keys, and what was simulated."""
    cfg, e = res.scenario.serving, res.scenario.rollout.engine
    return {
        "scenario": res.scenario.name, "seed": seed, "model_id": res.arch.name, "num_prompts": cfg.num_prompts,
        "request_rate": "inf" if cfg.request_rate is None else cfg.request_rate, "burstiness": cfg.burstiness,
        "max_concurrency": cfg.max_concurrency, "tensor_parallel_size": res.tp, "num_engines": res.num_engines,
        "max_num_seqs": e.max_num_seqs, "max_num_batched_tokens": e.max_num_batched_tokens,
        "hardware": res.hw.calibration_summary(), "warnings": _warnings(res),
    }


def _warnings(res: Resolved) -> list[str]:
    from rlsim.sim.warnings import run_warnings

    cfg, e = res.scenario.serving, res.scenario.rollout.engine
    out = run_warnings(res)
    cap = cfg.max_concurrency if cfg.max_concurrency is not None else cfg.num_prompts
    if cap > e.max_num_seqs * res.num_engines:
        out.append(f"max_concurrency = {cap} exceeds max_num_seqs = {e.max_num_seqs} x {res.num_engines} engine(s): "
                   "vLLM queues the rest (they wait for a seat; TTFT includes the wait)")
    return out
