"""Sync and async RL pipelines as simpy processes over one engine pool (DESIGN 8).

Per RL step t: batch t (prompts x group size, its own seeded draw) is dealt to the rollout
pool once the pool holds weights of version >= t - lag (lag = 0 for the sync pipelines,
``max_trajectory_age_steps`` for async); when its last sequence finishes, the reward takes
``reward_time_s``; the trainer then runs logprob passes and the training step (and, every N
steps, the drafter's online training), publishes version t + 1 and blocks while the weights
reach the rollout pool (colocated: resharding + sleep/wake; disaggregated: broadcast).

Per step the trainer's critical path is split into exposed weight sync, exposed generation
(the trainer waiting for trajectories), exposed reward, logprob and train time, which add up
to the step time.  A frozen drafter's acceptance decays per policy step
(``acceptance_drift_per_step``); online drafter training restores it every N steps.

Steady state (:mod:`rlsim.rl.steady`): the run trains until the windowed step time after the
warm-up converges (or ``rl.num_steps``); the batches after the last reported step are in flight
when it stops, so the window has no wind-down.  GRPO groups are dealt by ``rollout.dispatch``
(:mod:`rlsim.rl.dispatch`) when their batch is released.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from rlsim.results.progress import report_step
from rlsim.rl.dispatch import assign_groups
from rlsim.rl.policies.run import (policy_acceptance, policy_draft_budget, policy_drafting, policy_feedback, policy_migration,
                                   policy_plan, policy_report, policy_warmup)
from rlsim.rl.pool import EnginePool
from rlsim.rl.report import sync_summary, trainer_summary
from rlsim.rl.steady import convergence, planned_steps, policy_lag, warmup_steps, window_stats
from rlsim.sim.build import Resolved
from rlsim.sim.engines import build_engines, members, sequence_table, spec_runtime
from rlsim.sim.rollout import clip_to_model_len
from rlsim.speculation.runtime import SpecRuntime
from rlsim.workload import sample_batch

__all__ = ["PipelineResult", "simulate_pipeline", "StepBatch", "step_batches", "horizon", "STEP_MEANS"]


@dataclass(frozen=True)
class StepBatch:
    """The sequences of one RL step, with global ids (step * N + i)."""

    seq_id: np.ndarray
    group_id: np.ndarray
    prompt: np.ndarray
    response: np.ndarray


@dataclass
class PipelineResult:
    """Per-step table, summary, the pool's engine segments / Gantt intervals, and every
    trajectory of the trained steps with the policy versions that generated it."""

    summary: dict
    steps: pd.DataFrame
    segments: pd.DataFrame
    gantt: pd.DataFrame
    sequences: pd.DataFrame | None = None


def step_batches(res: Resolved, seed: int, steps: int) -> list[StepBatch]:
    """One seeded batch per step; identical for the speculative and the baseline runs."""
    wl = res.scenario.workload
    n = wl.num_sequences_per_step
    groups = wl.num_prompts_per_step
    out = []
    for t in range(steps):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(7, t))))
        b = sample_batch(wl, rng, res.base_dir)
        response = clip_to_model_len(b, res)
        out.append(StepBatch(b.seq_id + t * n, b.group_id + t * groups, b.prompt_len, response))
    return out


def _versions(steps: int, lag: int) -> np.ndarray:
    """Nominal policy version generating each step's batch."""
    return np.maximum(0, np.arange(steps) - lag)


def _drift_scale(res: Resolved, versions: np.ndarray) -> np.ndarray:
    """Acceptance multiplier per step: (1 - drift) ** (policy version - drafter version)."""
    d = res.scenario.rl.drafter
    every = d.online_training_every_steps
    drafter_version = (versions // every) * every if every else np.zeros_like(versions)
    return (1.0 - d.acceptance_drift_per_step) ** (versions - drafter_version)


def _spec(res: Resolved, batches: list[StepBatch], versions: np.ndarray, seed: int, fwd, policy_scale=None,
          draft_budget=None) -> SpecRuntime:
    """One acceptance sampler over every step's sequences, with each step's drafter drift (and
    the rollout policy's per-request multiplier and draft budgets, if any)."""
    ids = np.concatenate([b.seq_id for b in batches])
    resp = np.concatenate([b.response for b in batches])
    scale = np.repeat(_drift_scale(res, versions), [len(b.seq_id) for b in batches])
    scale = scale if policy_scale is None else scale * policy_scale
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(8,))))
    rt = spec_runtime(res, ids, resp, int(rng.integers(0, 2**62)), fwd, extra_scale=scale, draft_budget=draft_budget)
    rt.decoupled = policy_drafting(res, rt.sampler)  # rlsim.rl.policies: the drafter on its own GPUs (None: coupled)
    return rt


class _Run:
    """The simpy processes of one pipeline run and what they record.

    Batches ``0 .. horizon-1`` are released as the policy lag allows; the trainer stops (and the
    run with it) after the step ``stop_after(train_end)`` says is the last: batches beyond it
    are in flight then, as they would be in a longer run (no wind-down)."""

    def __init__(self, res: Resolved, plan, batches: list[StepBatch], spec: SpecRuntime | None, lag: int,
                 stop_after, stride: int | None = None) -> None:
        self.res, self.plan, self.batches, self.lag, self.stop_after = res, plan, batches, lag, stop_after
        self.env = simpy.Environment()
        self.stride = stride or len(batches[0].seq_id)  # ids are step * stride + i
        self.pool = EnginePool(self.env, build_engines(res, spec), self.stride)
        self.pool.migration = policy_migration(res)  # rlsim.rl.policies: tail migration (None: off)
        steps = len(batches)
        self.version_ready = [self.env.event() for _ in range(steps + 1)]
        self.version_ready[0].succeed()
        self.ready = [self.env.event() for _ in range(steps)]
        self.stop = self.env.event()
        self.trained = 0
        self.rec = {k: np.full(steps, np.nan) for k in ("dispatch_s", "batch_done_s", "ready_s", "train_start_s",
                                                          "train_end_s", "sync_start_s", "sync_end_s")}
        ro = res.scenario.rollout
        self._dispatch_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(res.scenario.seed, spawn_key=(9,))))
        self._expected = res.scenario.workload.mean_response_tokens_estimate(res.base_dir)
        self._policy, self._noise = ro.dispatch, ro.dispatch_length_noise
        self.spec = spec
        self.feedback = policy_feedback(res) if spec is not None else None  # rlsim.rl.policies: run-time acceptance
        self.driver = None  # rlsim.rl.policies.multi_turn.TurnDriver: later turns dealt as tools return
        self.harvest: dict[int, float] = {}  # step -> idle GPU-seconds of its generation (feedback runs)
        if self.feedback is not None:
            self.fed = {c: np.full(steps, np.nan) for c in self.feedback.feedback_columns}

    def run(self) -> None:
        self.env.process(self._dispatcher())
        self.env.process(self._trainer())
        self.env.run(until=self.stop)
        self.pool.flush()

    def _dispatcher(self):
        for t, b in enumerate(self.batches):
            yield self.version_ready[max(0, t - self.lag)]
            self.rec["dispatch_s"][t] = self.env.now
            if self.feedback is not None:
                self._feed(t, b)
            f = slice(None) if self.driver is None else self.driver.turns[t].first  # multi-turn: first turns
            owner, est = assign_groups(self._policy, b.group_id[f], b.prompt[f], b.response[f], self.pool.outstanding.tokens,
                                       self._expected, self._noise, self._dispatch_rng)
            if self.driver is None:
                done = self.pool.submit(t, owner, b.seq_id, b.group_id, b.prompt, b.response, est)
            else:
                done = self.driver.submit(t, b, owner, est)
            self.env.process(self._reward(t, done))

    def _feed(self, t: int, b: StepBatch) -> None:
        """Step t's acceptance from the idle GPU-seconds of every step finished by now."""
        for j in range(t):
            if j not in self.harvest and not np.isnan(self.rec["batch_done_s"][j]):
                self.harvest[j] = tail_idle_gpu_s(self.res, self.pool, self.rec["dispatch_s"][j],
                                                  self.rec["batch_done_s"][j], self.env.now)
        scale, cols = self.feedback.step_acceptance(self.res, np.array([self.harvest[j] for j in sorted(self.harvest)]))
        sampler = self.spec.sampler
        sampler.rescale(sampler.index_of(b.seq_id), scale)
        for c, v in cols.items():
            self.fed[c][t] = v

    def _reward(self, t: int, done):
        yield done
        self.rec["batch_done_s"][t] = self.env.now
        yield self.env.timeout(self.plan.reward_s)
        self.rec["ready_s"][t] = self.env.now
        self.ready[t].succeed()

    def _trainer(self):
        rl = self.res.scenario.rl
        for t in range(len(self.batches)):
            yield self.ready[t]
            self.rec["train_start_s"][t] = self.env.now
            yield self.env.timeout(self.plan.train_s[t])
            self.rec["train_end_s"][t] = self.env.now
            self.rec["sync_start_s"][t] = self.env.now
            self.trained = t + 1
            if self.stop_after(self.rec["train_end_s"][: t + 1]):
                self.rec["sync_end_s"][t] = self.env.now
                self.stop.succeed()
                return
            yield self.env.process(self.pool.update_weights(self.plan.sync_s[t], rl.in_flight_weight_updates,
                                                            rl.recompute_kv_on_weight_update))
            self.rec["sync_end_s"][t] = self.env.now
            self.version_ready[t + 1].succeed()


def tail_idle_gpu_s(res: Resolved, pool: EnginePool, t0_s: float, t1_s: float, now_s: float) -> float:
    """GPU-seconds the pool's engines sat idle in ``[t0_s, t1_s]`` (a step's generation), from
    their busy segments and the iterations in progress at ``now_s``
    (rlsim.rl.policies.drafter_tail_training.idle_gpu_s)."""
    from rlsim.rl.policies.drafter_tail_training import idle_gpu_s

    busy = []
    for st in pool.states:
        iv = [(sg.t0_s, sg.t1_s) for sg in st.segments if sg.t1_s > t0_s]
        if st.busy_since is not None:
            iv.append((st.busy_since, now_s))
        busy.append(np.array(iv, dtype=float).reshape(-1, 2))
    return idle_gpu_s(busy, t0_s, t1_s, res.rollout_gpus // res.num_engines)


def horizon(res: Resolved, pipeline: str, seed: int | None = None) -> tuple[int, int, int]:
    """``(warm-up, most steps trained, batches to prepare)`` of a run (rlsim.rl.steady) with
    ``seed`` (None: the scenario's; a policy's warm-up may follow the seeded lengths)."""
    rl = res.scenario.rl
    lag = rl.max_trajectory_age_steps if pipeline == "async" else 0
    warm = max(warmup_steps(rl, lag, res.source, pipeline), policy_warmup(res, res.scenario.seed if seed is None else seed))
    steps = planned_steps(rl, warm, lag, res.source)
    return warm, steps, steps + lag


def simulate_pipeline(res: Resolved, plan, seed: int, speculative: bool, pipeline: str | None = None) -> PipelineResult:
    """Run the RL pipeline; ``plan`` (rlsim.rl.plan.CostPlan) holds per-step trainer and sync
    times for every batch of the horizon (:func:`horizon`)."""
    rl = res.scenario.rl
    mode = pipeline or rl.pipeline
    lag = rl.max_trajectory_age_steps if mode == "async" else 0
    warm, steps, n_batches = horizon(res, mode, seed)
    # the acceptance draws cover the longest horizon a run of this scenario may have, so a run
    # with fewer steps is an exact prefix of a longer one
    every = step_batches(res, seed, max(n_batches, rl.convergence.max_steps + lag))
    policy = policy_plan(res, every, seed)  # rlsim.rl.policies: what each step generates (None: the batches)
    every = every if policy is None else policy.generate
    batches = every[:n_batches]
    spec = None
    if speculative and res.speculative:
        spec = _spec(res, every, _versions(len(every), lag), seed, res.forward_model(),
                     None if policy is None else policy_acceptance(res, every),
                     None if policy is None else policy_draft_budget(res, every))
    status: dict = {}

    label = f"{mode}, {'speculative' if spec is not None else 'no speculation'}"

    def stop_after(train_end: np.ndarray) -> bool:
        n = len(train_end)
        report_step(label, n, steps)  # rlsim.results.progress (a no-op unless a bar tracks)
        if rl.num_steps is not None:
            done = n >= steps
            if done:
                status["converged"], status["last_change"] = convergence(train_end, warm, lag, _any_window(rl))
            return done
        ok, change = convergence(train_end, warm, lag, rl.convergence)
        status["converged"], status["last_change"] = ok, change if change is not None else status.get("last_change")
        return ok or n >= steps

    run = _Run(res, plan, batches, spec, lag, stop_after, None if policy is None else policy.stride)
    if policy is not None and policy.turns is not None:
        from rlsim.rl.policies.multi_turn import TurnDriver

        run.driver = TurnDriver(policy.turns, run)
    run.run()
    return _result(res, plan, run, batches[: run.trained], spec, mode, lag, warm, status, policy)


def _any_window(rl):
    """The convergence rule evaluated on a fixed-length run (reported, not used to stop)."""
    return rl.convergence.model_copy(update={"min_window_steps": 2})


def _result(res, plan, run: _Run, batches, spec, mode: str, lag: int, warm: int, status: dict,
            policy=None) -> PipelineResult:
    steps = len(batches)
    rec = {k: v[:steps].copy() for k, v in run.rec.items()}
    prev_free = np.concatenate([[0.0], rec["sync_end_s"][:-1]])
    prev_end = np.concatenate([[0.0], rec["train_end_s"][:-1]])
    sync_exposed = prev_free - prev_end
    reward_exposed = np.clip(rec["train_start_s"] - np.maximum(rec["batch_done_s"], prev_free), 0.0, plan.reward_s)
    gen_exposed = rec["train_start_s"] - prev_free - reward_exposed
    tokens = np.array([int(b.response.sum()) for b in batches])
    makespan = rec["batch_done_s"] - rec["dispatch_s"]
    trainer = plan.trainer[:steps]
    df = pd.DataFrame({
        "step": np.arange(steps), "warmup": np.arange(steps) < warm,
        "step_time_s": rec["train_end_s"] - prev_end,
        "weight_sync_time_s": sync_exposed, "generation_time_s": gen_exposed, "reward_time_s": reward_exposed,
        "logprob_time_s": plan.logprob_s[:steps], "train_time_s": plan.train_only_s[:steps],
        "drafter_train_time_s": plan.drafter_s[:steps],
        "generation_makespan_s": makespan, "rollout_tokens": tokens, "rollout_tokens_per_s": tokens / makespan,
        "trainer_mfu": [c.mfu for c in trainer],
        **{f"trainer_{k}_s": [c.breakdown_s.get(k, 0.0) for c in trainer] for k in (trainer[0].breakdown_s or {})},
        **rec,
    })
    segs = pd.DataFrame([s.__dict__ for s in run.pool.segments()])
    segs = segs.sort_values(["engine", "t0_s"], kind="stable").reset_index(drop=True) if len(segs) else segs
    pauses = pd.DataFrame(run.pool.pauses, columns=["engine", "t0_s", "t1_s"])
    cols = ["engine", "t0_s", "t1_s"]
    running = pd.DataFrame([(e, t0, run.env.now) for e, t0 in run.pool.in_progress()], columns=cols)
    busy = pd.concat([segs[cols], running], ignore_index=True) if len(segs) else running
    seqs = _sequences(run, rec, run.stride, steps, batches)
    gantt = _gantt(df, mode)
    if run.feedback is not None:  # the harvest of every step trained, and what the feedback set
        df["tail_train_gpu_s"] = [run.harvest[t] if t in run.harvest else
                                  tail_idle_gpu_s(res, run.pool, rec["dispatch_s"][t], rec["batch_done_s"][t], run.env.now)
                                  for t in range(steps)]
        for c, v in run.fed.items():
            df[c] = v[:steps]
    if run.driver is not None:  # multi-turn: the GPU-seconds idle in each step's generation (tool waits)
        df["rollout_idle_gpu_s"] = [tail_idle_gpu_s(res, run.pool, rec["dispatch_s"][t], rec["batch_done_s"][t], run.env.now)
                                    for t in range(steps)]
    if run.pool.migration is not None:  # the tail migrations of each step trained
        for c, v in run.pool.migration.per_step(run.stride, steps).items():
            df[c] = v.to_numpy()
    if spec is not None and spec.decoupled is not None:  # decoupled drafting: hidden share, drafter load
        from rlsim.rl.policies.decoupled_draft import decoupled_per_step

        own = decoupled_per_step(members(st.engine for st in run.pool.states), rec["dispatch_s"], rec["batch_done_s"],
                                 spec.decoupled)
        for c in own.columns:
            df[c] = own[c].to_numpy()
    summary = _summary(res, plan, df, run, spec, mode, lag, busy, pauses, seqs, warm, status)
    if policy is not None:
        df, summary["policy"] = policy_report(res, df, policy)
    return PipelineResult(summary, df, segs, gantt, seqs[seqs["step"] < steps].reset_index(drop=True))


def _sequences(run: _Run, rec: dict, per_batch: int, steps: int, batches: list[StepBatch]) -> pd.DataFrame:
    """Every trajectory dispatched (trained steps and those in flight when the run stopped):
    step, group, the engines' per-sequence columns (rlsim.sim.engines.sequence_table), and the
    policy versions of its first and last token (NaN for unfinished ones)."""
    df = sequence_table([st.engine for st in run.pool.states])
    ids = df["seq_id"].to_numpy()
    wl = run.res.scenario.workload  # ids are step * N + i, groups of a step consecutive (rlsim.workload.sample_batch)
    df.insert(1, "step", ids // per_batch)
    if run.res.scenario.rl.policy is None:
        df.insert(2, "group_id", (ids // per_batch) * wl.num_prompts_per_step + (ids % per_batch) // wl.num_generations_per_prompt)
    else:  # a policy's batches: look the groups up
        all_ids = np.concatenate([b.seq_id for b in run.batches])
        df.insert(2, "group_id", np.concatenate([b.group_id for b in run.batches])[np.searchsorted(all_ids, ids)])
    starts = np.concatenate([[0.0], rec["sync_end_s"][: max(0, steps - 1)]])
    return policy_lag(df, starts)


def _gantt(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    rows = []
    for r in df.itertuples(index=False):
        rows.append(("rollout", r.step, "generation", r.dispatch_s, r.batch_done_s))
        rows.append(("training", r.step, "logprob + train", r.train_start_s, r.train_end_s))
        if r.sync_end_s > r.sync_start_s:
            rows.append(("training", r.step, "weight sync", r.sync_start_s, r.sync_end_s))
    return pd.DataFrame(rows, columns=["pool", "step", "what", "start_s", "end_s"])


#: Per-step means reported over the steady-state window.
STEP_MEANS = ("generation_time_s", "logprob_time_s", "train_time_s", "weight_sync_time_s", "reward_time_s",
              "drafter_train_time_s", "generation_makespan_s")


def _summary(res: Resolved, plan, df: pd.DataFrame, run: _Run, spec, mode: str, lag: int, segs, pauses, seqs,
             warm: int, status: dict) -> dict:
    steady = df[~df["warmup"]]
    out = {k: float(steady[k].mean()) for k in STEP_MEANS}
    out.update(window_stats(df, segs, pauses, seqs, res.num_engines, warm))
    engines = members(st.engine for st in run.pool.states)
    drafts = sum(e.stats.num_drafts for e in engines)
    accepted = sum(e.stats.num_accepted_tokens for e in engines)
    out.update({
        "pipeline": mode, "max_trajectory_age_steps": lag, "num_steps": len(df), "warmup_steps": warm,
        "converged": bool(status.get("converged", False)), "convergence_last_change": status.get("last_change"),
        "mean_acceptance_length": (1.0 + accepted / drafts) if drafts else None,
        "draft_acceptance_rate": (accepted / sum(e.stats.num_draft_tokens for e in engines)) if drafts else None,
        "preemptions": int(sum(e.stats.preemptions for e in engines)),
        "warmup": df[df["warmup"]][["step", "step_time_s", "generation_time_s"]].to_dict("records"),
        "total_time_s": float(df["train_end_s"].iloc[-1]),
        "trainer": trainer_summary(plan, steady["step"].to_numpy()),
        "weight_sync": sync_summary(plan, steady["step"].to_numpy()),
    })
    return out
