"""How sure is the projection: every assumed number of an RL scenario varied over a stated range
(``rlsim run SCENARIO --sensitivity``), one at a time, and the end-to-end and generation speed-ups
of speculation re-simulated -- a tornado chart and its table.

Method
------
* each assumption's **low** and **high** values (:func:`assumptions`, each with the source of
  its range) are applied as ``--set`` overrides, and the speculative and no-speculation runs are
  re-simulated with the *same seed* (the same sequences: paired) over a fixed window of one
  dispatch cycle after the warm-up (``rl.num_steps = warm-up + lag + 1``) -- a converged window
  per point would not fit ten minutes; the **base** bar centre is the scenario as written over
  the same window, so every bar is a like-for-like change;
* disaggregated / async pipelines run on a **probe**: the rollout pool and the prompts per step
  divided by ``f`` (4 or 2, :func:`probe_factor`), so every engine carries the same load, while
  the trainer still trains the full batch and the weight sync sees the full pool
  (:func:`rlsim.rl.plan.cost_plan`'s ``probe``); the output states the probe's base speed-ups
  next to the full scenario's converged ones;
* an assumption that changes only speculation (acceptance, drafting) re-simulates only the
  speculative run and reuses the baseline;
* a point that the assumption makes infeasible (memory, layout) is a row with its error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlsim.errors import RlsimError

__all__ = ["Assumption", "assumptions", "probe_factor", "run_sensitivity", "SensitivityResult", "tornado_figure",
           "window_values", "render"]


@dataclass(frozen=True)
class Assumption:
    """One assumed number: ``--set`` overrides for its low and high values (None: the scenario's
    own value is that end), what it changes, and the source of its range."""

    name: str
    low: tuple[str, ...] | None
    high: tuple[str, ...] | None
    low_label: str
    high_label: str
    source: str
    spec_only: bool = False


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _scaled(path: str, value: float, factors: tuple[float, float], cast=float, source: str = "", name: str = "",
            spec_only: bool = False, lo_min: float | None = None, hi_max: float | None = None) -> Assumption:
    lo, hi = cast(value * factors[0]), cast(value * factors[1])
    if lo_min is not None:
        lo = max(lo, lo_min)
    if hi_max is not None:
        hi = min(hi, hi_max)
    return Assumption(name or path, (f"{path}={lo}",), (f"{path}={hi}",), _fmt(lo), _fmt(hi), source, spec_only)


def _between(path: str, lo, hi, source: str, name: str = "", spec_only: bool = False, current=None) -> Assumption:
    low = None if lo == current else (f"{path}={lo}",)
    high = None if hi == current else (f"{path}={hi}",)
    return Assumption(name or path, low, high, _fmt(lo), _fmt(hi), source, spec_only)


def probe_factor(res) -> int:
    """``f`` of the probe (module docstring): 4 or 2 when the engines and the prompts per step
    divide by it and at least two engines remain; 1 for colocated pipelines (the trainer shares
    the rollout GPUs) or when nothing divides."""
    sc = res.scenario
    if sc.rl.pipeline == "sync_colocated" or sc.rollout.num_gpus is None:
        return 1
    for f in (4, 2):
        if res.num_engines % f == 0 and res.num_engines // f >= 2 and sc.workload.num_prompts_per_step % f == 0:
            return f
    return 1


def _split(res) -> Assumption | None:
    """The rollout / training split of a disaggregated pool: about 25 % of the rollout pool, in
    whole probe engines (``f x TP`` GPUs), the training pool taking the difference."""
    sc = res.scenario
    tr = sc.rl.training
    if sc.rl.pipeline == "sync_colocated" or tr.num_gpus is None or sc.rollout.num_gpus is None:
        return None
    unit = probe_factor(res) * res.tp
    step = unit * max(1, int(round(0.25 * res.rollout_gpus / unit)))
    r, t = res.rollout_gpus, tr.num_gpus
    low = (f"rollout.num_gpus={r - step}", f"rl.training.num_gpus={t + step}") if r - step > 0 else None
    high = (f"rollout.num_gpus={r + step}", f"rl.training.num_gpus={t - step}") if t - step > 0 else None
    return Assumption("GPU split (rollout / training)", low, high, f"{r - step} / {t + step}", f"{r + step} / {t - step}",
                      f"assumed split; {step} GPUs either way (~25 % of the rollout pool, whole probe engines)")


def assumptions(res) -> list[Assumption]:
    """The scenario's assumed numbers with ranges and sources, largest expected effect first."""
    sc = res.scenario
    eng, wl, rl = sc.rollout.engine, sc.workload, sc.rl
    spec = eng.speculative_config
    out: list[Assumption] = []
    acc = spec.acceptance if spec is not None else None
    if acc is not None and acc.kind == "constant":
        out.append(_between("rollout.engine.speculative_config.acceptance.rate", 0.56, 0.78,
                            "published 8B ALs 2.05 and 2.47 at k = 3 give a = 0.56 / 0.68 (published_results.md 1); "
                            "0.78 ~ AL 2.9 (a better-matched drafter)", "acceptance rate", True, acc.rate))
    resp = wl.response_length
    if resp.kind == "lognormal":
        out.append(_scaled("workload.response_length.mean_tokens", resp.mean_tokens, (0.7, 1.4), int,
                           "assumed; RL response lengths drift during training (published_results.md 3)", "response length mean"))
    elif resp.kind == "fixed":
        out.append(_scaled("workload.response_length.tokens", resp.tokens, (0.7, 1.4), int, "assumed", "response length"))
    if rl.pipeline == "async":
        lag = rl.max_trajectory_age_steps
        out.append(_between("rl.max_trajectory_age_steps", max(1, lag - 1), lag + 1,
                            "NeMo-RL async GRPO: the lag starts at 1 (published_results.md 1)", "policy lag", current=lag))
    s = _split(res)
    if s is not None:
        out.append(s)
    if resp.kind == "lognormal":
        out.append(_between("workload.response_length.sigma", round(max(0.3, resp.sigma - 0.3), 3), round(resp.sigma + 0.3, 3),
                            "assumed; within-batch lengths vary 3-5x (FastGRPO, published_results.md 3)", "response length sigma"))
    if rl.pipeline != "sync_colocated":
        other = "per_rank" if rl.weight_sync.transport == "broadcast" else "broadcast"
        out.append(Assumption("weight-sync transport", (f"rl.weight_sync.transport={other}",), None, other,
                              rl.weight_sync.transport, "frameworks differ: NeMo-RL / verl broadcast, per-rank streaming"))
    if eng.max_num_seqs != 1024 or eng.max_num_batched_tokens != 16384:
        out.append(Assumption("vLLM batching (max_num_seqs / max_num_batched_tokens)", None,
                              ("rollout.engine.max_num_seqs=1024", "rollout.engine.max_num_batched_tokens=16384"),
                              f"{eng.max_num_seqs} / {eng.max_num_batched_tokens}", "1024 / 16384",
                              "vLLM V1 defaults on >= 70 GiB GPUs (LLM class)"))
    tr = rl.training
    if res.arch.is_moe and tr.mfu is None:
        out.append(_between("rl.training.moe_load_imbalance", 1.0, 1.3, "assumed (no measurement of Megatron expert load)",
                            "MoE load imbalance", current=tr.moe_load_imbalance))
        out.append(_between("rl.training.grouped_gemm_efficiency", 0.6, 1.0,
                            "assumed; vLLM's fused-MoE rows run 0.7-2.3x the dense-GEMM estimate (trainer_check)",
                            "grouped GEMM efficiency", current=tr.grouped_gemm_efficiency))
    if tr.mfu is not None:
        out.append(_scaled("rl.training.mfu", tr.mfu, (0.7, 1.3), float, "assumed MFU", "trainer MFU", hi_max=1.0))
    else:
        out.append(_between("rl.training.attention_backward_ratio", 2.0, 3.0, "FlashAttention-2 (5 vs 2 matmuls) +- 0.5",
                            "attention backward ratio", current=tr.attention_backward_ratio))
    ws = rl.weight_sync
    out.append(_between("rl.weight_sync.transfer_efficiency", 0.5, 0.9, "assumed", "weight-transfer efficiency",
                        current=ws.transfer_efficiency))
    if rl.pipeline == "sync_colocated":
        out.append(_between("rl.weight_sync.sleep_wake_s", 1.0, 6.0, "assumed", "vLLM sleep / wake", current=ws.sleep_wake_s))
    out.append(_between("rollout.engine.cpu_overhead.step_us", 500.0, 2000.0, "hardware_and_models.md C2: 0.5-2 ms per step",
                        "engine host time per step", current=eng.cpu_overhead.step_us))
    out.append(_between("rl.reward_time_s", 0.5, 5.0, "assumed (rule-based verifier vs model judge)", "reward time",
                        current=rl.reward_time_s))
    if acc is not None and getattr(acc, "concentration", None) is not None:
        out.append(_between("rollout.engine.speculative_config.acceptance.concentration", 8.0, 60.0,
                            "assumed per-sequence spread", "acceptance spread (concentration)", True, acc.concentration))
    if spec is not None and spec.method != "ngram":
        fitted = res.hw.speculation.draft_step_us
        current = fitted if spec.draft_step_overhead_us is None else spec.draft_step_overhead_us
        out.append(_between("rollout.engine.speculative_config.draft_step_overhead_us", 0.0, max(2.0 * fitted, 1300.0),
                            f"fitted {fitted:g} us ({res.hw.name} speculation); vLLM #20780's EAGLE-3 K sweep implies "
                            "~1,000 us per draft step (derived)", "draft step overhead", True, current))
    return out


def window_values(run, warm: int, n: int) -> tuple[float, float]:
    """(mean step time, mean generation makespan) over steps ``warm .. warm+n-1`` of a run."""
    end = run.steps["train_end_s"].to_numpy()
    start = end[warm - 1] if warm > 0 else 0.0
    steps = run.steps.iloc[warm:warm + n]
    return float((end[warm + n - 1] - start) / n), float(steps["generation_makespan_s"].mean())


@dataclass
class SensitivityResult:
    table: pd.DataFrame
    base: dict
    paths: list[Path] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0


def _short(path, overrides: list[str], seed: int, probe: int, with_baseline: bool):
    """(spec run, baseline run or None, warm-up, cycle) over warm-up + one cycle on the probe."""
    from rlsim.config import load_scenario
    from rlsim.rl.pipeline import horizon
    from rlsim.rl.run import run_pipeline
    from rlsim.sim import resolve

    res = resolve(load_scenario(path, overrides))
    mode = res.scenario.rl.pipeline
    lag = res.scenario.rl.max_trajectory_age_steps if mode == "async" else 0
    warm = horizon(res, mode, seed)[0]
    extra = [f"rl.num_steps={warm + lag + 1}"]
    if probe > 1:
        wl = res.scenario.workload
        if res.num_engines % probe or wl.num_prompts_per_step % probe:
            raise RlsimError(f"the probe (1/{probe} of the rollout pool) does not divide {res.num_engines} engines / "
                             f"{wl.num_prompts_per_step} prompts")
        extra += [f"rollout.num_gpus={res.rollout_gpus // probe}", f"workload.num_prompts_per_step={wl.num_prompts_per_step // probe}"]
    res = resolve(load_scenario(path, overrides + extra))
    spec = run_pipeline(res, seed, True, mode, probe)[0]
    base = run_pipeline(res, seed, False, mode, probe)[0] if with_baseline else None
    return spec, base, warm, lag + 1


def _speedups(spec, base, warm: int, c: int, base_values=None) -> tuple[float, float]:
    s_step, s_gen = window_values(spec, warm, c)
    b_step, b_gen = base_values if base_values is not None else window_values(base, warm, c)
    return b_step / s_step, b_gen / s_gen


def run_sensitivity(scenario_path, overrides: list[str] | None = None, seed: int | None = None, *, out: Path | None = None,
                    full=None, progress=None) -> SensitivityResult:
    """Tornado of the speculation speed-ups over every assumption (module docstring).  ``full``:
    the scenario's :class:`rlsim.rl.run.RLResult` if already simulated (its converged speed-ups
    are reported next to the probe's)."""
    from rlsim.config import load_scenario
    from rlsim.sim import resolve

    t0, c0 = time.perf_counter(), time.process_time()
    overrides = list(overrides or [])
    res = resolve(load_scenario(scenario_path, overrides, seed))
    if res.scenario.rl is None or res.speculative is None:
        raise RlsimError(f"{scenario_path}: --sensitivity needs an RL scenario with a speculative_config")
    seed = res.scenario.seed
    f = probe_factor(res)
    spec0, base0, warm, c = _short(scenario_path, overrides, seed, f, True)
    base_values = window_values(base0, warm, c)
    e2e0, gen0 = _speedups(spec0, None, warm, c, base_values)
    items = assumptions(res)
    rows = []
    for i, a in enumerate(items):
        row = {"assumption": a.name, "low": a.low_label, "high": a.high_label, "source": a.source,
               "end_to_end_low": e2e0, "end_to_end_high": e2e0, "generation_low": gen0, "generation_high": gen0, "error": ""}
        for end, ov in (("low", a.low), ("high", a.high)):
            if ov is None:
                continue
            try:
                sp, bs, w, cc = _short(scenario_path, overrides + list(ov), seed, f, not a.spec_only)
                e2e, gen = _speedups(sp, bs, w, cc, base_values if a.spec_only else None)
                row[f"end_to_end_{end}"], row[f"generation_{end}"] = e2e, gen
            except RlsimError as err:
                row["error"] += f"{end}: {err}; "
        rows.append(row)
        if progress:
            progress(i + 1, len(items), row)
    table = pd.DataFrame(rows)
    table["end_to_end_swing"] = (table["end_to_end_high"] - table["end_to_end_low"]).abs()
    table["generation_swing"] = (table["generation_high"] - table["generation_low"]).abs()
    table = table.sort_values("end_to_end_swing", ascending=False, kind="stable").reset_index(drop=True)
    conv = (full.summary["speedup"] if full is not None else {})
    result = SensitivityResult(table, {"end_to_end": e2e0, "generation": gen0, "window_steps": c, "warmup_steps": warm,
                                       "probe": f, "converged_end_to_end": conv.get("end_to_end"),
                                       "converged_generation": conv.get("generation")})
    if out is not None:
        result.paths = _write(result, Path(out), res.scenario.name)
    result.wall_s, result.cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return result


def tornado_figure(result: SensitivityResult, title: str):
    """Two panels (end-to-end, generation): a bar per assumption from its low to its high value's
    speed-up around the base point, largest swing on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.table
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * max(4, len(t)) + 1.5), dpi=110, sharey=True)
    y = np.arange(len(t))[::-1]
    for ax, key in zip(axes, ("end_to_end", "generation")):
        base = result.base[key]
        lo, hi = t[f"{key}_low"].to_numpy(), t[f"{key}_high"].to_numpy()
        ax.barh(y + 0.2, lo - base, height=0.4, left=base, color="C0", label="low value")
        ax.barh(y - 0.2, hi - base, height=0.4, left=base, color="C3", label="high value")
        ax.axvline(base, color="k", linewidth=1)
        ax.set_title(f"{key.replace('_', '-')} speed-up (base {base:.2f}x)")
        ax.set_xlabel("speed-up of speculation (x)")
        ax.grid(alpha=0.3, axis="x")
    labels = [f"{r.assumption}  [{r.low} .. {r.high}]" for r in t.itertuples(index=False)]
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _write(result: SensitivityResult, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "sensitivity.csv"
    result.table.to_csv(csv, index=False)
    png = out / "sensitivity.png"
    b = result.base
    probe = f", probe 1/{b['probe']} of the rollout pool" if b["probe"] > 1 else ""
    fig = tornado_figure(result, f"{name}: one assumption at a time (paired seeds; window: warm-up {b['warmup_steps']} + "
                                 f"{b['window_steps']} steps{probe})")
    fig.savefig(png, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [png, csv]


def render(result: SensitivityResult) -> str:
    """The table ``rlsim run --sensitivity`` prints."""
    b = result.base
    probe = f" on a probe of 1/{b['probe']} of the rollout pool and prompts" if b["probe"] > 1 else ""
    conv = (f"; the full scenario's converged window: {b['converged_end_to_end']:.3f}x / {b['converged_generation']:.3f}x"
            if b.get("converged_end_to_end") is not None else "")
    lines = [f"sensitivity of the speculation speed-ups (one assumption at a time, paired seeds, window = warm-up "
             f"{b['warmup_steps']} + {b['window_steps']} steps{probe}; base end-to-end {b['end_to_end']:.3f}x, "
             f"generation {b['generation']:.3f}x{conv})"]
    w = max([len(r) for r in result.table["assumption"]] + [10])
    lines.append(f"  {'assumption':<{w}}  {'low .. high':>26}  {'end-to-end':>17}  {'generation':>17}  source")
    for r in result.table.itertuples(index=False):
        rng = f"{r.low} .. {r.high}"
        lines.append(f"  {r.assumption:<{w}}  {rng:>26}  {r.end_to_end_low:7.3f} .. {r.end_to_end_high:6.3f}  "
                     f"{r.generation_low:7.3f} .. {r.generation_high:6.3f}  {r.source}" + (f"  [{r.error}]" if r.error else ""))
    return "\n".join(lines)
