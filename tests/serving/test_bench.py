"""The simulated vllm bench serve: clients against queueing closed forms, vLLM's keys and report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlsim.config import LoadedScenario, scenario_from_dict
from rlsim.serving.bench import simulate_bench
from rlsim.serving.flags import render_report
from rlsim.serving.requests import arrival_times_s, sample_requests
from rlsim.serving.config import ServingConfig
from rlsim.sim import resolve
from pathlib import Path

NO_FRONTEND = {"api_server_us": 0.0, "api_server_us_per_prompt_token": 0.0}


def _res(serving: dict, engine: dict | None = None, model: str = "Qwen3-0.6B", gpus: int = 1):
    eng = {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "cpu_overhead": dict(NO_FRONTEND)}
    eng.update(engine or {})
    data = {"name": "b", "cluster": {"hardware": "h100_sxm", "num_gpus": gpus}, "model": {"name": model},
            "rollout": {"engine": eng}, "serving": serving}
    return resolve(LoadedScenario(scenario_from_dict(data, "b.yaml"), "b.yaml", Path("."), data))


def test_the_engines_mxfp4_moe_activation_picks_the_expert_kernel():
    """``rollout.engine.mxfp4_moe_activation`` reaches the forward model: auto = the MXFP4 x MXFP8
    kernel on B200, bf16 = the bf16-activation one."""
    def key(act: str | None) -> str:
        eng = {"mxfp4_moe_activation": act} if act else {}
        data = {"name": "b", "cluster": {"hardware": "b200_sxm", "num_gpus": 1}, "model": {"name": "gpt-oss-120b"},
                "rollout": {"engine": eng}, "serving": {"num_prompts": 4, "max_concurrency": 4}}
        res = resolve(LoadedScenario(scenario_from_dict(data, "b.yaml"), "b.yaml", Path("."), data))
        return res.forward_model().moe_kernel.params_key

    assert (key(None), key("mxfp8"), key("bf16")) == ("mxfp4_mxfp8", "mxfp4_mxfp8", "mxfp4")


def test_closed_loop_keeps_the_cap_in_flight_littles_law():
    """A closed loop holds exactly c requests: throughput = c / mean latency (Little's law),
    up to the start and the drain."""
    r = simulate_bench(_res({"num_prompts": 400, "max_concurrency": 16, "random_input_len": 256,
                             "random_output_len": 128, "random_range_ratio": 0.2}))
    s, seqs = r.summary, r.sequences
    assert s["max_concurrent_requests"] == 16
    in_flight = (seqs["finish_s"] - seqs["send_s"]).sum() / s["duration"]  # time-average requests in flight
    assert in_flight == pytest.approx(16, rel=0.05)
    assert s["request_throughput"] == pytest.approx(in_flight / (s["mean_e2el_ms"] / 1e3), rel=1e-9)


def test_poisson_arrivals_at_low_load_match_md1():
    """One seat (max_num_seqs 1), fixed lengths, Poisson arrivals: an M/D/1 queue.  Mean wait
    W = rho D / (2 (1 - rho)) with D the service time of one request alone."""
    alone = simulate_bench(_res({"num_prompts": 1, "random_input_len": 128, "random_output_len": 64},
                                {"max_num_seqs": 1})).summary["mean_e2el_ms"] / 1e3
    rate = 0.3 / alone
    r = simulate_bench(_res({"num_prompts": 3000, "request_rate": rate, "random_input_len": 128, "random_output_len": 64},
                            {"max_num_seqs": 1}), seed=1)
    seqs = r.sequences
    service = seqs["finish_s"] - seqs["admit_s"]
    wait = seqs["admit_s"] - seqs["send_s"]
    assert service.mean() == pytest.approx(alone, rel=0.02)
    rho = rate * alone
    assert wait.mean() == pytest.approx(rho * alone / (2 * (1 - rho)), rel=0.1)


def test_gamma_arrivals_have_vllms_mean_and_burstiness():
    rng = np.random.default_rng(0)
    t = arrival_times_s(20001, 5.0, 0.5, rng)
    gaps = np.diff(t)
    assert t[0] == 0.0 and gaps.mean() == pytest.approx(0.2, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(np.sqrt(1 / 0.5), rel=0.05)  # CV of Gamma(k) = 1/sqrt(k)
    assert np.all(arrival_times_s(5, None, 1.0, rng) == 0.0)


def test_random_lengths_follow_vllms_random_dataset():
    cfg = ServingConfig(num_prompts=5000, random_input_len=1000, random_output_len=100, random_range_ratio=0.25,
                        random_prefix_len=50)
    r = sample_requests(cfg, 0)
    assert r.prompt_len.min() == 50 + 750 and r.prompt_len.max() == 50 + 1250
    assert r.output_len.min() == 75 and r.output_len.max() == 125
    np.testing.assert_array_equal(r.prompt_len, sample_requests(cfg, 0).prompt_len)


def test_shared_prefix_is_computed_once():
    base = {"num_prompts": 64, "max_concurrency": 8, "random_input_len": 200, "random_output_len": 16}
    alone = simulate_bench(_res(base))
    shared = simulate_bench(_res(base | {"random_prefix_len": 512}))
    plain = simulate_bench(_res(base | {"random_prefix_len": 512}, {"enable_prefix_caching": False}))
    prefill = lambda r: int(r.segments["prefill_tokens"].sum())  # noqa: E731
    assert prefill(plain) == 64 * (512 + 200)
    assert prefill(shared) == 64 * 200 + 512  # the common 512-token prefix (32 blocks) is computed once
    assert prefill(alone) == 64 * 200


def test_itl_and_tpot_follow_vllms_definitions():
    r = simulate_bench(_res({"num_prompts": 40, "max_concurrency": 4, "random_input_len": 128, "random_output_len": 50}))
    s, seqs = r.summary, r.sequences
    tpot = (seqs["finish_s"] - seqs["first_token_s"]) / (seqs["response_len"] - 1)
    assert s["mean_tpot_ms"] == pytest.approx(1e3 * tpot.mean(), rel=1e-9)
    ttft = seqs["first_token_s"] - seqs["send_s"]
    assert s["median_ttft_ms"] == pytest.approx(1e3 * np.median(ttft), rel=1e-9)
    # one streamed chunk per step and token (no speculation): a request's gaps add up to
    # finish - first token over output - 1 entries, so mean ITL is their ratio of sums
    itl = (seqs["finish_s"] - seqs["first_token_s"]).sum() / (seqs["response_len"] - 1).sum()
    assert s["mean_itl_ms"] == pytest.approx(1e3 * itl, rel=1e-9)


def test_result_has_vllms_keys_and_report():
    spec = {"method": "eagle3", "model": "EAGLE3-Qwen3-8B", "num_speculative_tokens": 3,
            "acceptance": {"kind": "constant", "rate": 0.6}}
    r = simulate_bench(_res({"num_prompts": 20, "max_concurrency": 4, "random_input_len": 64, "random_output_len": 64},
                            {"speculative_config": spec}, model="Qwen3-8B"))
    s = r.summary
    for key in ("completed", "duration", "request_throughput", "output_throughput", "total_token_throughput",
                "total_input_tokens", "total_output_tokens", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms",
                "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "p99_itl_ms",
                "mean_e2el_ms", "median_e2el_ms", "p99_e2el_ms", "std_ttft_ms", "request_rate", "burstiness",
                "max_concurrency", "spec_decode_acceptance_length", "spec_decode_acceptance_rate",
                "spec_decode_num_drafts", "spec_decode_draft_tokens", "spec_decode_accepted_tokens",
                "spec_decode_per_position_acceptance_rates"):
        assert key in s, key
    assert s["request_rate"] == "inf" and s["completed"] == 20 and s["total_output_tokens"] == 20 * 64
    assert s["spec_decode_acceptance_length"] == pytest.approx(1 + s["spec_decode_accepted_tokens"] / s["spec_decode_num_drafts"])
    text = render_report(s)
    assert text.splitlines()[0] == "============ Serving Benchmark Result ============"
    assert "Mean TPOT (ms):" in text and "P99 ITL (ms):" in text and "Acceptance length:" in text
    json.dumps(s)  # serialisable


def test_concurrency_above_max_num_seqs_warns():
    r = simulate_bench(_res({"num_prompts": 40, "max_concurrency": 32, "random_input_len": 64, "random_output_len": 8},
                            {"max_num_seqs": 8}))
    assert r.summary["warnings"] == ["max_concurrency = 32 exceeds max_num_seqs = 8 x 1 engine(s): vLLM queues the rest "
                                     "(they wait for a seat; TTFT includes the wait)"]


def test_progress_counts_finished_requests_and_changes_nothing():
    serving = {"num_prompts": 1000, "max_concurrency": 64, "random_input_len": 64, "random_output_len": 16}
    calls: list[tuple[int, int]] = []
    with_bar = simulate_bench(_res(serving), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (1000, 1000) and {t for _, t in calls} == {1000}
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and len(calls) <= 201  # increasing, about 200 updates at most
    assert with_bar.summary == simulate_bench(_res(serving)).summary


def test_a_prefill_above_the_captured_sizes_waits_for_its_dispatch():
    """One request alone, a 1,024-token prompt: its prefill pass has no CUDA graph at vLLM's
    default cap (512) and takes max(GPU, dispatch); capturing up to 2,048 tokens gives it a
    piecewise graph, GPU-bound."""
    dispatch_us = 2000.0  # per layer: 28 layers -> 56 ms, far above a 0.6B prefill
    serving = {"num_prompts": 1, "random_input_len": 1024, "random_output_len": 2, "random_range_ratio": 0.0}
    cpu = dict(NO_FRONTEND, eager_layer_us=dispatch_us)
    eager = _res(serving, {"cpu_overhead": cpu})
    graphed = _res(serving, {"cpu_overhead": cpu, "max_cudagraph_capture_size": 2048})
    fwd = eager.forward_model()
    assert not fwd.graphed(1024) and graphed.forward_model().graphed(1024)
    t_eager = simulate_bench(eager).summary["mean_ttft_ms"]
    t_graph = simulate_bench(graphed).summary["mean_ttft_ms"]
    dispatch_ms = fwd.arch.num_hidden_layers * dispatch_us / 1e3
    assert t_graph < dispatch_ms <= t_eager  # the graphed pass is GPU-bound; the eager one waits for its dispatch
    assert t_eager - dispatch_ms < t_graph  # what is left of the eager TTFT (host step, first-token step) is
    # less than the whole graphed TTFT, which holds the GPU work the dispatch hides
