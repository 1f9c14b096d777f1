"""Scheduler and policies: one admission rule for both paths, the shortest-remaining policy,
and fast path == reference path over random admission / preemption / chunking cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlsim.cost import ForwardModel
from rlsim.engine import POLICIES, Engine, EngineParams, Fcfs, ShortestRemaining, policy_named
from rlsim.engine.requests import RequestTable
from rlsim.hardware import load_profile
from rlsim.models import load_model


@pytest.fixture(scope="module")
def fwd() -> ForwardModel:
    return ForwardModel(load_model("Qwen3-0.6B"), load_profile("h100_sxm"))


def _engine(fwd, prompts, responses, groups=None, num_blocks=10_000, fast=True, policy="fcfs", **kw) -> Engine:
    params = dict(max_num_seqs=64, max_num_batched_tokens=512, block_size=16, num_blocks=num_blocks, fast=fast,
                  scheduling_policy=policy)
    params.update(kw)
    n = len(prompts)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    return Engine(0, fwd, EngineParams(**params), np.arange(n), groups, np.asarray(prompts), np.asarray(responses))


def _run(e: Engine, stretches: bool = False) -> list:
    """Every segment to the end, one :meth:`Engine.step` at a time (or by :meth:`Engine.advance`)."""
    segs = []
    while not e.done():
        segs.extend(e.advance() if stretches else [e.step()])
        assert 0 <= e.kv.free <= e.kv.num_blocks
    return segs


def _records(stats) -> tuple:
    return (stats.iterations, stats.segments, stats.preemptions, stats.prefill_tokens, stats.recomputed_tokens,
            stats.busy_s, stats.components_s)


def test_policies_by_name():
    assert sorted(POLICIES) == ["fcfs", "shortest_remaining"]
    assert isinstance(policy_named("fcfs"), Fcfs) and isinstance(policy_named("shortest_remaining"), ShortestRemaining)


def test_shortest_remaining_admits_the_shortest_response_first(fwd):
    """One seat: requests run one at a time, in order of their response lengths."""
    e = _engine(fwd, [10, 10, 10, 10], [40, 5, 20, 10], max_num_seqs=1, policy="shortest_remaining")
    _run(e)
    assert np.argsort(e.finish_s).tolist() == [1, 3, 2, 0]
    fcfs = _engine(fwd, [10, 10, 10, 10], [40, 5, 20, 10], max_num_seqs=1)
    _run(fcfs)
    assert np.argsort(fcfs.finish_s).tolist() == [0, 1, 2, 3]


def test_shortest_remaining_preempts_the_request_with_most_tokens_left(fwd):
    """Two requests outgrow 27 blocks at 177 generated tokens: the one with more left (the first
    admitted) is the victim under shortest-remaining, the last admitted under FCFS."""
    kw = dict(num_blocks=27, enable_prefix_caching=False)
    e = _engine(fwd, [32, 32], [400, 200], policy="shortest_remaining", **kw)
    _run(e)
    assert e.preempted.tolist() == [1, 0]
    assert e.finish_s[1] < e.finish_s[0]
    np.testing.assert_array_equal(e.gen, [400, 200])
    fcfs = _engine(fwd, [32, 32], [400, 200], **kw)
    _run(fcfs)
    assert fcfs.preempted.tolist() == [0, 1]


def test_victim_already_scheduled_this_step_is_unscheduled():
    """ShortestRemaining picks the victim anywhere in the running list (the vLLM priority rule)."""
    req = RequestTable()
    req.add([0, 1, 2], [0, 1, 2], [10, 10, 10], [50, 500, 5])
    assert ShortestRemaining().victim([0, 1, 2], req) == 1
    assert ShortestRemaining().victim([0, 2], req) == 0
    req.generated[:] = [0, 450, 0]
    assert ShortestRemaining().victim([0, 1, 2], req) == 1  # 50 left each: the latest admitted
    assert Fcfs().victim([2, 0, 1], req) == 1


def test_waiting_queue_orders():
    req = RequestTable()
    req.add([7, 8, 9], [0, 1, 2], [10, 10, 10], [30, 10, 20])
    fifo, keyed = Fcfs().waiting_queue(req), ShortestRemaining().waiting_queue(req)
    for s in range(3):
        fifo.push(s)
        keyed.push(s)
    fifo.push_preempted(2)
    assert list(fifo) == [2, 0, 1, 2] and fifo.peek() == 2
    assert list(keyed) == [1, 2, 0] and keyed.pop() == 1 and keyed.peek() == 2


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_admission_rule_is_shared_by_schedule_and_fast_path(fwd, policy):
    """Whenever the scheduler's admission rule would admit someone, the fast path plans no jump,
    and every planned jump starts from a state where it admits nobody."""
    rng = np.random.default_rng(3)
    prompts, responses = np.repeat(rng.integers(20, 200, 8), 2), rng.integers(5, 200, 16)
    e = _engine(fwd, prompts, responses, np.repeat(np.arange(8), 2), num_blocks=120, max_num_seqs=6,
                max_num_batched_tokens=420, enable_chunked_prefill=False, policy=policy)
    jumps = slow = 0
    while not e.done():
        run = e.scheduler.decoding_batch()
        open_seat = run is not None and e.scheduler.next_admission(e.params.max_num_batched_tokens - len(run)) is not None
        jump = e.plan()
        assert not (open_seat and jump is not None)
        if jump is not None:
            jumps += 1
            e.commit(jump)
        else:
            slow += 1
            e.step_slow()
    assert jumps > 0 and slow > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    groups=st.integers(1, 6), samples=st.integers(1, 4), seed=st.integers(0, 10_000),
    blocks=st.integers(40, 400), budget=st.sampled_from([64, 128, 512]), seats=st.integers(1, 16),
    chunked=st.booleans(), prefix=st.booleans(), policy=st.sampled_from(sorted(POLICIES)),
)
def test_fast_path_equals_reference_on_random_cases(fwd, groups, samples, seed, blocks, budget, seats, chunked, prefix,
                                                    policy):
    rng = np.random.default_rng(seed)
    prompts = np.repeat(rng.integers(1, 200, groups), samples)
    responses = rng.integers(1, 300, groups * samples)
    gids = np.repeat(np.arange(groups), samples)
    budget = budget if chunked else max(budget, int(prompts.max() + responses.max()))
    blocks = max(blocks, int(-(-(prompts.max() + responses.max()) // 16)) + 1)  # one max-length request fits
    kw = dict(num_blocks=blocks, max_num_batched_tokens=budget, max_num_seqs=seats, enable_chunked_prefill=chunked,
              enable_prefix_caching=prefix, policy=policy)
    fast, ref = _engine(fwd, prompts, responses, gids, fast=True, **kw), _engine(fwd, prompts, responses, gids, fast=False, **kw)
    stretched = _engine(fwd, prompts, responses, gids, fast=True, **kw)
    segs = _run(fast)
    _run(ref)
    assert _run(stretched, stretches=True) == segs  # stretches (Engine.advance) give the very segments of stepping
    np.testing.assert_array_equal(stretched.finish_s, fast.finish_s)
    assert _records(stretched.stats) == _records(fast.stats)
    np.testing.assert_array_equal(fast.gen, responses)
    assert fast.stats.iterations == ref.stats.iterations
    assert fast.stats.preemptions == ref.stats.preemptions
    np.testing.assert_array_equal(fast.preempted, ref.preempted)
    np.testing.assert_allclose(fast.finish_s, ref.finish_s, rtol=1e-9)


def test_admit_cached_seats_a_request_with_its_kv_only_when_seat_and_blocks_are_free(fwd):
    # 3 requests of 100 prompt tokens (7 blocks of 16 each), 2 seats, 16 blocks
    e = _engine(fwd, [100, 100, 100], [50, 50, 50], num_blocks=16, max_num_seqs=2)
    sch = e.scheduler
    slot = sch.waiting.pop()
    assert sch.admit_cached(slot, 100) and sch.running == [slot]
    assert int(e.requests.computed[slot]) == 100 and e.kv.free == 16 - 7
    second = sch.waiting.pop()
    assert not sch.admit_cached(second, 160)  # 10 blocks > the 9 free: not seated, nothing taken
    assert e.kv.free == 9 and sch.running == [slot]
    assert sch.admit_cached(second, 100) and e.kv.free == 2
    third = sch.waiting.pop()
    assert not sch.admit_cached(third, 16)  # both seats taken
    assert sch.running == [slot, second]


def _same_schedule(a: Engine, b: Engine, short, general) -> None:
    assert short is not None and short.preemptions == general.preemptions
    for name in ("slots", "new_tokens", "computed_before"):
        np.testing.assert_array_equal(getattr(short, name), getattr(general, name))
    assert a.scheduler.running == b.scheduler.running and list(a.waiting) == list(b.waiting)
    assert a.kv.free == b.kv.free and a.kv._lru == b.kv._lru and a.scheduler.peak_running == b.scheduler.peak_running
    np.testing.assert_array_equal(a.kv.own, b.kv.own)
    np.testing.assert_array_equal(a.requests.computed, b.requests.computed)


@pytest.mark.parametrize("prefix", [False, True])
def test_the_plain_decode_shortcuts_schedule_what_the_general_loop_does(fwd, prefix):
    """Wherever a plain jump ended short of KV (the preempting shortcut) or a decoding batch
    can admit the queue's head (the admitting shortcut), the shortcut on a copy of the engine
    and Scheduler.schedule give the same batch in the same order, preemptions, KV state and queue."""
    import copy

    rng = np.random.default_rng(5)
    n = 80
    e = _engine(fwd, rng.integers(20, 120, n), rng.integers(100, 400, n), num_blocks=260, max_num_batched_tokens=4096,
                enable_prefix_caching=prefix)
    preempting = picked = admitting = 0
    while not e.done():
        run = e.scheduler.decoding_batch()
        joins = run is not None and not e.scheduler.closed(e.params.max_num_batched_tokens - len(run))
        if e._short_next or joins:
            a, b = copy.deepcopy(e), copy.deepcopy(e)
            if e._short_next:
                short = a.scheduler.schedule_preempting_decodes()
            else:
                short = a.scheduler.schedule_decodes_then_admit(a.now)
                if short is None:  # only when the decodes are short of KV: the general loop decides
                    assert int(e.kv.growth_blocks(run, e.requests.computed[run] + 1).sum()) > e.kv.free
                    e.step()
                    continue
            general = b.scheduler.schedule(0, b.now)
            _same_schedule(a, b, short, general)
            if e._short_next:
                assert general.preemptions > 0
                preempting += 1
                picked += general.slots.tolist() != b.scheduler.running[:len(general.slots)]  # one-by-one ones last
            else:
                admitting += len(b.scheduler.running) > len(e.scheduler.running)
        e.step()
    assert preempting > 20 and picked > 0 and admitting > 5, (preempting, picked, admitting)
