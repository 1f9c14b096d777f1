"""Fit bursty acceptance models to measured acceptance traces (``rlsim calibrate acceptance``).

Source: ``shared/reference/acceptance_llama31_8b_h100.csv`` -- SpecDecode-Bench's per-token
acceptance traces of Llama-3.1-8B-Instruct on H100 (EAGLE-3 and n-gram, four datasets) replayed
as vLLM does, summarised per dataset, method and k = 1..8: the mean acceptance length (AL), the
unconditional per-position rates and the 10th / 50th / 90th percentile of the per-request AL.

For each (dataset, method) a :class:`~rlsim.speculation.acceptance.RegimeAcceptance` is fitted:

1. ``easy_fraction``, ``easy_rate``, ``hard_rate`` by least squares on the relative error of
   the AL and of every per-position rate over all k (the model's closed form, so the k
   dependence -- larger k spends fewer rounds in easy stretches -- is fitted, not tabulated);
   for n-gram ``hard_rate = 0`` (no match: nothing proposed);
2. ``block_tokens`` (the length of an easy / hard stretch) so that simulated requests of
   ``RESPONSE_TOKENS`` tokens (assumed: the summary does not give the traces' lengths) replayed
   the same way reproduce the per-request p10-p90 spread of the AL, over all k.

The report gives, per row, the AL error and the p10-p90 width error; the fitted models are
written to :data:`CATALOG` (the repo's catalog of fitted acceptance models) with provenance.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from rlsim.errors import CalibrationError
from rlsim.speculation.acceptance import RegimeAcceptance

__all__ = ["read_traces", "fit_acceptance", "simulate_request_al", "default_traces", "CATALOG", "RESPONSE_TOKENS",
           "load_fitted", "write_catalog"]

#: Generated tokens per simulated request when fitting the spread (assumed).
RESPONSE_TOKENS = 512
#: Requests simulated per row when fitting the spread.
REQUESTS = 400
#: Weight of the AL residuals against the per-position rates' (the AL is the headline figure).
AL_WEIGHT = 10.0
#: Candidate per-request heterogeneity (``concentration``; None = none).
CONCENTRATIONS = (None, 200.0, 80.0, 40.0, 15.0, 6.0)
#: k values the spread search simulates (the report covers every k).
SEARCH_KS = (1, 3, 5, 8)
#: Candidate stretch lengths, tokens.
BLOCKS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

CATALOG = Path(__file__).resolve().parents[1] / "catalog" / "acceptance_llama31_8b_h100.yaml"


def default_traces() -> Path:
    """``<repo>/../shared/reference/acceptance_llama31_8b_h100.csv``."""
    return Path(__file__).resolve().parents[3] / "shared" / "reference" / "acceptance_llama31_8b_h100.csv"


def read_traces(path: Path | None = None) -> dict[tuple[str, str], list[dict]]:
    """Rows of the CSV by (dataset, method), sorted by k."""
    path = Path(path) if path is not None else default_traces()
    if not path.is_file():
        raise CalibrationError(f"{path}: not found (the acceptance-trace summary)")
    out: dict[tuple[str, str], list[dict]] = {}
    with path.open() as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                r = {"k": int(row["k"]), "al": float(row["mean_acceptance_length"]),
                     "rates": [float(x) for x in row["per_position_acceptance"].split(",")],
                     "p10": float(row["request_al_p10"]), "p50": float(row["request_al_p50"]),
                     "p90": float(row["request_al_p90"])}
            except (KeyError, ValueError) as err:
                raise CalibrationError(f"{path}: line {i}: {err}") from None
            if len(r["rates"]) != r["k"]:
                raise CalibrationError(f"{path}: line {i}: per_position_acceptance has {len(r['rates'])} rates, k = {r['k']}")
            out.setdefault((row["dataset"], row["method"]), []).append(r)
    return {key: sorted(v, key=lambda r: r["k"]) for key, v in out.items()}


def _model(x: np.ndarray, block: int = 16, concentration: float | None = None) -> RegimeAcceptance:
    return RegimeAcceptance(easy_fraction=float(x[0]), easy_rate=float(x[1]), hard_rate=float(x[2]), block_tokens=block,
                            concentration=concentration)


def _fit_rates(rows: list[dict], ngram: bool) -> np.ndarray:
    def resid(x):
        m = _model(np.array([x[0], x[1], 0.0 if ngram else x[2]]))
        out = []
        for r in rows:
            k = r["k"]
            out.append(AL_WEIGHT * (m.mean_acceptance_length(k) / r["al"] - 1.0))
            out.extend(m.per_position_rates(k) / np.asarray(r["rates"]) - 1.0)
        return np.array(out)
    fits = [least_squares(resid, x0=x0, bounds=([1e-4, 0.0, 0.0], [1.0, 1.0, 1.0]))
            for x0 in ([0.5, 0.8, 0.4], [0.3, 0.9, 0.5], [0.7, 0.75, 0.3], [0.5, 0.95, 0.3], [0.2, 0.95, 0.6])]
    x = min(fits, key=lambda f: f.cost).x.copy()
    if ngram:
        x[2] = 0.0
    return x


def simulate_request_al(model: RegimeAcceptance, k: int, requests: int = REQUESTS, tokens: int = RESPONSE_TOKENS,
                        seed: int = 0) -> np.ndarray:
    """Per-request AL of ``requests`` requests of ``tokens`` generated tokens, replayed as vLLM
    does (a round at position p accepts A drafts, the next starts at p + A + 1) with the same
    block regimes and draws as :class:`~rlsim.speculation.acceptance.AcceptanceSampler`."""
    from rlsim.speculation.acceptance import AcceptanceSampler

    sampler = AcceptanceSampler(model, k, seed, np.arange(requests), np.full(requests, tokens))
    pos = np.zeros(requests)
    emitted, rounds = np.zeros(requests), np.zeros(requests)
    idx = np.arange(requests)
    r = 0
    while (pos < tokens).any():
        live = pos < tokens
        a = sampler.sample(idx[live], np.full(live.sum(), r, dtype=np.int64), 1, k, pos[live][None, :])[0]
        step = np.minimum(a + 1, tokens - pos[live])
        emitted[live] += step
        rounds[live] += 1
        pos[live] += a + 1
        r += 1
    return emitted / rounds


def _spread_error(model: RegimeAcceptance, rows: list[dict]) -> float:
    err = []
    for r in rows:
        al = simulate_request_al(model, r["k"])
        p10, p90 = np.percentile(al, [10, 90])
        err.append((p90 - p10) / (r["p90"] - r["p10"]) - 1.0)
    return float(np.sqrt(np.mean(np.square(err))))


def fit_acceptance(traces: dict[tuple[str, str], list[dict]]) -> tuple[dict[str, dict], dict]:
    """Fitted model fields by ``dataset/method`` and the error report (per k: AL error %,
    p10-p90 width error %)."""
    models, report = {}, {}
    for (dataset, method), rows in traces.items():
        x = _fit_rates(rows, method == "ngram")
        search = [r for r in rows if r["k"] in SEARCH_KS]
        block, kappa = min(((b, c) for b in BLOCKS for c in CONCENTRATIONS),
                           key=lambda bc: _spread_error(_model(x, *bc), search))
        m = _model(x, block, kappa)
        per_k = {}
        for r in rows:
            al = simulate_request_al(m, r["k"])
            p10, p90 = np.percentile(al, [10, 90])
            per_k[r["k"]] = {"al_err_pct": round(100 * (m.mean_acceptance_length(r["k"]) / r["al"] - 1.0), 2),
                             "spread_err_pct": round(100 * ((p90 - p10) / (r["p90"] - r["p10"]) - 1.0), 1)}
        name = f"{dataset}/{method}"
        models[name] = {"kind": "regime", "easy_fraction": round(float(x[0]), 4), "easy_rate": round(float(x[1]), 4),
                        "hard_rate": round(float(x[2]), 4), "block_tokens": int(block),
                        **({"concentration": kappa} if kappa is not None else {})}
        report[name] = per_k
    return models, report


def write_catalog(models: dict[str, dict], report: dict, source: Path, path: Path = CATALOG) -> None:
    """Write the fitted models with provenance and their errors (YAML)."""
    lines = [f"# Acceptance models fitted by `rlsim calibrate acceptance` on {source.name} (SpecDecode-Bench traces,",
             "# Llama-3.1-8B-Instruct on H100, vLLM replay; greedy decoding, assumed). Use one as",
             "# speculative_config.acceptance (kind: regime). Errors: AL and per-request p10-p90 width, % per k;",
             f"# spread simulated for requests of {RESPONSE_TOKENS} generated tokens (assumed).", "models:"]
    for name, m in models.items():
        errs = report[name]
        worst_al = max(abs(e["al_err_pct"]) for e in errs.values())
        worst_sp = max(abs(e["spread_err_pct"]) for e in errs.values())
        lines.append(f"  {name}:  # fit: max |AL err| {worst_al:g} %, max |p10-p90 width err| {worst_sp:g} % over k = 1..8")
        lines += [f"    {key}: {value}" for key, value in m.items()]
        lines.append("    measured_temperature: 0.0  # the traces decode greedily (assumed)")
    lines.append("errors:")
    for name, errs in report.items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {{al_err_pct: {e['al_err_pct']}, spread_err_pct: {e['spread_err_pct']}}}" for k, e in errs.items()]
    path.write_text("\n".join(lines) + "\n")


def load_fitted(name: str, path: Path = CATALOG) -> RegimeAcceptance:
    """A fitted model by ``dataset/method`` (e.g. ``gsm8k/ngram``)."""
    import yaml

    models = yaml.safe_load(path.read_text())["models"]
    if name not in models:
        raise CalibrationError(f"{path}: no fitted acceptance model '{name}' (have: {', '.join(models)})")
    return RegimeAcceptance(**models[name])
