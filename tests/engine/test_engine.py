"""Engine behaviour: conservation, KV capacity, preemption timing, fast path == reference."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.cost import ForwardModel, PassShape
from rlsim.engine import Engine, EngineParams
from rlsim.hardware import load_profile
from rlsim.models import load_model


@pytest.fixture(scope="module")
def fwd() -> ForwardModel:
    return ForwardModel(load_model("Qwen3-0.6B"), load_profile("h100_sxm"))


def _params(num_blocks: int, fast: bool = True, **kw) -> EngineParams:
    base = dict(max_num_seqs=64, max_num_batched_tokens=512, block_size=16, num_blocks=num_blocks, fast=fast)
    base.update(kw)
    return EngineParams(**base)


def _engine(fwd, prompts, responses, groups=None, num_blocks=10_000, fast=True, **kw) -> Engine:
    n = len(prompts)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    return Engine(0, fwd, _params(num_blocks, fast, **kw), np.arange(n), groups, np.asarray(prompts), np.asarray(responses))


def _run(engine: Engine, check_kv: bool = True) -> list:
    segs = []
    while not engine.done():
        segs.append(engine.step())
        if check_kv:
            _assert_kv_consistent(engine)
    return segs


def _assert_kv_consistent(e: Engine) -> None:
    """Blocks in use equal private blocks of resident seqs + shared blocks of resident groups."""
    kv = e.kv
    assert 0 <= kv.free <= kv.num_blocks
    resident = [s for s in e.running]
    own = sum(int(kv.own[s]) for s in resident)
    groups = {int(kv.group_of[s]) for s in resident}
    shared = sum(int(kv.shared[next(s for s in resident if kv.group_of[s] == g)]) for g in groups)
    assert kv.used() == own + shared
    for s in resident:  # every resident sequence's cached tokens fit in its blocks
        assert int(kv.shared[s]) * kv.block_size + int(kv.own[s]) * kv.block_size >= int(e.computed[s])


def test_every_sequence_emits_exactly_its_response_length(fwd):
    rng = np.random.default_rng(0)
    prompts = np.repeat(rng.integers(5, 300, 10), 4)
    responses = rng.integers(1, 500, 40)
    groups = np.repeat(np.arange(10), 4)
    e = _engine(fwd, prompts, responses, groups, num_blocks=400)
    _run(e)
    np.testing.assert_array_equal(e.gen, responses)
    assert np.all(np.isfinite(e.finish_s))
    assert e.stats.preemptions > 0  # 400 blocks x 16 tokens is short for this batch


def test_no_preemption_when_kv_holds_everything(fwd):
    prompts, responses = [32, 32], [64, 64]  # each ends with 32 + 64 - 1 = 95 cached tokens = 6 blocks
    e = _engine(fwd, prompts, responses, num_blocks=12)
    _run(e)
    assert e.stats.preemptions == 0


def test_preemption_happens_exactly_when_kv_is_short(fwd):
    """Two sequences of 32 prompt tokens: 2 blocks each at admission.  With 11 blocks, both
    cross into their 6th block (80 cached tokens, generated = 48) at the same iteration and
    the total demand (12) first exceeds capacity there -- not one iteration earlier."""
    prompts, responses = [32, 32], [64, 64]
    e = _engine(fwd, prompts, responses, num_blocks=11, enable_prefix_caching=False)
    preempt_at = None
    while not e.done():
        gen_before = e.gen.copy()
        seg = e.step()
        if seg.preemptions and preempt_at is None:
            preempt_at = gen_before.copy()
            assert seg.iterations == 1
    # at the preempting iteration each sequence had 80 tokens cached (32 prompt + 48 generated)
    # and needed a slot for its 81st: the 6th block, 12 blocks in all > 11.
    assert preempt_at is not None
    assert preempt_at.max() == 49
    assert e.stats.preemptions >= 1
    np.testing.assert_array_equal(e.gen, responses)


def test_preempted_sequence_is_the_last_admitted_and_recomputes(fwd):
    prompts, responses = [32, 32], [64, 64]
    e = _engine(fwd, prompts, responses, num_blocks=11, enable_prefix_caching=False)
    _run(e)
    assert e.preempted.tolist() == [0, 1]  # vLLM pops the most recently admitted request
    assert e.stats.recomputed_tokens > 0
    assert e.finish_s[1] > e.finish_s[0]


def test_fast_path_equals_reference(fwd):
    rng = np.random.default_rng(7)
    prompts = np.repeat(rng.integers(5, 300, 12), 4)
    responses = rng.integers(1, 700, 48)
    groups = np.repeat(np.arange(12), 4)
    fast = _engine(fwd, prompts, responses, groups, num_blocks=500, fast=True)
    ref = _engine(fwd, prompts, responses, groups, num_blocks=500, fast=False)
    _run(fast, check_kv=False)
    _run(ref, check_kv=False)
    assert fast.stats.preemptions == ref.stats.preemptions > 0
    assert fast.stats.iterations == ref.stats.iterations
    np.testing.assert_allclose(fast.finish_s, ref.finish_s, rtol=1e-9)
    np.testing.assert_array_equal(fast.preempted, ref.preempted)


def test_after_a_jump_short_of_kv_the_skipped_plan_would_have_found_no_jump(fwd):
    """step() skips plan() after a full jump that ended short of KV; asking plan() there anyway
    (it changes nothing but just_finished) must give None every time, and such skips happen."""
    rng = np.random.default_rng(3)
    prompts = np.repeat(rng.integers(5, 300, 12), 4)
    e = _engine(fwd, prompts, rng.integers(1, 700, 48), np.repeat(np.arange(12), 4), num_blocks=500)
    skipped = 0
    while not e.done():
        if e._short_next:
            skipped += 1
            assert e.plan() is None
            e._short_next = True  # plan() cleared it
        e.step()
    assert skipped > 10 and e.stats.preemptions > 0


def test_single_sequence_time_is_the_sum_of_its_step_costs(fwd):
    """No contention: prefill pass + one decode pass per further token, each timed alone."""
    P, R = 100, 50
    e = _engine(fwd, [P], [R], cpu_step_s=0.0, cpu_per_seq_s=0.0, cpu_per_prefill_token_s=0.0)
    _run(e)
    expected = fwd.time_s(PassShape(P, 1, 0, 0.0, 1, P * (P + 1) / 2.0, P))
    for g in range(1, R):
        ctx = P + g
        expected += fwd.time_s(PassShape(1, 1, 1, float(ctx)))
    assert e.finish_s[0] == pytest.approx(expected, rel=1e-12)


def test_host_time_adds_without_async_and_overlaps_with_it(fwd):
    slow = _engine(fwd, [100], [20], async_scheduling=False, cpu_step_s=1e-3, cpu_per_seq_s=0.0)
    fast = _engine(fwd, [100], [20], async_scheduling=True, cpu_step_s=1e-3, cpu_per_seq_s=0.0)
    none = _engine(fwd, [100], [20], async_scheduling=False, cpu_step_s=0.0, cpu_per_seq_s=0.0)
    for x in (slow, fast, none):
        _run(x)
    assert slow.finish_s[0] == pytest.approx(none.finish_s[0] + 20 * 1e-3, rel=1e-9)
    assert fast.finish_s[0] < slow.finish_s[0]


def test_prefix_caching_prefills_a_group_prompt_once(fwd):
    prompts, responses = [320] * 4, [10] * 4
    shared = _engine(fwd, prompts, responses, groups=[0, 0, 0, 0], enable_prefix_caching=True)
    alone = _engine(fwd, prompts, responses, groups=[0, 0, 0, 0], enable_prefix_caching=False)
    _run(shared)
    _run(alone)
    # 320 tokens: 19 whole blocks shared, the last block (16 tokens) computed by each sample
    assert shared.stats.prefill_tokens == 320 + 3 * 16
    assert alone.stats.prefill_tokens == 4 * 320


def test_max_num_seqs_caps_the_running_batch(fwd):
    e = _engine(fwd, [10] * 20, [30] * 20, max_num_seqs=8)
    segs = _run(e)
    assert max(s.running for s in segs) == 8 == e.peak_running


def test_chunked_prefill_splits_a_long_prompt_over_the_token_budget(fwd):
    e = _engine(fwd, [1200], [2], max_num_batched_tokens=512)
    segs = _run(e)
    assert [s.prefill_tokens for s in segs[:3]] == [512, 512, 176]


def test_group_members_must_share_their_prompt_length(fwd):
    with pytest.raises(ValueError, match="share one prompt length"):
        _engine(fwd, [10, 11], [5, 5], groups=[0, 0])


def test_without_a_graph_the_fast_path_books_the_exposed_dispatch_as_launch():
    """Eager decode at a small batch is host-bound: the fast path's time split puts the
    dispatch the GPU waits for under ``launch`` (not ``attention``), as the reference path does."""
    eager = ForwardModel(load_model("Qwen3-0.6B"), load_profile("h100_sxm"), cuda_graphs=False)
    prompts, responses = np.full(4, 64), np.full(4, 300)
    fast, ref = (_engine(eager, prompts, responses, fast=f) for f in (True, False))
    _run(fast, check_kv=False)
    _run(ref, check_kv=False)
    for e in (fast, ref):
        c = e.stats.components_s
        assert c["launch"] > c["attention"] > 0.0  # 28 layers x 260 us against a 0.6B model's batch-4 decode
    f, r = fast.stats.components_s, ref.stats.components_s
    assert f["launch"] == pytest.approx(r["launch"], rel=1e-9)
    assert f["attention"] == pytest.approx(r["attention"], rel=1e-9)


@pytest.mark.parametrize("prefix, budget", [(False, 2048), (True, 2048), (False, 160)])
def test_kv_thrash_stretches_equal_stepping_and_the_reference(fwd, prefix, budget):
    """A deep queue on a small KV cache (the Vidur workload's regime in miniature): plain decoding
    alternates short jumps and preempting iterations, which Engine.advance runs as stretches
    (counted without prefix caching; with a 160-token budget a victim's first chunk often fits
    again, which ends a stretch).  The stretches give the very segments and records of
    stepping, and the reference path's."""
    prompts, responses = np.full(96, 64), np.full(96, 400)
    kw = dict(num_blocks=300, max_num_batched_tokens=budget, enable_prefix_caching=prefix)
    stepped, stretched = _engine(fwd, prompts, responses, **kw), _engine(fwd, prompts, responses, **kw)
    ref = _engine(fwd, prompts, responses, fast=False, **kw)
    segs = _run(stepped)
    _run(ref, check_kv=False)
    advanced, longest = [], 0
    while not stretched.done():
        out = stretched.advance()
        advanced.extend(out)
        longest = max(longest, len(out))
        _assert_kv_consistent(stretched)
    assert advanced == segs
    assert longest > 10 and sum(s.preemptions for s in segs) == stepped.stats.preemptions > 50
    for e in (stretched, stepped):
        assert e.stats.iterations == ref.stats.iterations and e.stats.preemptions == ref.stats.preemptions
        np.testing.assert_array_equal(e.preempted, ref.preempted)
        np.testing.assert_allclose(e.finish_s, ref.finish_s, rtol=1e-9)
    np.testing.assert_array_equal(stretched.finish_s, stepped.finish_s)
    assert stretched.stats.busy_s == stepped.stats.busy_s and stretched.stats.components_s == stepped.stats.components_s
