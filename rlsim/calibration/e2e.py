"""End-to-end checks against measured serving runs: simulate every row, report the error.

Each measured run becomes a serving scenario (:func:`rlsim.serving.rows.row_scenario`), run
on the profile of its system (``--profile`` per system, or the shipped one), and its mean TTFT
and TPOT are compared with the measurement.  Rows are listed, not silently dropped, when

* the scenario cannot express them (a layout or model rlsim does not model, a checkpoint that
  does not fit the layout): ``skip`` -- counted in ``n_skipped``;
* a physical bound rules the measurement out (:func:`bounds`): TTFT below one request's
  prefill at peak FLOP/s on its GPUs, or TPOT below one read of a GPU's weights at peak
  bandwidth -- counted in ``ttft_n_unreachable`` / ``tpot_n_unreachable`` and left out of
  that metric's statistics (e.g. prefix-cache hits across repeated benchmark runs, or dummy
  weights whose routing collapses onto few experts: ``shared/e2e/README.md``).

Errors are ``100 (simulated / measured - 1)``; statistics per (system, model) group and
pooled: median and p90 of the absolute error and the signed median.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlsim.errors import RlsimError
from rlsim.serving.measured import MeasuredRun
from rlsim.serving.rows import client_concurrency, row_scenario, wave_weights

__all__ = ["RowResult", "simulate_row", "simulate_rows", "error_report", "bounds", "render_e2e_check",
           "calibrate_e2e", "held_out_results", "profile_overheads", "profiles_by_system", "write_fitted_profile"]


@dataclass
class RowResult:
    """A measured run and what the simulator made of it (times in ms)."""

    run: MeasuredRun
    sim_ttft_ms: float | None = None
    sim_tpot_ms: float | None = None
    skip: str | None = None
    ttft_unreachable: str | None = None
    tpot_unreachable: str | None = None
    trace: object = None  # rlsim.calibration.e2e_fit.RowTrace when recorded
    extra: dict = field(default_factory=dict)

    def err(self, metric: str) -> float | None:
        """Signed % error of ``ttft`` or ``tpot`` (None when skipped or unreachable)."""
        sim = getattr(self, f"sim_{metric}_ms")
        if self.skip or sim is None or getattr(self, f"{metric}_unreachable"):
            return None
        return 100.0 * (sim / getattr(self.run, f"{metric}_ms") - 1.0)


def bounds(res, run: MeasuredRun) -> tuple[str | None, str | None]:
    """Why the measured TTFT / TPOT is physically out of reach (None: reachable).

    TTFT: below one ``isl``-token prefill at the GPUs' peak FLOP/s.  TPOT: below one decode
    step's minimum HBM traffic at peak bandwidth -- the weights every step reads (all but the
    experts, plus the experts the batch's tokens touch) and the KV cache of the requests in
    flight (``min(concurrency, max_num_seqs)`` per engine at their mean context ``isl + osl/2``;
    sliding-window layers left out, so a lower bound)."""
    arch, hw = res.arch, res.hw
    dtype = res.weight_dtype if res.weight_dtype in ("fp8", "fp8_block", "fp4") else "bf16"
    try:
        peak = hw.peak_flops(dtype)
    except RlsimError:
        peak = hw.peak_flops("bf16")
    ttft_min_s = 2.0 * arch.active_params * run.isl / (run.tp * peak)
    ttft = None
    if run.ttft_ms * 1e-3 < ttft_min_s:
        ttft = (f"TTFT {run.ttft_ms:.1f} ms < {1e3 * ttft_min_s:.1f} ms = one {run.isl}-token prefill at the "
                f"{dtype} peak of {run.tp} GPUs (a prefix-cache hit or fewer requests than stated)")
    tpot_min_s = _decode_bytes_floor(res, run) / hw.hbm_bandwidth_bytes_per_s
    tpot = None
    if run.tpot_ms * 1e-3 < tpot_min_s:
        tpot = (f"TPOT {run.tpot_ms:.2f} ms < {1e3 * tpot_min_s:.2f} ms = one decode step's weight and KV reads at "
                "peak bandwidth (fewer requests in flight than stated, or dummy weights with collapsed routing)")
    return ttft, tpot


def _decode_bytes_floor(res, run: MeasuredRun) -> float:
    """Bytes one GPU must read per decode step of the run (see :func:`bounds`)."""
    from rlsim.cost.memory import weight_bytes_per_gpu
    from rlsim.hardware.ops import expected_experts_touched

    arch, e = res.arch, res.scenario.rollout.engine
    seqs = max(1, min(client_concurrency(run), e.max_num_seqs * res.dp) // res.dp)  # per DP rank
    weights = res.memory.weight_bytes
    if arch.is_moe:
        experts = weights - weight_bytes_per_gpu(arch, res.tp, res.weight_dtype, expert_shards=10**9)
        touched = float(expected_experts_touched(seqs * res.dp, arch.num_experts, arch.num_experts_per_tok)) / arch.num_experts
        weights = weights - experts * (1.0 - touched)
    kv = res.memory.kv_bytes_per_token * seqs * (run.isl + run.osl / 2)
    return weights + kv

def simulate_row(run: MeasuredRun, profiles: dict[str, str] | None = None, record: bool = False,
                 overheads: dict[str, float] | None = None) -> RowResult:
    """Simulate one measured run on ``profiles[run.system]`` (default: the shipped profile),
    with engine ``overheads`` (us, EngineOverheads names) instead of the profile's if given."""
    from rlsim.calibration.e2e_fit import weighted_means
    from rlsim.config import LoadedScenario, scenario_from_dict
    from rlsim.serving.bench import simulate_bench
    from rlsim.sim import resolve

    rs = row_scenario(run)
    if rs.skip:
        return RowResult(run, skip=rs.skip)
    data = rs.data
    if profiles and run.system in profiles:
        data["cluster"]["hardware"] = profiles[run.system]
    if overheads:
        data["rollout"]["engine"]["cpu_overhead"] = dict(overheads)
    source = f"row {run.id}"
    try:
        res = resolve(LoadedScenario(scenario_from_dict(data, source), source, Path("."), data))
    except RlsimError as err:
        return RowResult(run, skip=str(err).removeprefix(f"{source}: "))
    ttft_bad, tpot_bad = bounds(res, run)
    weights = wave_weights(client_concurrency(run))
    result = simulate_bench(res, record_trace=record, trace_weights=weights)
    seqs = result.sequences
    ttft, tpot = weighted_means((seqs["first_token_s"] - seqs["send_s"]).to_numpy(),
                                (seqs["finish_s"] - seqs["first_token_s"]).to_numpy(), seqs["response_len"].to_numpy(),
                                weights[seqs["seq_id"].to_numpy()])
    return RowResult(run, ttft, tpot, None, ttft_bad, tpot_bad, trace=result.runs.get("trace"))


def _simulate_chunk(args) -> list[RowResult]:
    runs, profiles, record, overheads = args
    return [simulate_row(r, profiles, record, (overheads or {}).get(r.id)) for r in runs]


def simulate_rows(runs: list[MeasuredRun], profiles: dict[str, str] | None = None, workers: int = 1,
                  progress=None, record: bool = False, overheads: dict[str, dict] | None = None) -> list[RowResult]:
    """Every row (in order), in ``workers`` processes; ``progress(done, total)`` after each;
    ``overheads`` by row id replaces the profile's engine overheads for those rows."""
    out: list[RowResult] = []
    if workers <= 1:
        for i, r in enumerate(runs):
            out.append(simulate_row(r, profiles, record, (overheads or {}).get(r.id)))
            if progress:
                progress(i + 1, len(runs))
        return out
    import concurrent.futures as cf

    chunks = [runs[i:i + 8] for i in range(0, len(runs), 8)]
    with cf.ProcessPoolExecutor(workers) as pool:
        for chunk in pool.map(_simulate_chunk, [(c, profiles, record, overheads) for c in chunks]):
            out.extend(chunk)
            if progress:
                progress(len(out), len(runs))
    return out


def _metric_stats(results: list[RowResult], metric: str) -> dict:
    errs = np.array([e for r in results if (e := r.err(metric)) is not None])
    unreachable = sum(1 for r in results if not r.skip and getattr(r, f"{metric}_unreachable"))
    if len(errs) == 0:
        return {f"{metric}_median_abs_pct_err": None, f"{metric}_p90_abs_pct_err": None,
                f"{metric}_signed_median_pct_err": None, f"{metric}_n_unreachable": unreachable}
    return {f"{metric}_median_abs_pct_err": float(np.median(np.abs(errs))),
            f"{metric}_p90_abs_pct_err": float(np.percentile(np.abs(errs), 90)),
            f"{metric}_signed_median_pct_err": float(np.median(errs)), f"{metric}_n_unreachable": unreachable}


def _stats(results: list[RowResult]) -> dict:
    n_skipped = sum(1 for r in results if r.skip)
    return {"n": len(results) - n_skipped, "n_skipped": n_skipped, **_metric_stats(results, "tpot"),
            **_metric_stats(results, "ttft")}


def error_report(results: list[RowResult]) -> dict:
    """``{"pooled": stats, "<system>:<model>": stats, ...}`` (see the module docstring)."""
    groups: dict[str, list[RowResult]] = {}
    for r in results:
        groups.setdefault(r.run.group, []).append(r)
    report = {"pooled": _stats(results)}
    report.update({g: _stats(rs) for g, rs in sorted(groups.items())})
    return report


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def render_e2e_check(report: dict, results: list[RowResult], worst: int = 8) -> str:
    """The table ``rlsim calibrate e2e-check`` prints: per group, rows, TPOT and TTFT error
    (median / p90 |err| and signed median, %), then the worst rows with their settings."""
    head = f"{'system:model':<44} {'rows':>5} {'skip':>5}  {'TPOT med/p90/signed %':>22}  {'TTFT med/p90/signed %':>22}"
    lines = [head]
    for g, s in report.items():
        tp = f"{_fmt(s['tpot_median_abs_pct_err'])}/{_fmt(s['tpot_p90_abs_pct_err'])}/{_fmt(s['tpot_signed_median_pct_err'])}"
        tt = f"{_fmt(s['ttft_median_abs_pct_err'])}/{_fmt(s['ttft_p90_abs_pct_err'])}/{_fmt(s['ttft_signed_median_pct_err'])}"
        lines.append(f"{g:<44} {s['n']:>5} {s['n_skipped']:>5}  {tp:>22}  {tt:>22}")
    scored = [r for r in results if r.err("tpot") is not None]
    scored.sort(key=lambda r: -abs(r.err("tpot")))
    if scored:
        lines.append("\nworst TPOT rows:")
        for r in scored[:worst]:
            u = r.run
            lines.append(f"  {u.id}: {u.group} tp{u.tp} dp{u.attention_dp} ep{u.moe_ep} {u.isl}/{u.osl} c{u.concurrency} "
                         f"v{u.vllm_version or '?'}: measured {u.tpot_ms:.2f} ms, simulated {r.sim_tpot_ms:.2f} ms "
                         f"({r.err('tpot'):+.0f} %)")
    skipped = [r for r in results if r.skip]
    if skipped:
        reasons: dict[str, int] = {}
        for r in skipped:
            reasons[r.skip.split(" (")[0][:120]] = reasons.get(r.skip.split(" (")[0][:120], 0) + 1
        lines.append("\nnot expressible:")
        lines += [f"  {n:>4} rows: {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def _fit_items(results: list[RowResult]):
    """(trace, measured TTFT or None, measured TPOT or None) of every traced, reachable row."""
    items = []
    for r in results:
        if r.skip or r.trace is None:
            continue
        ttft = None if r.ttft_unreachable else r.run.ttft_ms
        tpot = None if r.tpot_unreachable else r.run.tpot_ms
        if ttft is not None or tpot is not None:
            items.append((r.trace, ttft, tpot))
    return items


def calibrate_e2e(runs: list[MeasuredRun], profile: str, start: dict[str, float], rounds: int = 2, workers: int = 1,
                  progress=None):
    """Fit the overheads of ``profile`` (a path or name; its system's rows of ``runs``):
    alternate a fit on the rows' traces with a re-simulation at the fitted values (see
    rlsim.calibration.e2e_fit).  Returns (params, FitResult, the last simulation's results)."""
    from rlsim.calibration.e2e_fit import fit_on_traces

    params = dict(start)  # every overhead the rows run with; the fit moves the FITTED ones
    results, fit = [], None
    for i in range(rounds):
        results = simulate_rows(runs, None, workers, progress, record=True, overheads={r.id: params for r in runs})
        fit = fit_on_traces(_fit_items(results), params)
        params = params | fit.params
    final = simulate_rows(runs, None, workers, progress, record=True, overheads={r.id: params for r in runs})
    return params, fit, final


def held_out_results(runs: list[MeasuredRun], results: list[RowResult], start: dict[str, float], workers: int = 1,
                     progress=None) -> tuple[list[RowResult], dict[str, dict]]:
    """Each model's rows simulated with overheads fitted without that model (leave one model
    out, on the in-sample traces ``results``).  Returns the results and the params per model."""
    from rlsim.calibration.e2e_fit import fit_on_traces

    models = sorted({r.model for r in runs})
    params_by_model, overheads = {}, {}
    for m in models:
        fit = fit_on_traces(_fit_items([r for r in results if r.run.model != m]), start)
        params_by_model[m] = fit.params
        overheads.update({r.id: fit.params for r in runs if r.model == m})
    return simulate_rows(runs, None, workers, progress, overheads=overheads), params_by_model


def profiles_by_system(profiles: list[str]) -> dict[str, str]:
    """``--profile`` values (names, YAML paths or folders of them) by the system they describe."""
    from rlsim.hardware import load_profile

    out: dict[str, str] = {}
    for p in profiles:
        paths = sorted(Path(p).glob("*.yaml")) if Path(p).is_dir() else [p]
        for path in paths:
            hw = load_profile(str(path), path="--profile")
            out[hw.name] = str(path)
    return out


def write_fitted_profile(profile: str, params: dict[str, float], fit, in_sample: dict, held_out: dict | None,
                         measurements: str, out: Path | None, held_out_params: dict[str, dict] | None = None) -> object:
    """The profile with its ``engine`` section fitted, provenance in ``engine.fit`` and the
    header, written in place (or to ``out``)."""
    from rlsim.calibration.profile_io import write_profile
    from rlsim.hardware import load_profile
    from rlsim.serving.rows import OUTPUT_SPREAD, PROMPTS_PER_CONCURRENCY

    hw = load_profile(profile, path="--profile")
    data = hw.model_dump(mode="python")
    pooled_in = in_sample["pooled"]
    pooled_out = (held_out or {}).get("pooled")
    keep = ("n", "n_skipped", "tpot_median_abs_pct_err", "tpot_p90_abs_pct_err", "tpot_signed_median_pct_err",
            "ttft_median_abs_pct_err", "ttft_p90_abs_pct_err", "ttft_signed_median_pct_err")
    source = (f"fitted by rlsim calibrate e2e on {Path(measurements).name} ({pooled_in['n']} rows of {hw.name}); "
              f"TPOT median |err| {pooled_in['tpot_median_abs_pct_err']:.1f} % in-sample"
              + (f", {pooled_out['tpot_median_abs_pct_err']:.1f} % leaving one model out" if pooled_out else ""))
    data["engine"] = {**data["engine"], **{k: round(float(v), 4) for k, v in params.items()}, "source": source,
                      "fit": {"measurements": str(measurements), "params_fitted": list(fit.free), "num_params": len(fit.free),
                              "rows_tpot": fit.rows_tpot, "rows_ttft": fit.rows_ttft,
                              "harness_assumed": {"prompts_per_concurrency": PROMPTS_PER_CONCURRENCY,
                                                  "output_spread": OUTPUT_SPREAD},
                              "in_sample": {k: _round(pooled_in[k]) for k in keep},
                              "held_out_leave_one_model_out": None if pooled_out is None else
                              {k: _round(pooled_out[k]) for k in keep},
                              # each model's overheads fitted without it (rlsim validate's e2e cases use them)
                              "held_out_params": {m: {k: round(float(v[k]), 4) for k in fit.free}
                                                  for m, v in sorted((held_out_params or {}).items())}}}
    comments = {("engine", k): f"fit: rlsim calibrate e2e on {Path(measurements).name}" for k in fit.free}
    target = Path(out) if out is not None else Path(hw.source)
    note = [f"engine: overheads marked 'fit:' were fitted by `rlsim calibrate e2e` on {Path(measurements).name}."]
    return write_profile(Path(hw.source), data, target, comments, note)


def _round(v):
    return None if v is None else round(float(v), 2)


def profile_overheads(profile: str) -> dict[str, float]:
    """Every engine overhead of a profile (what a row's cpu_overhead section takes)."""
    from rlsim.hardware import load_profile

    engine = load_profile(profile, path="--profile").engine
    return {k: v for k, v in engine.model_dump().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
