"""Read what vLLM printed about speculative decoding; write the acceptance model YAML for rlsim.

A user runs vLLM with ``--speculative-config``, pastes what it printed, and gets a snippet to
paste under ``speculative_config:`` in a scenario (:func:`acceptance_yaml`).  Four outputs are
recognised (``shared/reference/hardware_and_models.md`` C3, ``published_results.md`` section 2):

``log``
    One or more periodic ``SpecDecoding metrics:`` log lines, with or without vLLM's prefix
    (``INFO 07-01 12:00:00 [metrics.py:123] ``)::

        SpecDecoding metrics: Mean acceptance length: 3.53, Accepted throughput: 120.50 tokens/s,
        Drafted throughput: 333.20 tokens/s, Accepted: 12208 tokens, Drafted: 33712 tokens,
        Per-position acceptance rate: 0.780, 0.580, ..., Avg Draft acceptance rate: 36.2%

    Each line covers one stats interval.  Several lines are aggregated: the number of drafts
    of a line is ``Drafted / k`` (exact when every draft has ``k`` tokens, as for EAGLE / MTP; a
    slight under-count for n-gram drafts cut short), per-position rates are averaged weighted by
    those drafts, and counts are summed.  Several lines need the ``Drafted: N tokens`` count.
``prometheus``
    A ``/metrics`` dump: ``vllm:spec_decode_num_drafts``, ``..._num_draft_tokens``,
    ``..._num_accepted_tokens`` and ``..._num_accepted_tokens_per_pos{position="i"}``, with or
    without the ``_total`` suffix, any labels.  Series with different label sets (engines,
    model names) are summed; a series repeated with the *same* labels (two scrapes pasted) keeps
    its last value, since counters are cumulative.  ``# HELP`` / ``# TYPE`` lines, ``_created``
    series and timestamps are ignored.
``bench_serve``
    The ``---------------Speculative Decoding---------------`` section of ``vllm bench serve``.
``offline_example``
    What ``examples/offline_inference/spec_decode.py`` prints (``num_drafts: N``, ...,
    ``mean acceptance length: X``, ``acceptance at token i: X``).

If a text contains several of these, the first found in the order bench_serve, prometheus,
offline_example, log is used (the YAML comment names it).

Percent or fraction (vLLM prints both, sometimes in the same log): a list of per-position rates
is in percent if its label says ``(%)``, if any value carries a ``%`` sign, or if any value is
greater than 1.0; otherwise it is a list of fractions.  A list of percentages that are all <= 1 %
and unlabelled is therefore read as fractions (such tiny rates are implausible).  A single
draft acceptance rate follows the same rule; when it is checked against ``accepted / drafted``
an unlabelled value <= 1 may match either way.

Checks, each a one-line :class:`~rlsim.errors.ConfigError` naming the line or section:

* rates in [0, 1] after conversion;
* rates non-increasing within 1e-6 (vLLM's per-position rates are unconditional); violations
  within the tolerance are then flattened (running minimum), so the result is exactly
  non-increasing as :class:`~rlsim.speculation.acceptance.PerPositionAcceptance` requires;
* mean acceptance length (AL) ``= 1 + sum(rates)`` within 0.02, or within the rounding of the
  printed digits if that is larger (e.g. the offline example prints 7 rates with 2 decimals:
  up to 7 * 0.005 + 0.005 = 0.04 apart).  The same check compares ``1 + accepted / drafts``
  with ``1 + sum(rates)`` where exact draft counts are given (prometheus, bench_serve,
  offline_example);
* a printed draft acceptance rate matches ``accepted / drafted`` within 0.01;
* ``draft tokens / drafts`` is at most ``k`` (else per-position rates are missing).

The resulting :attr:`SpecDecodeMetrics.mean_acceptance_length` is always ``1 + sum(rates)``:
the AL the simulator reproduces from the rates it is given.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from rlsim.errors import ConfigError

__all__ = [
    "SpecDecodeMetrics",
    "parse_vllm_spec_metrics",
    "acceptance_yaml",
    "read_metrics_source",
    "NOT_FOUND_MESSAGE",
    "AL_TOLERANCE",
    "MONOTONE_TOLERANCE",
    "DRAFT_RATE_TOLERANCE",
]

#: Absolute tolerance between a printed AL and ``1 + sum(rates)`` (widened to the printed rounding).
AL_TOLERANCE = 0.02
#: How much a per-position rate may exceed the previous one before it is an error.
MONOTONE_TOLERANCE = 1e-6
#: Absolute tolerance (fraction) between a printed draft acceptance rate and accepted / drafted.
DRAFT_RATE_TOLERANCE = 0.01

NOT_FOUND_MESSAGE = (
    "no vLLM speculative-decoding metrics found (expected a 'SpecDecoding metrics:' log line, "
    "vllm:spec_decode_* Prometheus counters, or the 'Speculative Decoding' section of vllm bench serve)"
)

_SOURCE_LABELS = {
    "log": "vLLM log",
    "prometheus": "vLLM Prometheus /metrics",
    "bench_serve": "vllm bench serve",
    "offline_example": "vLLM offline spec_decode example",
}


@dataclass(frozen=True)
class SpecDecodeMetrics:
    """vLLM's speculative-decoding metrics, normalised (rates as fractions, counts summed).

    ``accepted_per_position`` counts are exact for Prometheus and ``rate * num_drafts``
    otherwise (``None`` when the number of drafts is unknown).  ``num_drafts`` is a float
    because for logs it is ``Drafted / k`` summed over intervals.  ``num_intervals`` is the
    number of log lines aggregated (1 for other formats).
    """

    num_drafts: float | None
    num_draft_tokens: float | None
    num_accepted_tokens: float | None
    accepted_per_position: tuple[float, ...] | None
    per_position_rates: tuple[float, ...]
    mean_acceptance_length: float
    draft_acceptance_rate: float | None
    num_speculative_tokens: int
    source_format: str
    num_intervals: int = 1


# --------------------------------------------------------------------------------------------
# small helpers

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _fmt(x: float) -> str:
    """A computed number for a message: at most 4 decimals, no trailing zeros."""
    s = f"{x:.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _half_unit(token: str) -> float:
    """Half a unit of the last printed digit of ``token`` ("0.78" -> 0.005); 0 for 1e3 forms."""
    t = token.strip().rstrip("%").strip()
    if "e" in t.lower():
        return 0.0
    if "." not in t:
        return 0.5
    return 0.5 * 10.0 ** -len(t.split(".", 1)[1])


def _prefixed(source: str | None, where: str) -> str:
    return f"{source}: {where}" if source else where


@dataclass(frozen=True)
class _Rates:
    """A printed list of rates converted to fractions, with its printed rounding."""

    values: list[float]
    tokens: list[str]
    rounding: float  # sum over values of half a unit of the last printed digit (fraction units)


def _to_fractions(tokens: list[str], label_percent: bool) -> _Rates:
    """Apply the percent rule (module docstring) to a list of printed numbers."""
    raw = [float(t.strip().rstrip("%")) for t in tokens]
    percent = label_percent or any(t.strip().endswith("%") for t in tokens) or any(v > 1.0 for v in raw)
    scale = 0.01 if percent else 1.0
    return _Rates(
        values=[v * scale for v in raw],
        tokens=[t.strip() for t in tokens],
        rounding=sum(_half_unit(t) * scale for t in tokens),
    )


def _scalar_fraction_options(token: str, label_percent: bool) -> list[float]:
    """The fraction(s) a single printed rate can mean (both when unlabelled and <= 1)."""
    v = float(token.strip().rstrip("%"))
    if label_percent or token.strip().endswith("%") or v > 1.0:
        return [v / 100.0]
    return [v, v / 100.0]


def _validate_rates(rates: _Rates, where: str) -> list[float]:
    """Range and monotonicity checks; returns the rates flattened to be exactly non-increasing."""
    for i, (r, tok) in enumerate(zip(rates.values, rates.tokens)):
        if not 0.0 <= r <= 1.0:
            raise ConfigError(
                f"{where}: per-position acceptance rate at position {i} = {tok} "
                "is not a fraction in [0, 1] or a percent in [0, 100]"
            )
    out: list[float] = []
    for i, r in enumerate(rates.values):
        if i > 0 and r > rates.values[i - 1] + MONOTONE_TOLERANCE:
            raise ConfigError(
                f"{where}: per-position acceptance rate at position {i} = {rates.tokens[i]} is greater than "
                f"at position {i - 1} = {rates.tokens[i - 1]}; vLLM's unconditional per-position rates "
                "are non-increasing"
            )
        out.append(min(r, out[-1]) if out else r)
    return out


def _al_tolerance(extra_rounding: float) -> float:
    return max(AL_TOLERANCE, extra_rounding)


def _check_printed_al(al_token: str | None, rates: _Rates, where: str) -> None:
    if al_token is None:
        return
    printed = float(al_token)
    recomputed = 1.0 + sum(rates.values)
    tol = _al_tolerance(_half_unit(al_token) + rates.rounding)
    if abs(printed - recomputed) > tol + 1e-12:
        raise ConfigError(
            f"{where}: mean acceptance length = {al_token} does not match 1 + sum of per-position "
            f"rates = {_fmt(recomputed)} (tolerance {_fmt(tol)})"
        )


def _check_counts_al(drafts: float, accepted: float, rates: _Rates, where: str) -> None:
    from_counts = 1.0 + accepted / drafts
    recomputed = 1.0 + sum(rates.values)
    tol = _al_tolerance(rates.rounding)
    if abs(from_counts - recomputed) > tol + 1e-12:
        raise ConfigError(
            f"{where}: 1 + accepted tokens / drafts = {_fmt(from_counts)} does not match 1 + sum of "
            f"per-position rates = {_fmt(recomputed)} (tolerance {_fmt(tol)})"
        )


def _check_counts(
    where: str, drafts: float | None, draft_tokens: float | None, accepted: float | None, k: int
) -> None:
    for name, v in (("drafts", drafts), ("draft tokens", draft_tokens), ("accepted tokens", accepted)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"{where}: {name} = {_fmt(v)} must be a count >= 0")
    if draft_tokens is not None and accepted is not None and accepted > draft_tokens:
        raise ConfigError(
            f"{where}: accepted tokens = {_fmt(accepted)} exceed drafted tokens = {_fmt(draft_tokens)}"
        )
    if drafts and draft_tokens is not None and draft_tokens / drafts > k + 1e-9:
        raise ConfigError(
            f"{where}: draft tokens / drafts = {_fmt(draft_tokens / drafts)} is more than the {k} "
            "per-position acceptance rates given; are positions missing?"
        )


def _check_draft_rate(
    where: str, token: str | None, label_percent: bool, accepted: float | None, drafted: float | None
) -> float | None:
    """Draft acceptance rate as a fraction: ``accepted / drafted`` when counted, else the printed one."""
    if accepted is not None and drafted:
        counted = accepted / drafted
        if token is not None:
            options = _scalar_fraction_options(token, label_percent)
            if all(abs(o - counted) > DRAFT_RATE_TOLERANCE for o in options):
                raise ConfigError(
                    f"{where}: draft acceptance rate = {token.strip()} does not match accepted / drafted "
                    f"tokens = {_fmt(counted)} (tolerance {_fmt(DRAFT_RATE_TOLERANCE)})"
                )
        return counted
    if token is None:
        return None
    value = _scalar_fraction_options(token, label_percent)[0]
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: draft acceptance rate = {token.strip()} is not in [0, 1] or [0, 100] %")
    return value


def _no_rates(where: str) -> ConfigError:
    return ConfigError(
        f"{where}: no per-position acceptance rates found; rlsim needs them for a per_position acceptance model"
    )


def _build(
    *,
    rates: list[float],
    drafts: float | None,
    draft_tokens: float | None,
    accepted: float | None,
    per_pos_counts: list[float] | None,
    source_format: str,
    num_intervals: int = 1,
    printed_draft_rate: float | None = None,
) -> SpecDecodeMetrics:
    """The metrics record; the draft acceptance rate is accepted / draft tokens when both were
    counted, else the printed one (already checked by _check_draft_rate)."""
    draft_rate = accepted / draft_tokens if accepted is not None and draft_tokens else printed_draft_rate
    if per_pos_counts is None and drafts is not None:
        per_pos_counts = [r * drafts for r in rates]
    return SpecDecodeMetrics(
        num_drafts=drafts,
        num_draft_tokens=draft_tokens,
        num_accepted_tokens=accepted,
        accepted_per_position=tuple(per_pos_counts) if per_pos_counts is not None else None,
        per_position_rates=tuple(rates),
        mean_acceptance_length=1.0 + sum(rates),
        draft_acceptance_rate=draft_rate,
        num_speculative_tokens=len(rates),
        source_format=source_format,
        num_intervals=num_intervals,
    )


# --------------------------------------------------------------------------------------------
# format 1: SpecDecoding metrics log lines

_LOG_MARK = re.compile(r"SpecDecoding metrics:")
_LOG_AL = re.compile(rf"Mean acceptance length:\s*({_NUM})")
_LOG_ACCEPTED = re.compile(rf"\bAccepted:\s*({_NUM})\s*tokens\b")
_LOG_DRAFTED = re.compile(rf"\bDrafted:\s*({_NUM})\s*tokens\b")
_LOG_RATES = re.compile(rf"Per-position acceptance rate(\s*\(%\))?:\s*\[?\s*({_NUM}%?(?:\s*,\s*{_NUM}%?)*)")
_LOG_DRAFT_RATE = re.compile(rf"Draft acceptance rate(\s*\(%\))?:\s*({_NUM}\s*%?)")


@dataclass(frozen=True)
class _LogLine:
    lineno: int
    rates: list[float]
    drafted: float | None
    accepted: float | None
    draft_rate_token: str | None
    draft_rate_label_pct: bool


def _parse_log_line(line: str, lineno: int, where: str) -> _LogLine:
    m = _LOG_RATES.search(line)
    if not m:
        raise _no_rates(where)
    rates = _to_fractions(re.split(r"\s*,\s*", m.group(2).strip()), label_percent=bool(m.group(1)))
    values = _validate_rates(rates, where)
    al = _LOG_AL.search(line)
    _check_printed_al(al.group(1) if al else None, rates, where)
    acc = _LOG_ACCEPTED.search(line)
    dra = _LOG_DRAFTED.search(line)
    accepted = float(acc.group(1)) if acc else None
    drafted = float(dra.group(1)) if dra else None
    _check_counts(where, None, drafted, accepted, len(values))
    dr = _LOG_DRAFT_RATE.search(line)
    return _LogLine(
        lineno=lineno,
        rates=values,
        drafted=drafted,
        accepted=accepted,
        draft_rate_token=dr.group(2) if dr else None,
        draft_rate_label_pct=bool(dr and dr.group(1)),
    )


def _parse_log(lines: list[str], source: str | None) -> SpecDecodeMetrics | None:
    parsed: list[_LogLine] = []
    for n, line in enumerate(lines, start=1):
        if not _LOG_MARK.search(line):
            continue
        where = _prefixed(source, f"line {n}")
        entry = _parse_log_line(line, n, where)
        if parsed and len(entry.rates) != len(parsed[0].rates):
            raise ConfigError(
                f"{where}: {len(entry.rates)} per-position acceptance rates, but line {parsed[0].lineno} has "
                f"{len(parsed[0].rates)}; num_speculative_tokens must be the same in every line"
            )
        # a printed draft acceptance rate is checked per line
        _check_draft_rate(where, entry.draft_rate_token, entry.draft_rate_label_pct, entry.accepted, entry.drafted)
        parsed.append(entry)
    if not parsed:
        return None
    k = len(parsed[0].rates)
    if len(parsed) == 1:
        e = parsed[0]
        where = _prefixed(source, f"line {e.lineno}")
        drafts = e.drafted / k if e.drafted is not None else None
        if drafts == 0:
            raise ConfigError(f"{where}: Drafted: 0 tokens; no drafts in this interval")
        return _build(
            rates=e.rates,
            drafts=drafts,
            draft_tokens=e.drafted,
            accepted=e.accepted,
            per_pos_counts=None,
            printed_draft_rate=_check_draft_rate(where, e.draft_rate_token, e.draft_rate_label_pct, e.accepted,
                                                 e.drafted),
            source_format="log",
        )
    for e in parsed:
        if e.drafted is None:
            raise ConfigError(
                f"{_prefixed(source, f'line {e.lineno}')}: no 'Drafted: N tokens' count, needed to weight "
                f"{len(parsed)} log intervals"
            )
    used = [e for e in parsed if e.drafted]  # an interval without drafts carries no information
    if not used:
        raise ConfigError(f"{_prefixed(source, f'line {parsed[0].lineno}')}: Drafted: 0 tokens in every line; no drafts")
    drafts = sum(e.drafted / k for e in used)  # type: ignore[operator]
    per_pos = [sum(e.rates[i] * e.drafted / k for e in used) for i in range(k)]  # type: ignore[operator]
    rates = [c / drafts for c in per_pos]
    for i in range(1, k):  # weighted means of non-increasing lists are non-increasing; keep it exact
        rates[i] = min(rates[i], rates[i - 1])
    draft_tokens = sum(e.drafted for e in used)  # type: ignore[misc]
    accepted = sum(e.accepted for e in used) if all(e.accepted is not None for e in used) else None  # type: ignore[misc]
    return _build(
        rates=rates,
        drafts=drafts,
        draft_tokens=draft_tokens,
        accepted=accepted,
        per_pos_counts=per_pos,
        source_format="log",
        num_intervals=len(used),
    )


# --------------------------------------------------------------------------------------------
# format 2: Prometheus /metrics

_PROM_SAMPLE = re.compile(
    r"^(?P<name>vllm:spec_decode_num_(?:drafts|draft_tokens|accepted_tokens|accepted_tokens_per_pos))"
    r"(?:_total)?(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?\s*$"
)
_PROM_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _parse_prometheus(lines: list[str], source: str | None) -> SpecDecodeMetrics | None:
    where = _prefixed(source, "Prometheus vllm:spec_decode_* counters")
    series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for n, line in enumerate(lines, start=1):
        m = _PROM_SAMPLE.match(line.strip())
        if not m:
            continue
        try:
            value = float(m.group("value"))
        except ValueError:
            raise ConfigError(
                f"{_prefixed(source, f'line {n}')}: {m.group('name')} = {m.group('value')!r} is not a number"
            ) from None
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(
                f"{_prefixed(source, f'line {n}')}: {m.group('name')} = {m.group('value')} must be a count >= 0"
            )
        labels = tuple(sorted(_PROM_LABEL.findall(m.group("labels") or "")))
        series[(m.group("name"), labels)] = value  # same series twice (two scrapes): the last wins
    if not series:
        return None

    totals: dict[str, float] = {}
    per_pos: dict[int, float] = {}
    for (name, labels), value in series.items():
        short = name.removeprefix("vllm:spec_decode_num_")
        if short == "accepted_tokens_per_pos":
            pos = dict(labels).get("position")
            if pos is None or not pos.isdigit():
                raise ConfigError(f"{where}: {name} needs a position=\"i\" label, got {dict(labels)}")
            per_pos[int(pos)] = per_pos.get(int(pos), 0.0) + value
        else:
            totals[short] = totals.get(short, 0.0) + value
    if not per_pos:
        raise _no_rates(where)
    k = max(per_pos) + 1
    missing = [i for i in range(k) if i not in per_pos]
    if missing:
        found = ", ".join(str(i) for i in sorted(per_pos))
        raise ConfigError(
            f"{where}: vllm:spec_decode_num_accepted_tokens_per_pos has no position=\"{missing[0]}\" "
            f"(positions found: {found})"
        )
    counts = [per_pos[i] for i in range(k)]
    draft_tokens = totals.get("draft_tokens")
    accepted = totals.get("accepted_tokens")
    drafts = totals.get("drafts")
    if drafts is None:
        if draft_tokens is None:
            raise ConfigError(
                f"{where}: no vllm:spec_decode_num_drafts (or num_draft_tokens) counter; "
                "cannot turn per-position counts into rates"
            )
        drafts = draft_tokens / k  # every draft has k tokens (EAGLE / MTP)
    if drafts == 0:
        raise ConfigError(f"{where}: vllm:spec_decode_num_drafts = 0; no drafts recorded yet")
    _check_counts(where, drafts, draft_tokens, accepted, k)
    rates = _Rates(values=[c / drafts for c in counts], tokens=[_fmt(c / drafts) for c in counts], rounding=0.0)
    values = _validate_rates(rates, where)
    if accepted is not None:
        _check_counts_al(drafts, accepted, rates, where)
    return _build(
        rates=values,
        drafts=drafts,
        draft_tokens=draft_tokens,
        accepted=accepted,
        per_pos_counts=counts,
        source_format="prometheus",
    )


# --------------------------------------------------------------------------------------------
# format 3: vllm bench serve

_BENCH_HEADER = re.compile(r"^\s*-{3,}\s*Speculative Decoding\s*-{3,}\s*$")
_BENCH_END = re.compile(r"^\s*(?:={3,}|-{3,}\s*\S.*?\s*-{3,})\s*$")
_BENCH_ITEM = re.compile(rf"^\s*(?P<label>[A-Za-z][^:]*?)\s*:\s*(?P<value>{_NUM}\s*%?)?\s*$")
_BENCH_POSITION = re.compile(r"^position\s+(\d+)$")


def _parse_bench(lines: list[str], source: str | None) -> SpecDecodeMetrics | None:
    starts = [n for n, line in enumerate(lines) if _BENCH_HEADER.match(line)]
    if not starts:
        return None
    if len(starts) > 1:
        shown = ", ".join(str(n + 1) for n in starts)
        where = _prefixed(source, f"line {starts[1] + 1}")
        raise ConfigError(
            f"{where}: another 'Speculative Decoding' section of vllm bench serve (sections at lines {shown}); "
            "paste the output of one run"
        )
    start = starts[0]
    where = _prefixed(source, f"vllm bench serve section (line {start + 1})")
    items: dict[str, str] = {}
    positions: dict[int, str] = {}
    per_pos_label_pct = False
    for line in lines[start + 1 :]:
        if _BENCH_END.match(line):
            break
        m = _BENCH_ITEM.match(line)
        if not m:
            continue
        label = re.sub(r"\s+", " ", m.group("label").strip().lower())
        value = m.group("value")
        pm = _BENCH_POSITION.match(label)
        if pm:
            if value is not None:
                positions[int(pm.group(1))] = value
        elif label.startswith("per-position acceptance"):
            per_pos_label_pct = "(%)" in label
        elif value is not None:
            items[label] = value
    if not positions:
        raise _no_rates(where)
    k = max(positions) + 1
    missing = [i for i in range(k) if i not in positions]
    if missing:
        raise ConfigError(f"{where}: 'Position {missing[0]}:' line is missing (k = {k})")
    rates = _to_fractions([positions[i] for i in range(k)], label_percent=per_pos_label_pct)
    values = _validate_rates(rates, where)
    _check_printed_al(items.get("acceptance length"), rates, where)

    def count(label: str) -> float | None:
        return float(items[label]) if label in items else None

    drafts, draft_tokens, accepted = count("drafts"), count("draft tokens"), count("accepted tokens")
    _check_counts(where, drafts, draft_tokens, accepted, k)
    if drafts == 0:
        raise ConfigError(f"{where}: Drafts: 0; no drafts recorded")
    if drafts is not None and accepted is not None:
        _check_counts_al(drafts, accepted, rates, where)
    rate_label = next((lbl for lbl in items if lbl.startswith("acceptance rate")), None)
    draft_rate = _check_draft_rate(
        where,
        items.get(rate_label) if rate_label else None,
        bool(rate_label and "(%)" in rate_label),
        accepted,
        draft_tokens,
    )
    return _build(
        rates=values,
        drafts=drafts,
        draft_tokens=draft_tokens,
        accepted=accepted,
        per_pos_counts=None,
        printed_draft_rate=draft_rate,
        source_format="bench_serve",
    )


# --------------------------------------------------------------------------------------------
# format 4: examples/offline_inference/spec_decode.py

_OFF_KEYS = {
    "num_drafts": re.compile(rf"^\s*num_drafts\s*:\s*({_NUM})\s*$"),
    "num_draft_tokens": re.compile(rf"^\s*num_draft_tokens\s*:\s*({_NUM})\s*$"),
    "num_accepted_tokens": re.compile(rf"^\s*num_accepted_tokens\s*:\s*({_NUM})\s*$"),
    "mean acceptance length": re.compile(rf"^\s*mean acceptance length\s*:\s*({_NUM})\s*$", re.IGNORECASE),
}
_OFF_POSITION = re.compile(rf"^\s*acceptance at token\s+(\d+)\s*:\s*({_NUM}\s*%?)\s*$", re.IGNORECASE)


def _parse_offline(lines: list[str], source: str | None) -> SpecDecodeMetrics | None:
    found: dict[str, list[tuple[int, str]]] = {key: [] for key in _OFF_KEYS}
    positions: dict[int, str] = {}
    first_line: int | None = None
    for n, line in enumerate(lines, start=1):
        for key, rx in _OFF_KEYS.items():
            m = rx.match(line)
            if m:
                found[key].append((n, m.group(1)))
                first_line = first_line or n
        pm = _OFF_POSITION.match(line)
        if pm:
            i = int(pm.group(1))
            if i in positions:
                raise ConfigError(
                    f"{_prefixed(source, f'line {n}')}: second 'acceptance at token {i}:' line; paste the output of one run"
                )
            positions[i] = pm.group(2)
            first_line = first_line or n
    if not found["num_drafts"] and not positions:
        return None
    for key, hits in found.items():
        if len(hits) > 1:
            raise ConfigError(
                f"{_prefixed(source, f'line {hits[1][0]}')}: second '{key}:' line; paste the output of one run"
            )
    where = _prefixed(source, f"offline example output (line {first_line})")
    if not positions:
        raise _no_rates(where)
    k = max(positions) + 1
    missing = [i for i in range(k) if i not in positions]
    if missing:
        raise ConfigError(f"{where}: 'acceptance at token {missing[0]}:' line is missing (k = {k})")
    rates = _to_fractions([positions[i] for i in range(k)], label_percent=False)
    values = _validate_rates(rates, where)
    get = {key: (float(h[0][1]) if h else None) for key, h in found.items()}
    al_hits = found["mean acceptance length"]
    _check_printed_al(al_hits[0][1] if al_hits else None, rates, where)
    drafts, draft_tokens, accepted = get["num_drafts"], get["num_draft_tokens"], get["num_accepted_tokens"]
    _check_counts(where, drafts, draft_tokens, accepted, k)
    if drafts == 0:
        raise ConfigError(f"{where}: num_drafts = 0; no drafts recorded")
    if drafts is not None and accepted is not None:
        _check_counts_al(drafts, accepted, rates, where)
    return _build(
        rates=values,
        drafts=drafts,
        draft_tokens=draft_tokens,
        accepted=accepted,
        per_pos_counts=None,
        source_format="offline_example",
    )


# --------------------------------------------------------------------------------------------
# public API


def parse_vllm_spec_metrics(text: str, *, source: str | None = None) -> SpecDecodeMetrics:
    """Detect and parse vLLM speculative-decoding metrics in ``text`` (see the module docstring).

    ``source`` (a file name) prefixes error messages.  Raises :class:`ConfigError` for text
    without recognisable metrics or with inconsistent numbers.
    """
    lines = _ANSI.sub("", text).splitlines()
    for parser in (_parse_bench, _parse_prometheus, _parse_offline, _parse_log):
        result = parser(lines, source)
        if result is not None:
            return result
    raise ConfigError(f"{source}: {NOT_FOUND_MESSAGE}" if source else NOT_FOUND_MESSAGE)


def _count_text(x: float) -> str:
    return str(int(round(x))) if abs(x - round(x)) < 1e-6 else f"~{int(round(x))}"


def acceptance_yaml(m: SpecDecodeMetrics) -> str:
    """A YAML snippet to paste under ``speculative_config:`` (rates rounded to 4 decimals).

    Example::

        num_speculative_tokens: 3
        acceptance:                      # from vLLM log (2 intervals, 4816 drafts): mean acceptance length 2.79
          kind: per_position
          rates: [0.78, 0.58, 0.43]      # vLLM's unconditional per-position acceptance
    """
    rounded: list[float] = []
    for r in m.per_position_rates:
        v = round(r, 4)
        rounded.append(min(v, rounded[-1]) if rounded else v)  # rounding keeps order; be sure
    details = []
    if m.source_format == "log":
        details.append(f"{m.num_intervals} interval{'s' if m.num_intervals != 1 else ''}")
    if m.num_drafts is not None:
        details.append(f"{_count_text(m.num_drafts)} drafts")
    label = _SOURCE_LABELS.get(m.source_format, m.source_format)
    origin = f"from {label}" + (f" ({', '.join(details)})" if details else "")
    comment = f"# {origin}: mean acceptance length {m.mean_acceptance_length:.2f}"
    rates_line = "  rates: [" + ", ".join(repr(v) for v in rounded) + "]"

    def commented(line: str, note: str) -> str:
        return f"{line:<33}{note}" if len(line) < 32 else f"{line}  {note}"

    return "\n".join(
        [
            f"num_speculative_tokens: {m.num_speculative_tokens}",
            commented("acceptance:", comment),
            "  kind: per_position",
            commented(rates_line, "# vLLM's unconditional per-position acceptance"),
        ]
    ) + "\n"


def read_metrics_source(path_or_dash: str) -> str:
    """The text of a file, or of stdin for ``'-'``; unreadable files raise :class:`ConfigError`."""
    if path_or_dash == "-":
        return sys.stdin.read()
    p = Path(path_or_dash)
    if not p.exists():
        raise ConfigError(f"acceptance file = {path_or_dash!r}: file not found")
    if p.is_dir():
        raise ConfigError(f"acceptance file = {path_or_dash!r}: is a directory, not a file")
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"acceptance file = {path_or_dash!r}: cannot be read ({err.strerror or err})") from None
