"""Tail migration (Seer / RLHFuse): the move by hand, its transfer cost exactly, KV conservation,
recompute through prefill, determinism, the tail time and the bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from helpers import rl_policy_scenario

from rlsim import units
from rlsim.errors import ConfigError
from rlsim.rl.policies.tail_migration import Migrator, TailMigration, TailMigrationSeam, link_cost, tail_times
from rlsim.rl.pool import EnginePool
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve
from rlsim.sim.engines import build_engines, sequence_table

PROMPT, SHORT, LONG = 200, 40, 1500


def _pool_run(cost: str | None):
    """2 engines: engine 0 gets 1 short request, engine 1 three long ones (no speculation)."""
    res = resolve(rl_policy_scenario(None, spec=False, response=LONG))
    env = simpy.Environment()
    engines = build_engines(res, None)
    pool = EnginePool(env, engines, 4)
    if cost is not None:
        pool.migration = Migrator(TailMigration(cost=cost), link_cost(res))
    ids = np.arange(4)
    done = pool.submit(0, np.array([0, 1, 1, 1]), ids, np.array([0, 1, 2, 3]), np.full(4, PROMPT),
                       np.array([SHORT, LONG, LONG, LONG]))
    env.run(until=done)
    return res, pool, env.now


def test_one_request_moves_to_the_idle_engine_and_its_kv_transfer_is_bytes_over_nvlink():
    res, pool, end = _pool_run("transfer")
    _, _, base_end = _pool_run(None)
    # floor(3 / 2) = 1 request moved (ties on generated tokens: the lowest id); when it is done
    # engine 0 is idle again and takes floor(2 / 2) = 1 more (request 1 moves at most once)
    assert [r[1:4] for r in pool.migration.records] == [(1, 1, 0), (2, 1, 0)]
    t, sid, src, dst, tokens, nbytes, arrive = pool.migration.records[0]
    short_done = sequence_table([pool.states[0].engine]).set_index("seq_id").loc[0, "finish_s"]
    assert t >= short_done  # at the source's first iteration boundary after engine 0 went idle
    src_row = pool.states[1].engine.requests
    slot = int(np.flatnonzero(src_row.seq_ids == 1)[0])
    assert src_row.moved_s[slot] == t and tokens == PROMPT + int(src_row.generated[slot]) - 1
    bpt = res.memory.kv_bytes_per_token
    assert nbytes == tokens * bpt * res.tp
    hw = res.hw  # both H100s in one NVLink domain: NVLink as a 2-GPU NCCL all-gather (the faster protocol)
    ag, bw, b = hw.collectives.nccl.all_gather, hw.nvlink_bw_bytes_per_s, tokens * bpt
    wire = min(b / (bw * ag.busbw_eff[2]), units.us(ag.large_alpha_us[2] - ag.alpha_us[2]) + b / (bw * ag.large_busbw_eff[2]))
    assert arrive - t == pytest.approx(wire + units.us(hw.topology.nvlink_latency_us), rel=1e-12)
    seqs = sequence_table([s.engine for s in pool.states]).set_index("seq_id")
    assert len(seqs) == 4 and seqs.loc[1, "engine"] == 0 and seqs.loc[1, "moved_in"] == 1
    assert (seqs["generated"] == seqs["response_len"]).all()  # every request emits its whole response
    assert pool.states[0].engine.stats.recomputed_tokens == 0  # the KV came over: no prefill again
    # the moved request decodes alone from its arrival: its finish = arrival + its remaining steps at batch 1
    alone = build_engines(res, None)[0]
    alone.now = arrive
    moved = {"seq_ids": 9, "prompt": PROMPT, "response": LONG, "generated": tokens - PROMPT + 1, "computed": tokens,
             "preemptions": 0, "draft_rounds": 0, "admit_s": 0.0, "first_token_s": 0.0, "last_token_s": 0.0}
    assert alone.migrate_in(moved, kv_ready=True)
    while not alone.done():
        alone.step()
    assert seqs.loc[1, "finish_s"] == pytest.approx(alone.now, rel=1e-12)
    assert end < base_end  # the tail at batch 2 + 1 is shorter than at batch 3


def test_kv_blocks_are_freed_on_the_source_and_allocated_on_the_destination():
    res = resolve(rl_policy_scenario(None, spec=False, response=LONG))
    src, dst = build_engines(res, None)
    src.add_sequences(np.arange(3), np.arange(3), np.full(3, PROMPT), np.full(3, LONG))
    for _ in range(30):  # prefill, then 29 decode iterations (slow path: no jump to the end)
        src.step_slow()
    slot = src.running[0]
    held = int(src.kv.shared[slot] + src.kv.own[slot])
    used = src.kv.used()
    moved = src.migrate_out(slot)
    assert src.kv.used() == used - held and slot not in src.running
    cached = moved["prompt"] + moved["generated"] - 1
    assert dst.migrate_in(moved, kv_ready=True)
    assert dst.kv.used() == -(-cached // res.scenario.rollout.engine.block_size)  # all its blocks private
    assert int(dst.requests.computed[0]) == cached and dst.running == [0]
    while not (src.done() and dst.done()):
        for e in (src, dst):
            if not e.done():
                e.step_slow()
    assert src.kv.used() == 0 and dst.kv.used() == 0
    assert int(dst.requests.generated[0]) == LONG


def test_recompute_prefills_the_whole_context_on_the_destination():
    res, pool, end = _pool_run("recompute")
    assert all(r[6] == r[0] for r in pool.migration.records)  # no transfer: it waits on the destination at once
    want = sum(r[4] + 1 for r in pool.migration.records)
    assert pool.states[0].engine.stats.recomputed_tokens == want  # prompt + generated, through prefill
    _, _, transfer_end = _pool_run("transfer")
    assert end != transfer_end


def test_a_run_is_deterministic_and_reports_migrations_and_tail_time():
    res = resolve(rl_policy_scenario({"kind": "tail_migration"}, fixed=False, steps=4, prompts=2))
    out, _ = run_pipeline(res, 1, True, "sync_colocated")
    again, _ = run_pipeline(res, 1, True, "sync_colocated")
    assert again.summary == out.summary and again.steps.equals(out.steps)
    s = out.steps
    assert s["migrations"].sum() > 0 and (s["migrated_bytes"] == s["migrated_tokens"] * res.spec_memory.kv_bytes_per_token).all()
    assert out.summary["policy"]["migrations"] == pytest.approx(float(s.loc[~s["warmup"], "migrations"].mean()))
    tail = tail_times(out.sequences, s, res.num_engines)
    assert np.all(tail >= 0) and np.all(tail <= s["generation_makespan_s"].to_numpy() + 1e-12)


def test_tail_time_by_hand():
    import pandas as pd

    seqs = pd.DataFrame({"step": [0, 0, 0, 1], "engine": [0, 1, 1, 0], "finish_s": [3.0, 5.0, 9.0, 12.0],
                         "moved_in": [0, 0, 1, 0]})
    steps = pd.DataFrame({"step": [0, 1], "dispatch_s": [0.0, 10.0], "batch_done_s": [9.0, 12.0]})
    # step 0: engine 0 idle at 3 (engine 1's own last finish is 5; the moved-in row is excluded)
    # step 1: engine 1 was dealt nothing -> idle from the dispatch
    assert tail_times(seqs, steps, 2).tolist() == [6.0, 2.0]


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ConfigError) as e:
        resolve(rl_policy_scenario({"kind": "tail_migration", "min_source_running": 1}))
    assert str(e.value) == "rl.yaml: rl.policy.min_source_running = 1 input should be greater than or equal to 2"
    with pytest.raises(ConfigError) as e:
        resolve(rl_policy_scenario({"kind": "tail_migration", "cost": "teleport"}))
    assert str(e.value) == "rl.yaml: rl.policy.cost = 'teleport' input should be 'transfer' or 'recompute'"
    from types import SimpleNamespace

    with pytest.raises(ConfigError) as e:
        TailMigrationSeam(TailMigration()).migration(SimpleNamespace(lockstep=True, source="dp.yaml"))
    assert str(e.value) == ("dp.yaml: rl.policy.kind = 'tail_migration' needs engines without lock-step data "
                            "parallelism (rollout dp > 1 is not supported)")


def test_only_decoding_requests_move():
    """A request whose context is not all cached (mid-prefill, or re-prefilling after a
    preemption) stays; the decoding one with the most tokens generated moves, billed on its
    cached tokens."""
    res = resolve(rl_policy_scenario(None, spec=False, response=LONG))
    env = simpy.Environment()
    pool = EnginePool(env, build_engines(res, None), 4)
    pool.submit(0, np.array([0, 1, 1, 1]), np.arange(4), np.arange(4), np.full(4, PROMPT),
                np.array([SHORT, LONG, LONG, LONG]))
    env.run(until=1.0)  # engine 0 has finished its short request; engine 1 decodes three
    src = pool.states[1].engine
    assert pool.states[0].engine.done() and len(src.running) == 3
    req, run = src.requests, list(src.running)
    first = run[int(np.lexsort((req.seq_ids[run], -req.generated[run]))[0])]  # the one that would move
    req.computed[first] -= 100  # as if it were re-prefilling 100 tokens
    mig = Migrator(TailMigration(min_source_running=2), link_cost(res))
    assert mig._move(pool, 1, 0) == 1
    (_, sid, _, _, tokens, _, _), = mig.records
    assert sid != int(req.seq_ids[first])
    slot = int(np.flatnonzero(req.seq_ids == sid)[0])
    assert tokens == int(req.computed[slot]) == PROMPT + int(req.generated[slot]) - 1
