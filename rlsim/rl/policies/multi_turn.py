"""Agentic multi-turn rollouts: tool calls between turns, the context's KV kept or evicted.

Mechanism (agentic RL rollouts as in e.g. verl's multi-turn / SGLang tool-calling rollouts;
no paper's numbers are used, every default below is "assumed"): each trajectory of a step has
``T`` turns (``turns: fixed`` -- T = ``mean_turns``; ``geometric`` -- P(T = k) = p (1 - p)^(k-1),
p = 1 / ``mean_turns``, capped at ``max_turns``), and never more turns than response tokens.
Its response tokens are split over the turns as evenly as integers allow (the first turns get
the remainder).  After every turn but the last, a tool call takes a latency drawn from a
lognormal given by its median and p90 (sigma = ln(p90 / median) / z_0.9, z_0.9 = 1.2816; p90 =
median gives a fixed latency) and returns ``observation_tokens`` tokens appended to the context.

Turn j+1 is a new request on the engine that served turn j, arriving when the tool returns,
whose prompt is the whole context so far (prompt + earlier responses + observations):

* ``kv: keep`` -- the finished turn's KV blocks stay in the engine's prefix cache (vLLM's
  automatic prefix caching: freed blocks keep their hash and are hit unless evicted first;
  :meth:`rlsim.engine.kv.KvCache.keep`) and the next turn hits them with the GRPO group's
  shared prompt blocks, so its prefill computes the observation and the partly filled last
  block.  During the tool wait the blocks are free-but-cached: another request's allocation may
  evict them (then the next turn recomputes what was lost) -- they are NOT pinned;
* ``kv: evict`` -- the next turn is a prefix group of its own: it recomputes its whole context.

The trajectory finishes with its last turn; the step's generation ends when every trajectory
has.  The trainer trains every trajectory with its whole response (all turns' tokens:
``trained_tokens``); observation tokens are loss-masked context, not trained, but the trainer's
forward and backward run over them (its batches carry prompt + (T - 1) x observation tokens as
each trajectory's prompt).  The dispatcher balances the first turns only (later turns follow
their trajectory's engine).  Lock-step data-parallel engines are refused.  Per step (beside
:data:`rlsim.rl.policies.seam.DATA_COLUMNS`): ``turn_requests`` (requests served),
``mean_turns``, ``tool_wait_s`` (mean total tool latency per trajectory) and
``max_tool_wait_s`` (the longest trajectory's); the pipeline adds ``rollout_idle_gpu_s``, the
GPU-seconds the engines sat idle during the step's generation.

Not modelled: KV pinned during the tool wait, a context longer than ``max_model_len`` (the
scenario's clip applies to the response only), tool execution on the rollout GPUs, and turns
of different lengths beyond the even split.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlsim.errors import ConfigError
from rlsim.rl.policies.seam import DATA_COLUMNS, PolicyPlan, PolicySeam

__all__ = ["MultiTurn", "MultiTurnSeam", "turn_counts", "split_response", "tool_latencies_s", "Turns", "TurnDriver"]

Z90 = 1.2815515655446004  # standard normal 0.9 quantile

EXTRA_COLUMNS = ("turn_requests", "mean_turns", "tool_wait_s", "max_tool_wait_s")


class MultiTurn(BaseModel):
    """``rl.policy`` of agentic multi-turn rollouts with tool calls between turns."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["multi_turn"] = "multi_turn"
    turns: Literal["fixed", "geometric"] = Field(default="geometric", description="distribution of turns per trajectory")
    mean_turns: float = Field(default=4.0, ge=1.0, le=64.0, description="mean turns per trajectory (assumed)")
    max_turns: int = Field(default=16, ge=1, le=256, description="cap on turns per trajectory (assumed)")
    tool_latency_median_s: float = Field(default=1.0, gt=0, description="median tool-call latency (assumed)")
    tool_latency_p90_s: float = Field(default=5.0, gt=0, description="p90 tool-call latency (assumed)")
    observation_tokens: int = Field(default=256, ge=0, description="tokens a tool call returns (assumed)")
    kv: Literal["keep", "evict"] = Field(default="keep", description="the context's KV between turns")

    @field_validator("mean_turns")
    @classmethod
    def _whole_when_fixed(cls, v: float, info):
        if info.data.get("turns") == "fixed" and v != int(v):
            raise ValueError("must be a whole number with turns: fixed")
        return v

    @field_validator("tool_latency_p90_s")
    @classmethod
    def _p90_above_median(cls, v: float, info):
        median = info.data.get("tool_latency_median_s")
        if median is not None and v < median:
            raise ValueError(f"must be at least tool_latency_median_s ({median})")
        return v


def turn_counts(cfg: MultiTurn, response: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turns per trajectory (at least 1, at most ``max_turns`` and its response tokens)."""
    n = len(response)
    if cfg.turns == "fixed":
        t = np.full(n, int(cfg.mean_turns), dtype=np.int64)
    else:
        t = rng.geometric(1.0 / cfg.mean_turns, n).astype(np.int64)
    return np.maximum(1, np.minimum(np.minimum(t, cfg.max_turns), np.asarray(response, dtype=np.int64)))


def split_response(response: int, turns: int) -> np.ndarray:
    """``response`` tokens over ``turns`` turns, as evenly as integers allow (first turns longer)."""
    q, r = divmod(int(response), int(turns))
    return np.array([q + 1] * r + [q] * (turns - r), dtype=np.int64)


def tool_latencies_s(cfg: MultiTurn, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` tool-call latencies: lognormal with the configured median and p90."""
    sigma = math.log(cfg.tool_latency_p90_s / cfg.tool_latency_median_s) / Z90
    z = rng.standard_normal(n)
    return cfg.tool_latency_median_s * np.exp(sigma * z)


class Turns:
    """The turn requests of one step: position ``i`` of the step's generated batch is turn
    ``turn[i]`` of trajectory ``traj[i]``; ``next_of[i]`` the position of its next turn (-1:
    the last), ``latency_s[i]`` the tool latency before turn i (0 for first turns)."""

    def __init__(self, traj, turn, next_of, latency_s, prefix_len, keep: bool) -> None:
        self.traj, self.turn, self.next_of, self.latency_s, self.prefix_len = traj, turn, next_of, latency_s, prefix_len
        self.keep = keep  # kv: keep (the engine hands each turn's KV to the next)
        self.first = np.flatnonzero(turn == 0)


class MultiTurnSeam(PolicySeam):
    name = "multi_turn"

    def __init__(self, cfg: MultiTurn) -> None:
        self.cfg = cfg

    def plan(self, res, base: list, seed: int) -> PolicyPlan:
        from rlsim.rl.pipeline import StepBatch

        if res.lockstep:
            raise ConfigError.at(res.source, "rl.policy.kind", "multi_turn",
                                 "needs engines without lock-step data parallelism (rollout dp > 1 is not supported)")
        cfg, obs = self.cfg, self.cfg.observation_tokens
        group_base = 1 + max(int(b.group_id.max()) for b in base)  # evict: each later turn its own prefix group
        parts, rows, steps, train = [], [], [], []
        for t, b in enumerate(base):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(19, t))))
            T = turn_counts(cfg, b.response, rng)
            # the trainer's forward / backward runs over the whole trajectory: the observations are
            # loss-masked context, not trained tokens, but they are computed
            train.append(StepBatch(b.seq_id, b.group_id, b.prompt + (T - 1) * obs, b.response))
            lat = tool_latencies_s(cfg, int((T - 1).sum()), rng)
            n, m = len(b.prompt), int(T.sum())
            traj, turn, nxt = np.arange(n), np.zeros(n, dtype=np.int64), np.full(m, -1, dtype=np.int64)
            prompt, resp, group = b.prompt.copy(), np.zeros(n, dtype=np.int64), b.group_id.copy()
            latency, prefix = np.zeros(m), np.full(m, -1, dtype=np.int64)
            e_traj, e_turn, e_prompt, e_resp, e_group = [], [], [], [], []
            k, li = n, 0
            for i in range(n):
                chunks = split_response(int(b.response[i]), int(T[i]))
                resp[i] = chunks[0]
                ctx, prev = int(b.prompt[i]) + int(chunks[0]), i
                for j in range(1, int(T[i])):
                    nxt[prev] = k
                    latency[k] = lat[li]
                    prefix[k] = int(b.prompt[i]) - 1 if cfg.kv == "keep" else -1
                    evict_group = group_base + t * 1_000_000 + k  # unique while a step has < 1e6 turns
                    for col, v in zip((e_traj, e_turn, e_prompt, e_resp, e_group),
                                      (i, j, ctx + obs, int(chunks[j]), int(b.group_id[i]) if cfg.kv == "keep" else evict_group)):
                        col.append(v)
                    ctx += obs + int(chunks[j])
                    prev, k, li = k, k + 1, li + 1
            cat = lambda a, e: np.concatenate([a, np.asarray(e, dtype=np.int64)])  # noqa: E731
            parts.append((cat(group, e_group), cat(prompt, e_prompt), cat(resp, e_resp)))
            steps.append(Turns(cat(traj, e_traj), cat(turn, e_turn), nxt, latency, prefix, cfg.kv == "keep"))
            wait = np.bincount(steps[-1].traj, weights=latency, minlength=n)
            rows.append((n, n, int(b.response.sum()), 0, 1.0, 0.0, 0.0, 0.0, m, float(T.mean()), float(wait.mean()),
                         float(wait.max())))
        stride = max(len(p[1]) for p in parts)
        generate = [StepBatch(np.arange(len(p[1]), dtype=np.int64) + t * stride, p[0], p[1], p[2])
                    for t, p in enumerate(parts)]
        import pandas as pd

        data = pd.DataFrame(rows, columns=list(DATA_COLUMNS) + list(EXTRA_COLUMNS))
        return PolicyPlan(generate, train, data, stride, steps)


class TurnDriver:
    """The pipeline's side of multi-turn rollouts: deals a step's first turns, and after each
    finished turn waits the tool latency and gives the next turn to the same engine."""

    def __init__(self, turns: list[Turns], run) -> None:
        self.turns, self.run, self.pool, self.env = turns, run, run.pool, run.env
        self.where: dict[int, tuple[int, int, int]] = {}  # seq id -> (step, position, engine)
        prev = self.pool.on_finished
        self.pool.on_finished = (lambda ids, t: (prev(ids, t), self.finished(ids, t))) if prev else self.finished

    def submit(self, t: int, b, owner: np.ndarray, estimate: np.ndarray):
        """Deal step ``t``'s first turns (``owner``/``estimate``: per first turn); the step's
        completion event counts every turn."""
        turns = self.turns[t]
        f = turns.first
        done = self.pool.submit(t, owner, b.seq_id[f], b.group_id[f], b.prompt[f], b.response[f], estimate)
        self.pool.remaining[t] = len(b.seq_id)
        engine_of = owner[turns.traj]  # every turn on its trajectory's engine
        for i in range(len(b.seq_id)):
            self.where[int(b.seq_id[i])] = (t, i, int(engine_of[i]))
        if turns.keep:
            for i in np.flatnonzero(turns.next_of >= 0):
                eng = self.pool.states[int(engine_of[i])].engine
                eng.kv_handover[int(b.seq_id[i])] = int(b.seq_id[turns.next_of[i]])
        return done

    def finished(self, seq_ids, t_s: float) -> None:
        for sid in seq_ids:
            t, i, e = self.where.pop(int(sid), (None, None, None))
            if t is None:
                continue
            k = int(self.turns[t].next_of[i])
            if k >= 0:
                self.env.process(self._next_turn(t, k, e))

    def _next_turn(self, t: int, k: int, engine: int):
        turns, b = self.turns[t], self.run.batches[t]
        yield self.env.timeout(float(turns.latency_s[k]))
        pre = None if turns.prefix_len[k] < 0 else np.array([turns.prefix_len[k]])
        self.pool.submit_to(engine, b.seq_id[k:k + 1], b.group_id[k:k + 1], b.prompt[k:k + 1], b.response[k:k + 1], pre)
