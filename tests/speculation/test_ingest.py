"""rlsim.speculation.ingest: vLLM's speculative-decoding metrics -> acceptance model YAML.

Texts follow the formats quoted in shared/reference/hardware_and_models.md C3 and
published_results.md section 2; numbers are the Llama-3.1-8B-Instruct EAGLE-3 K=7 MT-Bench run
(vLLM issue 26191: 4816 drafts, 33712 draft tokens, 12208 accepted, AL 3.53) and the K=3 shape
(AL 2.79, rates about 0.78 / 0.58 / 0.43).
"""

from __future__ import annotations

import io

import pytest
import yaml

from rlsim.errors import ConfigError
from rlsim.speculation.ingest import (
    NOT_FOUND_MESSAGE,
    SpecDecodeMetrics,
    acceptance_yaml,
    parse_vllm_spec_metrics,
    read_metrics_source,
)

# per-position accepted counts of the K=7 run; they sum to the 12208 accepted tokens
COUNTS_K7 = [3756, 2793, 2071, 1397, 1156, 674, 361]
DRAFTS_K7 = 4816

LOG_K7 = (
    "INFO 07-01 12:00:00 [metrics.py:123] SpecDecoding metrics: Mean acceptance length: 3.53, "
    "Accepted throughput: 120.50 tokens/s, Drafted throughput: 333.20 tokens/s, Accepted: 12208 tokens, "
    "Drafted: 33712 tokens, Per-position acceptance rate: 0.780, 0.580, 0.430, 0.290, 0.240, 0.140, 0.075, "
    "Avg Draft acceptance rate: 36.2%"
)

LOG_PERCENT_K3 = (
    "INFO 07-01 12:00:10 [loggers.py:123] SpecDecoding metrics: Mean acceptance length: 2.79, "
    "Accepted throughput: 43.17 tokens/s, Drafted throughput: 72.24 tokens/s, Accepted: 4318 tokens, "
    "Drafted: 7224 tokens, Per-position acceptance rate: 78.0, 58.1, 43.2, Avg Draft acceptance rate: 59.8%"
)


def _prom_series(name: str, engine: int, value: str, position: int | None = None) -> str:
    pos = f',position="{position}"' if position is not None else ""
    return f'{name}{{engine="{engine}",model_name="meta-llama/Llama-3.1-8B-Instruct"{pos}}} {value}'


def _prometheus_two_engines() -> str:
    engine0 = [1878, 1397, 1036, 699, 578, 337, 179]
    engine1 = [a - b for a, b in zip(COUNTS_K7, engine0)]
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        'vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0',
        "# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.",
        "# TYPE vllm:spec_decode_num_drafts_total counter",
        _prom_series("vllm:spec_decode_num_drafts_total", 0, "2.408e+03"),
        _prom_series("vllm:spec_decode_num_drafts_total", 1, "2408.0"),
        _prom_series("vllm:spec_decode_num_drafts_created", 0, "1.7196e+09"),
        "# HELP vllm:spec_decode_num_draft_tokens_total Number of draft tokens.",
        "# TYPE vllm:spec_decode_num_draft_tokens_total counter",
        _prom_series("vllm:spec_decode_num_draft_tokens_total", 0, "16856.0"),
        _prom_series("vllm:spec_decode_num_draft_tokens_total", 1, "1.6856e+04"),
        "# HELP vllm:spec_decode_num_accepted_tokens_total Number of accepted tokens.",
        "# TYPE vllm:spec_decode_num_accepted_tokens_total counter",
        _prom_series("vllm:spec_decode_num_accepted_tokens_total", 0, f"{sum(engine0)}.0"),
        _prom_series("vllm:spec_decode_num_accepted_tokens_total", 1, f"{sum(engine1)}.0"),
        "# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Accepted tokens per draft position.",
        "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter",
    ]
    for engine, counts in ((0, engine0), (1, engine1)):
        lines += [
            _prom_series("vllm:spec_decode_num_accepted_tokens_per_pos_total", engine, f"{c}.0", i)
            for i, c in enumerate(counts)
        ]
    return "\n".join(lines) + "\n"


BENCH_SERVE_K7 = """\
============ Serving Benchmark Result ============
Successful requests:                     80
Benchmark duration (s):                  21.53
Total input tokens:                      8133
Total generated tokens:                  16947
Request throughput (req/s):              3.72
Output token throughput (tok/s):         787.13
---------------Time to First Token----------------
Mean TTFT (ms):                          35.22
Median TTFT (ms):                        33.10
---------------Speculative Decoding---------------
Acceptance rate (%):                     36.21
Acceptance length:                       3.53
Drafts:                                  4816
Draft tokens:                            33712
Accepted tokens:                         12208
Per-position acceptance (%):
  Position 0:                            77.99
  Position 1:                            57.99
  Position 2:                            43.00
  Position 3:                            29.01
  Position 4:                            24.00
  Position 5:                            14.00
  Position 6:                            7.50
==================================================
"""

OFFLINE_K7 = """\
Processed prompts: 100%|##########| 80/80 [00:21<00:00,  3.72it/s]
--------------------------------------------------
num_drafts: 4816
num_draft_tokens: 33712
num_accepted_tokens: 12208
mean acceptance length: 3.53
--------------------------------------------------
acceptance at token 0: 0.78
acceptance at token 1: 0.58
acceptance at token 2: 0.43
acceptance at token 3: 0.29
acceptance at token 4: 0.24
acceptance at token 5: 0.14
acceptance at token 6: 0.07
"""


def _yaml_rates(m: SpecDecodeMetrics) -> dict:
    doc = yaml.safe_load(acceptance_yaml(m))
    assert doc["num_speculative_tokens"] == m.num_speculative_tokens
    assert doc["acceptance"]["kind"] == "per_position"
    assert doc["acceptance"]["rates"] == pytest.approx(list(m.per_position_rates), abs=1e-4)
    return doc


def _assert_k7_counts(m: SpecDecodeMetrics) -> None:
    assert m.num_speculative_tokens == 7
    assert m.num_drafts == pytest.approx(DRAFTS_K7)
    assert m.num_draft_tokens == pytest.approx(33712)
    assert m.num_accepted_tokens == pytest.approx(12208)
    assert m.draft_acceptance_rate == pytest.approx(12208 / 33712)
    assert m.mean_acceptance_length == pytest.approx(1 + sum(m.per_position_rates))
    assert m.mean_acceptance_length == pytest.approx(3.53, abs=0.01)


# ------------------------------------------------------------------------------ formats


def test_log_line_llama_eagle3_k7() -> None:
    m = parse_vllm_spec_metrics(LOG_K7)
    assert m.source_format == "log"
    assert m.num_intervals == 1
    _assert_k7_counts(m)
    assert m.per_position_rates == pytest.approx((0.78, 0.58, 0.43, 0.29, 0.24, 0.14, 0.075))
    assert m.accepted_per_position == pytest.approx(tuple(r * DRAFTS_K7 for r in m.per_position_rates))
    _yaml_rates(m)


def test_log_line_with_percent_rates() -> None:
    m = parse_vllm_spec_metrics(LOG_PERCENT_K3)
    assert m.per_position_rates == pytest.approx((0.78, 0.581, 0.432))
    assert m.num_speculative_tokens == 3
    assert m.num_drafts == pytest.approx(7224 / 3)
    assert m.mean_acceptance_length == pytest.approx(2.793)
    assert m.draft_acceptance_rate == pytest.approx(4318 / 7224)
    _yaml_rates(m)


def test_log_line_without_prefix_and_in_another_field_order() -> None:
    # early V1 printed the draft acceptance rate first; no log prefix, no counts
    text = (
        "SpecDecoding metrics: Draft acceptance rate: 59.8%, Mean acceptance length: 2.79, "
        "Per-position acceptance rate: 0.780, 0.580, 0.430"
    )
    m = parse_vllm_spec_metrics(text)
    assert m.per_position_rates == pytest.approx((0.78, 0.58, 0.43))
    assert m.num_drafts is None and m.num_draft_tokens is None and m.accepted_per_position is None
    assert m.draft_acceptance_rate == pytest.approx(0.598)
    assert "from vLLM log (1 interval): mean acceptance length 2.79" in acceptance_yaml(m)


def test_log_line_with_ansi_colours() -> None:
    m = parse_vllm_spec_metrics("\x1b[32mINFO\x1b[0m 07-01 12:00:00 " + LOG_K7.split(" ", 3)[3])
    _assert_k7_counts(m)


def test_prometheus_two_engines_summed() -> None:
    m = parse_vllm_spec_metrics(_prometheus_two_engines())
    assert m.source_format == "prometheus"
    _assert_k7_counts(m)
    assert m.accepted_per_position == pytest.approx(tuple(float(c) for c in COUNTS_K7))
    assert m.per_position_rates == pytest.approx(tuple(c / DRAFTS_K7 for c in COUNTS_K7))
    assert m.mean_acceptance_length == pytest.approx(1 + 12208 / DRAFTS_K7)
    _yaml_rates(m)


def test_prometheus_without_total_suffix_and_repeated_scrape() -> None:
    text = "\n".join(
        [
            'vllm:spec_decode_num_drafts{engine="0"} 100',
            'vllm:spec_decode_num_draft_tokens{engine="0"} 300',
            'vllm:spec_decode_num_accepted_tokens{engine="0"} 150',
            'vllm:spec_decode_num_accepted_tokens_per_pos{engine="0",position="0"} 80',
            'vllm:spec_decode_num_accepted_tokens_per_pos{engine="0",position="1"} 50',
            'vllm:spec_decode_num_accepted_tokens_per_pos{engine="0",position="2"} 20',
            # a later scrape of the same series (with a timestamp): cumulative, so it replaces
            'vllm:spec_decode_num_drafts_total{engine="0"} 200 1719835200000',
            'vllm:spec_decode_num_draft_tokens_total{engine="0"} 600',
            'vllm:spec_decode_num_accepted_tokens_total{engine="0"} 300',
            'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="0",engine="0"} 160',
            'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",position="1"} 100',
            'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",position="2"} 40',
        ]
    )
    m = parse_vllm_spec_metrics(text)
    assert m.num_drafts == 200 and m.num_draft_tokens == 600 and m.num_accepted_tokens == 300
    assert m.per_position_rates == pytest.approx((0.8, 0.5, 0.2))
    assert m.mean_acceptance_length == pytest.approx(2.5)
    assert m.draft_acceptance_rate == pytest.approx(0.5)


def test_bench_serve_section() -> None:
    m = parse_vllm_spec_metrics(BENCH_SERVE_K7)
    assert m.source_format == "bench_serve"
    _assert_k7_counts(m)
    assert m.per_position_rates == pytest.approx((0.7799, 0.5799, 0.43, 0.2901, 0.24, 0.14, 0.075))
    _yaml_rates(m)
    assert "from vllm bench serve (4816 drafts): mean acceptance length 3.53" in acceptance_yaml(m)


def test_offline_example_output() -> None:
    m = parse_vllm_spec_metrics(OFFLINE_K7)
    assert m.source_format == "offline_example"
    _assert_k7_counts(m)
    assert m.per_position_rates == pytest.approx((0.78, 0.58, 0.43, 0.29, 0.24, 0.14, 0.07))
    _yaml_rates(m)


def test_offline_example_rounding_widens_al_tolerance() -> None:
    # 7 rates printed with 2 decimals can sum up to 0.035 away from the true value: 1 + 2.50 = 3.50
    # vs AL 3.53 (0.03 apart) is rounding, not an error
    text = OFFLINE_K7.replace("acceptance at token 6: 0.07", "acceptance at token 6: 0.04")
    m = parse_vllm_spec_metrics(text)
    assert m.mean_acceptance_length == pytest.approx(3.50)


def test_bench_serve_wins_over_log_lines_in_one_paste() -> None:
    m = parse_vllm_spec_metrics(LOG_PERCENT_K3 + "\n" + BENCH_SERVE_K7)
    assert m.source_format == "bench_serve"


# ------------------------------------------------------------------------------ percent vs fraction


def test_percent_and_fraction_lists_give_the_same_rates() -> None:
    template = (
        "SpecDecoding metrics: Mean acceptance length: 2.40, Accepted: 140 tokens, Drafted: 300 tokens, "
        "Per-position acceptance rate: {}, Avg Draft acceptance rate: {}"
    )
    as_fraction = parse_vllm_spec_metrics(template.format("0.700, 0.450, 0.250", "0.467"))
    as_percent = parse_vllm_spec_metrics(template.format("70.0, 45.0, 25.0", "46.7%"))
    with_signs = parse_vllm_spec_metrics(template.format("70.0%, 45.0%, 25.0%", "46.7"))
    for m in (as_fraction, as_percent, with_signs):
        assert m.per_position_rates == pytest.approx((0.7, 0.45, 0.25))
        assert m.draft_acceptance_rate == pytest.approx(140 / 300)


def test_percent_label_makes_small_values_percent() -> None:
    # "(%)" in the label: 0.90 means 0.9 %, although every value is <= 1
    text = """\
---------------Speculative Decoding---------------
Acceptance length:                       1.02
Per-position acceptance (%):
  Position 0:                            0.90
  Position 1:                            0.50
  Position 2:                            0.10
==================================================
"""
    m = parse_vllm_spec_metrics(text)
    assert m.per_position_rates == pytest.approx((0.009, 0.005, 0.001))
    assert m.num_drafts is None and m.draft_acceptance_rate is None


def test_unlabelled_list_all_at_most_one_is_fractions() -> None:
    m = parse_vllm_spec_metrics("SpecDecoding metrics: Per-position acceptance rate: 1.0, 0.9, 0.8")
    assert m.per_position_rates == pytest.approx((1.0, 0.9, 0.8))


# ------------------------------------------------------------------------------ aggregation


LOG_TWO_INTERVALS = """\
INFO 07-01 12:00:00 [loggers.py:123] SpecDecoding metrics: Mean acceptance length: 2.80, Accepted throughput: 18.00 tokens/s, Drafted throughput: 30.00 tokens/s, Accepted: 180 tokens, Drafted: 300 tokens, Per-position acceptance rate: 0.800, 0.600, 0.400, Avg Draft acceptance rate: 60.0%
INFO 07-01 12:00:10 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 75.3 tokens/s
INFO 07-01 12:00:10 [loggers.py:123] SpecDecoding metrics: Mean acceptance length: 2.50, Accepted throughput: 30.00 tokens/s, Drafted throughput: 60.00 tokens/s, Accepted: 300 tokens, Drafted: 600 tokens, Per-position acceptance rate: 70.0, 50.0, 30.0, Avg Draft acceptance rate: 50.0%
"""


def test_several_intervals_are_weighted_by_drafts() -> None:
    m = parse_vllm_spec_metrics(LOG_TWO_INTERVALS)
    assert m.num_intervals == 2
    assert m.num_drafts == pytest.approx(100 + 200)
    assert m.num_draft_tokens == 900 and m.num_accepted_tokens == 480
    assert m.accepted_per_position == pytest.approx((80 + 140, 60 + 100, 40 + 60))
    assert m.per_position_rates == pytest.approx((220 / 300, 160 / 300, 100 / 300))
    assert m.mean_acceptance_length == pytest.approx(2.6)
    assert m.draft_acceptance_rate == pytest.approx(480 / 900)
    assert acceptance_yaml(m) == (
        "num_speculative_tokens: 3\n"
        "acceptance:                      # from vLLM log (2 intervals, 300 drafts): mean acceptance length 2.60\n"
        "  kind: per_position\n"
        "  rates: [0.7333, 0.5333, 0.3333]  # vLLM's unconditional per-position acceptance\n"
    )
    _yaml_rates(m)


def test_yaml_matches_the_documented_example() -> None:
    line = (
        "SpecDecoding metrics: Mean acceptance length: 2.79, Accepted throughput: 43.00 tokens/s, "
        "Drafted throughput: 72.20 tokens/s, Accepted: 4310 tokens, Drafted: 7224 tokens, "
        "Per-position acceptance rate: 0.780, 0.580, 0.430, Avg Draft acceptance rate: 59.7%"
    )
    m = parse_vllm_spec_metrics(line + "\n" + line + "\n")
    assert acceptance_yaml(m) == (
        "num_speculative_tokens: 3\n"
        "acceptance:                      # from vLLM log (2 intervals, 4816 drafts): mean acceptance length 2.79\n"
        "  kind: per_position\n"
        "  rates: [0.78, 0.58, 0.43]      # vLLM's unconditional per-position acceptance\n"
    )


def test_yaml_is_a_valid_acceptance_model() -> None:
    acceptance = pytest.importorskip("rlsim.speculation.acceptance")
    doc = yaml.safe_load(acceptance_yaml(parse_vllm_spec_metrics(LOG_K7)))
    model = acceptance.PerPositionAcceptance(**doc["acceptance"])
    assert model.mean_acceptance_length(7) == pytest.approx(3.535, abs=1e-3)


def test_yaml_rounding_keeps_rates_non_increasing() -> None:
    m = SpecDecodeMetrics(
        num_drafts=None,
        num_draft_tokens=None,
        num_accepted_tokens=None,
        accepted_per_position=None,
        per_position_rates=(0.6, 0.12344999, 0.1234500009),
        mean_acceptance_length=1.84689999,
        draft_acceptance_rate=None,
        num_speculative_tokens=3,
        source_format="log",
    )
    rates = yaml.safe_load(acceptance_yaml(m))["acceptance"]["rates"]
    assert rates == sorted(rates, reverse=True)
    assert rates == pytest.approx(list(m.per_position_rates), abs=1e-4)


# ------------------------------------------------------------------------------ errors (exact)


def test_inconsistent_mean_acceptance_length() -> None:
    bad = LOG_PERCENT_K3.replace("Mean acceptance length: 2.79", "Mean acceptance length: 3.10")
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(LOG_K7 + "\n" + bad + "\n")
    assert str(exc.value) == (
        "line 2: mean acceptance length = 3.10 does not match 1 + sum of per-position rates = 2.793 "
        "(tolerance 0.02)"
    )


def test_inconsistent_counts_in_prometheus() -> None:
    text = _prometheus_two_engines().replace(
        'vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 6104.0',
        'vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7104.0',
    )
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(text)
    assert str(exc.value) == (
        "Prometheus vllm:spec_decode_* counters: 1 + accepted tokens / drafts = 3.7425 does not match "
        "1 + sum of per-position rates = 3.5349 (tolerance 0.02)"
    )


def test_non_increasing_violation() -> None:
    text = "SpecDecoding metrics: Mean acceptance length: 2.70, Per-position acceptance rate: 0.800, 0.400, 0.500"
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(text, source="run.log")
    assert str(exc.value) == (
        "run.log: line 1: per-position acceptance rate at position 2 = 0.500 is greater than at position 1 = "
        "0.400; vLLM's unconditional per-position rates are non-increasing"
    )


def test_increase_within_tolerance_is_flattened() -> None:
    text = "SpecDecoding metrics: Per-position acceptance rate: 0.8, 0.5, 0.5000005"
    rates = parse_vllm_spec_metrics(text).per_position_rates
    assert rates == (0.8, 0.5, 0.5)


def test_rate_out_of_range() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics("SpecDecoding metrics: Per-position acceptance rate: 120.0, 80.0")
    assert str(exc.value) == (
        "line 1: per-position acceptance rate at position 0 = 120.0 is not a fraction in [0, 1] "
        "or a percent in [0, 100]"
    )


def test_draft_acceptance_rate_must_match_counts() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(LOG_K7.replace("36.2%", "46.2%"))
    assert str(exc.value) == (
        "line 1: draft acceptance rate = 46.2% does not match accepted / drafted tokens = 0.3621 (tolerance 0.01)"
    )


def test_several_intervals_need_counts() -> None:
    text = "SpecDecoding metrics: Per-position acceptance rate: 0.8, 0.5\nSpecDecoding metrics: Per-position acceptance rate: 0.7, 0.4\n"
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(text)
    assert str(exc.value) == "line 1: no 'Drafted: N tokens' count, needed to weight 2 log intervals"


def test_k_must_not_change_between_intervals() -> None:
    text = LOG_K7 + "\n" + LOG_PERCENT_K3
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(text)
    assert str(exc.value) == (
        "line 2: 3 per-position acceptance rates, but line 1 has 7; num_speculative_tokens must be the same "
        "in every line"
    )


def _drop_position(text: str, position: int) -> str:
    return "".join(
        line for line in text.splitlines(keepends=True) if f'position="{position}"' not in line
    )


def test_missing_last_position_is_reported() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(_drop_position(_prometheus_two_engines(), 6))
    assert str(exc.value) == (
        "Prometheus vllm:spec_decode_* counters: draft tokens / drafts = 7 is more than the 6 per-position "
        "acceptance rates given; are positions missing?"
    )


def test_gap_in_positions_is_reported() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(_drop_position(_prometheus_two_engines(), 3))
    assert str(exc.value) == (
        'Prometheus vllm:spec_decode_* counters: vllm:spec_decode_num_accepted_tokens_per_pos has no position="3" '
        "(positions found: 0, 1, 2, 4, 5, 6)"
    )
    text = BENCH_SERVE_K7.replace("  Position 2:                            43.00\n", "")
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(text)
    assert str(exc.value) == "vllm bench serve section (line 11): 'Position 2:' line is missing (k = 7)"


def test_log_line_without_rates() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics("SpecDecoding metrics: Mean acceptance length: 2.79, Accepted: 10 tokens")
    assert str(exc.value) == (
        "line 1: no per-position acceptance rates found; rlsim needs them for a per_position acceptance model"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INFO 07-01 12:00:00 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s",
        "vllm:num_requests_running{engine=\"0\"} 3.0\n",
        "acceptance: {kind: per_position, rates: [0.8]}",
    ],
)
def test_unrecognised_text(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vllm_spec_metrics(text)
    assert str(exc.value) == (
        "no vLLM speculative-decoding metrics found (expected a 'SpecDecoding metrics:' log line, "
        "vllm:spec_decode_* Prometheus counters, or the 'Speculative Decoding' section of vllm bench serve)"
    )
    assert str(exc.value) == NOT_FOUND_MESSAGE


# ------------------------------------------------------------------------------ reading


def test_read_metrics_source_file_and_stdin(tmp_path, monkeypatch) -> None:
    p = tmp_path / "vllm.log"
    p.write_text(LOG_K7 + "\n")
    assert parse_vllm_spec_metrics(read_metrics_source(str(p))).num_speculative_tokens == 7
    monkeypatch.setattr("sys.stdin", io.StringIO(OFFLINE_K7))
    assert parse_vllm_spec_metrics(read_metrics_source("-")).source_format == "offline_example"


def test_read_metrics_source_missing_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        read_metrics_source("x.log")
    assert str(exc.value) == "acceptance file = 'x.log': file not found"
