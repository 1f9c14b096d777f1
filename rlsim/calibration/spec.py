"""Fit the speculative-decoding cost terms to a measured step-time decomposition.

Source: SpecDecode-Bench's fitted decomposition of real vLLM v0.10.1 / v0.11.1 runs
(Llama-3.1-8B-Instruct bf16, one H100, EAGLE-3 and n-gram; ``shared/reference/
spec_decode_measured.md`` section 1), read from that file -- never typed in here.  Its terms
(seconds per step) are linear in the tokens in the KV cache, the batched tokens and the draft
tokens; the fit evaluates them on a grid (batch 1-64, k 1-5, context 0.5k-8k tokens per
request) and fits rlsim's :class:`~rlsim.hardware.profile.SpeculationCosts` so that rlsim's own
model of each term agrees:

* **verification**: rlsim's target pass (the kernel model, :class:`rlsim.cost.ForwardModel`, over
  ``B x (1 + k)`` tokens, CUDA-graph padded) plus ``verify_us_per_draft_token x B x k`` against
  the decomposition's target forward;
* **drafting** (EAGLE-3): the head's ``k`` forwards (kernel model: vLLM's ``EagleProposer.propose``
  runs the first forward over the accepted tokens and ``k - 1`` single-token forwards, each
  reading the head's weights and its one-layer KV over the whole context) plus ``draft_round_us +
  B x draft_seq_us`` against the decomposition's EAGLE-3 drafting **at the k it identifies**
  (:func:`identified_k`).  The decomposition's form has no per-draft-step term (its
  ``num_spec_tokens`` coefficient adds 0.84 us per draft token: 3 us from k = 1 to k = 5 at batch
  1), which no chain drafter can meet: each extra step reads the head's weights again (0.85 GB
  for Llama-3.1-8B's head, >= 0.25 ms at the H100's 3.35 TB/s).  So its k dependence is not
  measured, only its value at the k of the runs; its KV coefficient says which k that is
  (``2.38e-9`` s per KV token per round = 1.9 one-layer KV reads at the per-layer rate of the
  target's own coefficient, i.e. k = 2 forwards).  The fit uses that slice of the grid; the
  k dependence comes from the kernels, and ``draft_step_us`` (per-step overhead beyond the
  kernels) is not identified by this source (kept at 0).  The report gives the errors on the
  slice (fitted, held out) and, for information, over every k against the decomposition's
  k-independent form;
* **host**: the engine's synchronous host time (the profile's ``engine`` section, vLLM 0.10/0.11
  ran speculation synchronously) plus ``spec_host_us`` against the "other per-step overhead";
* **n-gram**: ``ngram_round_us + B x ngram_seq_us + B x k x ngram_us_per_draft_token + history x
  ngram_ns_per_context_token`` against the decomposition's n-gram share of the verify pass (0.59 %
  of ``c + a x B(1 + k) + b x tokens in the KV cache``, so the four columns span its form; the
  draft-token column is the proposal's Python handling, :mod:`rlsim.speculation.costs`).

Each linear fit minimises relative error (weighted non-negative least squares).  Errors are
reported in sample and held out by group (leave one batch size out, leave one context out:
the held-out rows share neither with the fit), next to the error of the model before this fit
(kernels only, no fitted overheads; n-gram at the former 15 us per request, assumed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from rlsim.errors import CalibrationError

__all__ = ["Decomposition", "identified_k", "read_decomposition", "read_legacy_tpot", "fit_legacy_step_us", "fit_all", "grid", "fit_spec_costs", "default_source", "write_section",
           "BATCHES", "KS", "CONTEXTS"]

BATCHES = (1, 2, 4, 8, 16, 32, 64)
KS = (1, 2, 3, 4, 5)
CONTEXTS = (512, 1024, 2048, 4096, 8192)
_VARS = ("tokens_in_kv_cache", "num_batched_tokens", "num_spec_tokens")
_NUM = r"[0-9.]+(?:e[-+]?[0-9]+)?"


def default_source() -> Path:
    """``<repo>/../shared/reference/spec_decode_measured.md``."""
    import rlsim

    return Path(rlsim.__file__).resolve().parents[2] / "shared" / "reference" / "spec_decode_measured.md"


@dataclass(frozen=True)
class Decomposition:
    """The measured terms, seconds per step: ``{variable: coefficient}`` plus a constant each."""

    target: dict[str, float]
    eagle_draft: dict[str, float]
    ngram_fraction_of_verify: float
    overhead_s: float
    source: str

    @staticmethod
    def _eval(terms: dict[str, float], values: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full(np.shape(next(iter(values.values()))), terms.get("const", 0.0))
        for var, coef in terms.items():
            if var != "const":
                out = out + coef * values[var]
        return out


def _linear(expr: str, where: str) -> dict[str, float]:
    """``3.93e-8 x tokens_in_kv_cache + 2.10e-5 x num_batched_tokens + 5.89e-3`` -> terms."""
    terms: dict[str, float] = {}
    for part in expr.split("+"):
        part = part.strip()
        m = re.fullmatch(rf"({_NUM})\s*x\s*([a-z_]+)", part)
        if m and m[2] in _VARS:
            terms[m[2]] = float(m[1])
        elif re.fullmatch(_NUM, part):
            terms["const"] = float(part)
        else:
            raise CalibrationError(f"{where}: cannot read term '{part}' (expected 'coef x {'|'.join(_VARS)}' or a constant)")
    return terms


def read_decomposition(path: Path | None = None) -> Decomposition:
    """Read the decomposition table of ``spec_decode_measured.md`` (section 1)."""
    path = Path(path) if path is not None else default_source()
    if not path.is_file():
        raise CalibrationError(f"{path}: not found (the measured speculative-decoding decomposition)")
    rows = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\|\s*([^|`]+?)\s*\|\s*`([^`]+)`\s*\|", line)
        if m:
            rows[m[1].lower()] = m[2]
    def row(prefix: str) -> str:
        hit = [v for k, v in rows.items() if k.startswith(prefix)]
        if not hit:
            raise CalibrationError(f"{path}: no table row starting '{prefix}'")
        return hit[0]
    frac = re.fullmatch(rf"\s*({_NUM})\s*%\s*of the verify pass\s*", row("n-gram drafting"))
    if not frac:
        raise CalibrationError(f"{path}: n-gram drafting row is not '<x> % of the verify pass'")
    return Decomposition(_linear(row("target forward"), str(path)), _linear(row("eagle-3 drafting"), str(path)),
                         float(frac[1]) / 100.0, _linear(row("other per-step overhead"), str(path)).get("const", 0.0),
                         _portable(path))


def _portable(path: Path) -> str:
    """``path`` as written into a profile: ``../shared/...`` when it lies under the shared folder.

    The written section must not depend on where the checkout sits (same data, same bytes out).
    """
    shared = default_source().parents[1].resolve()
    try:
        return "../shared/" + Path(path).resolve().relative_to(shared).as_posix()
    except ValueError:
        return Path(path).name


def identified_k(dec: Decomposition, target_layers: int, draft_layers: int, target_kv_bytes_per_layer: float,
                 draft_kv_bytes_per_layer: float) -> int:
    """Draft forwards per round implied by the decomposition's KV coefficients: the drafting's
    seconds per KV token over one read of the head's KV, timed at the per-layer, per-byte rate of
    the target's coefficient (the same attention kernels and HBM).  At least 1."""
    per_byte = dec.target["tokens_in_kv_cache"] / (target_layers * target_kv_bytes_per_layer)
    reads = dec.eagle_draft.get("tokens_in_kv_cache", 0.0) / (draft_layers * draft_kv_bytes_per_layer * per_byte)
    return max(1, int(round(reads)))


def _llama_identified_k(dec: Decomposition) -> int:
    """:func:`identified_k` for the decomposition's setting: Llama-3.1-8B and its EAGLE-3 head (bf16 KV)."""
    from rlsim.cost.memory import kv_bytes_per_token_per_gpu
    from rlsim.models import load_model

    target, head = load_model("Llama-3.1-8B"), load_model("EAGLE3-Llama-3.1-8B")
    t_kv = kv_bytes_per_token_per_gpu(target, 1, "bf16") / target.num_hidden_layers
    d_kv = kv_bytes_per_token_per_gpu(head, 1, "bf16") / head.num_hidden_layers
    return identified_k(dec, target.num_hidden_layers, head.num_hidden_layers, t_kv, d_kv)


def grid() -> dict[str, np.ndarray]:
    """The evaluation grid (flattened): batch, k and context per request."""
    b, k, c = np.meshgrid(BATCHES, KS, CONTEXTS, indexing="ij")
    return {"batch": b.ravel().astype(np.float64), "k": k.ravel().astype(np.float64), "ctx": c.ravel().astype(np.float64)}


def reference(dec: Decomposition, g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The decomposition's terms at the grid points (seconds)."""
    b, k, c = g["batch"], g["k"], g["ctx"]
    values = {"tokens_in_kv_cache": b * c, "num_batched_tokens": b * (1 + k), "num_spec_tokens": b * k}
    target = dec._eval(dec.target, values)
    return {"target": target, "draft": dec._eval(dec.eagle_draft, values), "ngram": dec.ngram_fraction_of_verify * target,
            "overhead": np.full_like(b, dec.overhead_s)}


def kernel_times(hw, g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """rlsim's kernel-only times at the grid points: Llama-3.1-8B target verify pass and its
    EAGLE-3 head's forwards, bf16 on ``hw`` with CUDA graphs (the decomposition's setting)."""
    from rlsim.config.scenario import SpeculativeConfig
    from rlsim.cost import ForwardModel
    from rlsim.models import load_model
    from rlsim.speculation.drafter import build_drafter

    arch = load_model("Llama-3.1-8B")
    fwd = ForwardModel(arch, hw, tp=1, weight_dtype="bf16")
    spec = SpeculativeConfig(method="eagle3", num_speculative_tokens=1, acceptance={"kind": "constant", "rate": 0.5})
    drafter = build_drafter(spec, arch, hw, 1, "bf16", True, "bf16")
    target, draft, growth = np.empty_like(g["batch"]), np.empty_like(g["batch"]), np.empty_like(g["batch"])
    for i, (b, k, c) in enumerate(zip(g["batch"], g["k"], g["ctx"])):
        B, K = int(b), int(k)
        ctx = np.array([B * (c + 1 + K)])  # context after the verify pass, summed
        target[i] = fwd.decode_times_s(B, ctx, q=1 + K)[0]
        growth[i] = sum(fwd.decode_const_parts(B, 1 + K).values()) - sum(fwd.decode_const_parts(B, 1).values())
        draft[i] = drafter.fwd.decode_times_s(B, ctx, q=K + 1)[0] + sum(
            drafter.fwd.decode_times_s(B, ctx + B * j, q=1)[0] for j in range(1, K))
    return {"target": target, "draft": draft, "growth": growth}


def read_legacy_tpot(path: Path | None = None) -> dict[str, float]:
    """vLLM #20780's batch-1 EAGLE-3 point from ``hardware_and_models.md``: best TPOT (ms), its K
    and the acceptance length at that K, and the vanilla TPOT."""
    path = Path(path) if path is not None else default_source().with_name("hardware_and_models.md")
    if not path.is_file():
        raise CalibrationError(f"{path}: not found (vLLM #20780's EAGLE-3 TPOT)")
    text = path.read_text()
    tpot = re.search(rf"vanilla ({_NUM}) ms; EAGLE-3 best ({_NUM}) ms at K=(\d+)", text)
    if not tpot:
        raise CalibrationError(f"{path}: no 'vanilla X ms; EAGLE-3 best Y ms at K=N' line ([VLLM-20780])")
    k = int(tpot[3])
    row = next((ln for ln in text.splitlines() if "EAGLE-3 (yuhuili)" in ln and "K=2" in ln), "")
    al = re.search(rf"\b{k}: ({_NUM})", row)
    if not al:
        raise CalibrationError(f"{path}: no EAGLE-3 acceptance length at K={k} ([VLLM-20780] table)")
    return {"vanilla_tpot_ms": float(tpot[1]), "tpot_ms": float(tpot[2]), "k": k, "acceptance_length": float(al[1])}


def fit_legacy_step_us(hw, params: dict[str, float], point: dict[str, float], prompt_tokens: int = 128,
                       response_tokens: int = 2000) -> float:
    """``legacy_draft_step_us``: the per-draft-step time that makes rlsim's batch-1 round at the
    middle of a ``response_tokens`` response equal vLLM #20780's ``tpot x AL`` (synchronous
    scheduling, the fitted round / verify / host terms; >= 0)."""
    g = {"batch": np.array([1.0]), "k": np.array([float(point["k"])]), "ctx": np.array([prompt_tokens + response_tokens / 2])}
    kern = kernel_times(hw, g)
    k = point["k"]
    e = hw.engine
    round_s = (kern["target"][0] + kern["draft"][0] + 1e-6 * (params["verify_us_per_draft_token"] * k + params["draft_round_us"]
               + params["draft_seq_us"] + params["spec_host_us"] + e.step_us + e.per_seq_us))
    measured_s = point["tpot_ms"] * 1e-3 * point["acceptance_length"]
    return round(max(0.0, (measured_s - round_s) / k) * 1e6, 2)


def _wnnls(columns: list[np.ndarray], y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimising sum(((X c - y) / ref)^2)."""
    X = np.column_stack(columns) / ref[:, None]
    coef, _ = nnls(X, y / ref)
    return coef


@dataclass(frozen=True)
class _Term:
    name: str
    params: tuple[str, ...]   # SpeculationCosts fields, in the order of the columns
    scale: tuple[float, ...]  # profile unit per second of coefficient (us: 1e6, ns: 1e9)


_TERMS = (
    _Term("target", ("verify_us_per_draft_token",), (1e6,)),
    _Term("draft", ("draft_round_us", "draft_seq_us"), (1e6, 1e6)),
    _Term("overhead", ("spec_host_us",), (1e6,)),
    _Term("ngram", ("ngram_round_us", "ngram_seq_us", "ngram_us_per_draft_token", "ngram_ns_per_context_token"),
          (1e6, 1e6, 1e6, 1e9)),
)


def _design(term: str, g: dict[str, np.ndarray]) -> list[np.ndarray]:
    b, k, c = g["batch"], g["k"], g["ctx"]
    one = np.ones_like(b)
    return {"target": [b * k], "draft": [one, b], "overhead": [one], "ngram": [one, b, b * k, b * c]}[term]


def _base(term: str, kern: dict[str, np.ndarray], host: np.ndarray) -> np.ndarray:
    """The part of a term rlsim times without the fitted parameters."""
    zero = np.zeros_like(host)
    return {"target": kern["target"], "draft": kern["draft"], "overhead": host, "ngram": zero}[term]


def _fit_linear(X, y, base, kern, train, test):
    """Weighted NNLS of ``y - base`` on the columns ``X`` over ``train``; prediction on ``test``."""
    coef = _wnnls([x[train] for x in X], (y - base)[train], y[train])
    return coef, base[test] + np.column_stack([x[test] for x in X]) @ coef


def _fit_verify(X, y, base, kern, train, test):
    """The verify floor ``max(0, v x draft tokens - kernel growth)`` (rlsim.speculation.costs):
    ``v`` minimising the relative squared error over ``train``; prediction on ``test``."""
    from scipy.optimize import minimize_scalar

    from rlsim.speculation.costs import SpecCosts

    tokens, growth = X[0], kern["growth"]

    def pred(v, m):
        costs = SpecCosts(0, 0, 0, v, 0, 0, 0, 0)
        return base[m] + costs.verify_extra_s(tokens[m], growth[m])

    res = minimize_scalar(lambda v: float(np.sum((pred(v, train) / y[train] - 1.0) ** 2)), bounds=(0.0, 1e-4),
                          method="bounded", options={"xatol": 1e-10})
    return np.array([res.x]), pred(res.x, test)


def _errors(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    e = np.abs(pred / ref - 1.0)
    return {"median_abs_pct_err": round(100 * float(np.median(e)), 2), "max_abs_pct_err": round(100 * float(e.max()), 2)}


def fit_spec_costs(hw, dec: Decomposition) -> tuple[dict[str, float], dict]:
    """Fitted :class:`~rlsim.hardware.profile.SpeculationCosts` values and the fit report
    (per term: errors before, in sample, held out by batch and by context)."""
    g = grid()
    ref = reference(dec, g)
    kern = kernel_times(hw, g)
    e = hw.engine
    host = (e.step_us + e.per_seq_us * g["batch"]) * 1e-6  # synchronous host time of a step with B requests
    before = {"target": kern["target"], "draft": kern["draft"], "overhead": host, "ngram": 15e-6 * g["batch"]}
    params: dict[str, float] = {}
    report: dict = {"source": dec.source, "grid": {"batch": list(BATCHES), "k": list(KS), "context_tokens": list(CONTEXTS)},
                    "terms": {}}
    k_id = _llama_identified_k(dec)
    everywhere = np.ones_like(g["batch"], dtype=bool)
    for term in _TERMS:
        X, y, base = _design(term.name, g), ref[term.name], _base(term.name, kern, host)
        fit = _fit_verify if term.name == "target" else _fit_linear
        rows = g["k"] == k_id if term.name == "draft" else everywhere  # drafting: the k it was measured at
        coef, pred = fit(X, y, base, kern, rows, everywhere)
        held = {}
        for group in ("batch", "ctx"):
            out = np.empty_like(y)
            for v in np.unique(g[group]):
                test = rows & (g[group] == v)
                out[test] = fit(X, y, base, kern, rows & ~test, test)[1]
            held[f"leave_one_{'context' if group == 'ctx' else group}_out"] = _errors(out[rows], y[rows])
        for name, scale, value in zip(term.params, term.scale, coef):
            params[name] = round(float(value) * scale, 4)
        report["terms"][term.name] = {"before": _errors(before[term.name][rows], y[rows]),
                                      "in_sample": _errors(pred[rows], y[rows]), **held}
        if term.name == "draft":
            params["draft_step_us"] = 0.0  # not identified by a decomposition measured at one k
            report["terms"]["draft"]["identified_k"] = k_id
            report["terms"]["draft"]["every_k_vs_k_independent_form"] = _errors(pred, y)
    round_ref = ref["target"] + ref["draft"] + ref["overhead"]
    round_before = before["target"] + before["draft"] + before["overhead"]
    verify_extra = np.maximum(params["verify_us_per_draft_token"] * 1e-6 * g["batch"] * g["k"] - kern["growth"], 0.0)
    round_after = (kern["target"] + verify_extra + kern["draft"]
                   + 1e-6 * (params["draft_round_us"] + params["draft_step_us"] * g["k"] + params["draft_seq_us"] * g["batch"])
                   + host + params["spec_host_us"] * 1e-6)
    report["terms"]["eagle3_round"] = {"before": _errors(round_before, round_ref), "in_sample": _errors(round_after, round_ref)}
    return params, report


def fit_all(hw, dec: Decomposition, legacy_point: dict[str, float] | None) -> tuple[dict[str, float], dict]:
    """:func:`fit_spec_costs`, plus ``legacy_draft_step_us`` from ``legacy_point`` when given."""
    params, report = fit_spec_costs(hw, dec)
    params["reference_bf16_tflops"] = float(hw.gpu.peak_tflops.bf16)
    if legacy_point is not None:
        params["legacy_draft_step_us"] = fit_legacy_step_us(hw, params, legacy_point)
        report["legacy"] = dict(legacy_point)
    return params, report


def write_section(profile_path: Path, params: dict[str, float], report: dict, vllm_version: str) -> None:
    """Replace (or append) the profile's ``speculation:`` block with the fitted values, each
    with its provenance comment, and the fit report."""
    text = Path(profile_path).read_text()
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("speculation:")), None)
    if start is not None:
        end = next((j for j in range(start + 1, len(lines)) if lines[j] and not lines[j].startswith((" ", "#"))), len(lines))
        lines = lines[:start] + lines[end:]
    where = f"rlsim calibrate spec on SpecDecode-Bench's decomposition (vLLM {vllm_version}, Llama-3.1-8B bf16, H100)"
    out = [f"speculation:  # written by {where}",
           f'  source: "fitted by {where}; spec_decode_measured.md 1"',
           f'  vllm_version: "{vllm_version}"',
           f"  reference_bf16_tflops: {params.get('reference_bf16_tflops', 989.0):g}".ljust(39)
           + "  # the bf16 peak of the GPU these terms were fitted on (this profile's gpu.peak_tflops.bf16)"]
    for term in _TERMS:
        r = report["terms"][term.name]
        at = f" at the identified k = {r['identified_k']}" if "identified_k" in r else ""
        note = (f"fit: {term.name} term{at}, in-sample |err| median/max {r['in_sample']['median_abs_pct_err']:g}/"
                f"{r['in_sample']['max_abs_pct_err']:g} %, leave-one-batch-out max "
                f"{r['leave_one_batch_out']['max_abs_pct_err']:g} %")
        for name in term.params:
            out.append(f"  {name}: {params[name]:g}".ljust(39) + f"  # {note}")
        if term.name == "draft":
            out.append(f"  draft_step_us: {params.get('draft_step_us', 0.0):g}".ljust(39)
                       + f"  # not identified: the decomposition was measured at k = {r.get('identified_k', '?')} (its KV "
                       "coefficient); the per-step kernels carry the k dependence")
    if "legacy_draft_step_us" in params:
        lp = report["legacy"]
        out.append(f"  legacy_draft_step_us: {params['legacy_draft_step_us']:g}".ljust(39)
                   + f"  # fit: vLLM #20780 batch-1 EAGLE-3 TPOT {lp['tpot_ms']:g} ms at K={lp['k']} (AL "
                   f"{lp['acceptance_length']:g}), mid-2025 vLLM; the eagle3_llama8b_bs1_speedup case is its calibration case")
        out.append(f'  legacy_before: "{params.get("legacy_before", "0.10.1")}"'.ljust(39)
                   + "  # the decomposition's first vLLM version")
    out.append("  fit:")
    out += ["    " + ln for ln in _yaml_lines(report)]
    Path(profile_path).write_text("\n".join(lines + out) + "\n")


_REPORT_NOTE = "  # rlsim calibrate spec fit report"


def _yaml_lines(d: dict, ind: int = 0) -> list[str]:
    """A nested dict as block YAML, every number with its provenance comment."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(" " * ind + f"{k}:")
            out += _yaml_lines(v, ind + 2)
        elif isinstance(v, list):
            out.append(" " * ind + f"{k}: [{', '.join(str(x) for x in v)}]" + _REPORT_NOTE)
        elif isinstance(v, str):
            out.append(" " * ind + f'{k}: "{v}"' + _REPORT_NOTE)  # a path may read as a number: keep the note
        else:
            out.append(" " * ind + f"{k}: {v}" + _REPORT_NOTE)
    return out
