"""Per-round speculative costs beyond the kernels (rlsim.speculation.costs) and how a step adds them."""

from __future__ import annotations

import numpy as np
import pytest

from rlsim.hardware import load_profile
from rlsim.sim import resolve
from rlsim.sim.engines import spec_runtime
from rlsim.speculation.costs import SpecCosts

from helpers import eagle, scenario

COSTS = SpecCosts(1e-3, 2e-4, 1e-6, 1e-5, 1.5e-4, 3e-5, 5e-7, 2e-10)


def test_gpu_drafter_overhead_per_round_step_and_sequence():
    assert COSTS.draft_overhead_s(4, 3) == pytest.approx(1e-3 + 3 * 2e-4 + 4 * 1e-6)
    assert COSTS.draft_overhead_s(4, 0) == 0.0


def test_verify_extra_is_a_floor_above_the_kernels_growth():
    assert COSTS.verify_extra_s(40, 0.0) == pytest.approx(40 * 1e-5)
    assert COSTS.verify_extra_s(40, 1e-4) == pytest.approx(40 * 1e-5 - 1e-4)
    assert COSTS.verify_extra_s(40, 1e-3) == 0.0  # compute-bound kernels already grow more
    assert COSTS.verify_extra_s(0, 0.0) == 0.0


def test_ngram_host_grows_with_batch_and_history():
    assert float(COSTS.ngram_host_s(8, 1e5)) == pytest.approx(3e-5 + 8 * 5e-7 + 1e5 * 2e-10)
    h = COSTS.ngram_host_s(8, np.array([1e4, 1e5]))
    assert h[1] > h[0]


def test_profile_defaults_are_the_fitted_values_never_zero():
    sp = load_profile("h100_sxm").speculation
    assert sp.draft_round_us > 0 and sp.verify_us_per_draft_token > 0 and sp.spec_host_us > 0
    assert sp.fit is not None and "calibrate spec" in sp.source
    assert sp.draft_step_us_at("0.9.2") == sp.legacy_draft_step_us > 0
    assert sp.draft_step_us_at(None) == sp.draft_step_us


def test_eagle_round_is_the_head_kernels_on_the_gpu_and_the_fitted_overhead_on_the_host():
    res = resolve(scenario(spec=eagle(3, 0.7)))
    d = res.drafter
    ctx = np.array([2000.0])
    kernels = d.fwd.decode_times_s(1, ctx, q=4)[0] + sum(d.fwd.decode_times_s(1, ctx + j, q=1)[0] for j in (1, 2))
    assert d.propose_times_s(1, ctx, 3)[0] == pytest.approx(kernels)
    assert d.overhead_host_s(1, 3) == d.costs.draft_overhead_s(1, 3) > 0
    rt = spec_runtime(res, np.arange(2), np.full(2, 64), 0, res.forward_model())
    overlap, serial = rt.host_parts_s(1, 3, ctx)
    assert overlap == pytest.approx(d.costs.spec_host_s + d.costs.draft_overhead_s(1, 3)) and serial == 0.0


def test_random_rejection_sampling_costs_more_than_greedy():
    greedy = resolve(scenario(spec=eagle(3, 0.7, sampling_temperature=0.0)))
    rand = resolve(scenario(spec=eagle(3, 0.7)))
    ids, resp = np.arange(4), np.full(4, 64)
    g = spec_runtime(greedy, ids, resp, 0, greedy.forward_model())
    r = spec_runtime(rand, ids, resp, 0, rand.forward_model())
    fwd = g.target
    growth = sum(fwd.decode_const_parts(16, 4).values()) - sum(fwd.decode_const_parts(16, 1).values())
    assert g.verify_extra_s(16, 3) == pytest.approx(16 * 3 * g.drafter.costs.verify_s_per_draft_token - growth)
    assert r.verify_extra_s(16, 3) > g.verify_extra_s(16, 3)
    assert g.verify_extra_s(512, 3) < 512 * 3 * g.drafter.costs.verify_s_per_draft_token  # the GEMMs grow too


def test_ngram_host_time_is_on_the_critical_path():
    res = resolve(scenario(spec={"method": "ngram", "num_speculative_tokens": 3,  # bursty: no match in hard blocks
                                 "acceptance": {"kind": "regime", "easy_fraction": 0.3, "easy_rate": 0.8,
                                                "hard_rate": 0.0, "block_tokens": 64}}))
    rt = spec_runtime(res, np.arange(2), np.full(2, 64), 0, res.forward_model())
    overlap, serial = rt.host_parts_s(32, 3, 32 * 4000.0)
    assert overlap == pytest.approx(res.hw.speculation.spec_host_us * 1e-6)
    drafted = 32 * 3 - rt.unmatched_tokens(32, 3)  # requests without a match propose nothing
    assert 0 < drafted < 32 * 3
    assert float(serial) == pytest.approx(float(res.drafter.host_time_s(32, 32 * 4000.0, drafted)))
    assert float(serial) - float(res.drafter.host_time_s(32, 32 * 4000.0)) == pytest.approx(
        drafted * res.hw.speculation.ngram_us_per_draft_token * 1e-6)
    res = resolve(scenario(spec={"method": "ngram", "num_speculative_tokens": 3,  # every request proposes
                                 "acceptance": {"kind": "constant", "rate": 0.3}}))
    rt = spec_runtime(res, np.arange(2), np.full(2, 64), 0, res.forward_model())
    assert rt.unmatched_tokens(32, 3) == 0
    ctx = 32 * 4000.0
    gpu = rt.target.decode_times_s(32, np.array([ctx + 32 * 3]), q=4)[0] + rt.verify_extra_s(32, 3)
    serial_after = float(res.drafter.host_time_s(32, ctx + 32 * 3, 32 * 3))  # history incl. the round's slots
    assert rt.step_time_s(32, ctx, 3) == pytest.approx(gpu + serial_after)


def test_schema_defaults_are_the_h100_fit_for_profiles_without_a_section():
    from rlsim.hardware.profile import SpeculationCosts

    fitted = load_profile("h100_sxm").speculation.model_dump(exclude={"source", "fit", "vllm_version"})
    assert SpeculationCosts().model_dump(exclude={"source", "fit", "vllm_version"}) == fitted
    assert load_profile("h200_sxm").speculation.draft_round_us == fitted["draft_round_us"]
