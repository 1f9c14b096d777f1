"""``rlsim`` command line: thin -- parse, call the library, render.

Every user mistake (RlsimError) prints one line ``error: ...`` on stderr and exits with code 2,
never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import typer

from rlsim.config.work import HARD_LIMIT as _HARD_LIMIT
from rlsim.errors import RlsimError

app = typer.Typer(
    help="rlsim: performance simulator for RL post-training rollouts (vLLM engines, speculative decoding).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
profiles_app = typer.Typer(help="Hardware profiles (hardware_profiles/*.yaml).", no_args_is_help=True)
acceptance_app = typer.Typer(help="Acceptance models for speculative decoding.", no_args_is_help=True)
models_app = typer.Typer(help="Model architectures in the built-in catalog.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(models_app, name="models")
app.add_typer(acceptance_app, name="acceptance")
calibrate_app = typer.Typer(help="Fit hardware profiles to measured kernel latencies and report the error.", no_args_is_help=True)
app.add_typer(calibrate_app, name="calibrate")


def _user_errors(fn: Callable) -> Callable:
    """Print RlsimError as one line and exit 2.  Every path argument is checked for length and
    NUL bytes before the command runs; an OSError on a file the user named (unreadable, a
    folder, ...) is one line too."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            _check_path_arguments(fn, kwargs)
            return fn(*args, **kwargs)
        except RlsimError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from None
        except OSError as err:
            if err.filename is None:
                raise
            from rlsim.errors import short_repr

            typer.echo(f"error: {short_repr(str(err.filename))}: {err.strerror or err}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _check_path_arguments(fn: Callable, kwargs: dict) -> None:
    """:func:`rlsim._paths.check_path_text` on every ``Path`` argument (and list of them),
    named as the user typed it (``scenario`` for an argument, ``--out`` for an option)."""
    import inspect

    from rlsim._paths import check_path_text

    params = inspect.signature(fn).parameters
    for name, value in kwargs.items():
        default = params[name].default if name in params else None
        shown = name if isinstance(default, typer.models.ArgumentInfo) else "--" + name.rstrip("_").replace("_", "-")
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, Path):
                check_path_text(str(v), None, shown)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(rows: list[tuple[str, object]], title: str = "") -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {_fmt(v)}" for k, v in rows]
    return "\n".join(lines)


def render_rollout(summary: dict, wall_s: float | None = None) -> str:
    """The table ``rlsim run`` prints."""
    s = summary
    rows = [
        ("batch wall time (s)", s["rollout_time_s"]),
        ("sequences", s["num_sequences"]),
        ("generated tokens", s["generated_tokens"]),
        ("output tokens/s", s["output_tokens_per_s"]),
        ("mean running batch / engine", s["mean_running_batch"]),
        ("peak running batch / engine", s["peak_running_batch"]),
        ("preemptions", s["preemptions"]),
        ("recomputed tokens", s["recomputed_tokens"]),
        ("time after 90% finished (s)", s["tail_time_s"]),
        ("  = share of the batch", f"{100 * s['tail_frac']:.1f} %"),
        ("engines x TP", f"{s['num_engines']} x {s['tensor_parallel_size']}"),
        ("engine iterations", s["engine_iterations"]),
    ]
    # the header names the resolved model and GPU (a --set model.name=... keeps the file's scenario name)
    out = [_table(rows, f"rollout: {s['scenario']}: {s['model']['name']} on {s['rollout_gpus']} x "
                        f"{s['hardware']['profile']} (seed {s['seed']})")]
    br = sorted(s["time_breakdown_frac"].items(), key=lambda kv: -kv[1])
    out.append(_table([(k, f"{100 * v:5.1f} %") for k, v in br if v > 0.0005], "where the engine time went:"))
    m, h, md = s["memory"], s["hardware"], s["model"]
    out.append(_table([
        ("model", f"{md['name']} ({md['weight_dtype']} weights, {md['kv_cache_dtype']} KV)"),
        ("weights per GPU (GB)", m["weight_gb_per_gpu"]),
        ("KV cache per GPU (GB)", m["kv_cache_gb_per_gpu"]),
        ("KV capacity / engine (tokens)", m["kv_capacity_tokens_per_engine"]),
        ("peak KV use", f"{100 * m['peak_kv_blocks_used_frac']:.0f} %"),
        ("hardware", f"{h['profile']} ({h['calibration_status']}: {h['calibration_source']})"),
        *([("kernel tables", _tables_line(h["kernel_tables"]).split(": ", 1)[1])] if h.get("kernel_tables") else []),
    ], "memory and assumptions:"))
    for w in s.get("warnings", []):
        if not w.startswith(f"hardware profile {h['profile']} is "):  # the calibration status is in the table above
            out.append(f"warning: {w}")
    if wall_s is not None:
        out.append(f"simulated in {wall_s:.2f} s wall")
    return "\n\n".join(out)


def render_speculation(summary: dict) -> str:
    """Side-by-side baseline vs speculative table, the speedup and why."""
    s, b = summary, summary["baseline"]
    sp = s["speculative"]
    rows = [("", "baseline", f"{sp['method']} k={sp['num_speculative_tokens']}")]
    for label, key in (("batch wall time (s)", "rollout_time_s"), ("output tokens/s", "output_tokens_per_s"),
                       ("mean running batch / engine", "mean_running_batch"), ("preemptions", "preemptions"),
                       ("time after 90% finished (s)", "tail_time_s"), ("engine iterations", "engine_iterations"),
                       ("KV capacity / engine (tokens)", None)):
        if key is None:
            rows.append((label, _fmt(b["memory"]["kv_capacity_tokens_per_engine"]), _fmt(s["memory"]["kv_capacity_tokens_per_engine"])))
        else:
            rows.append((label, _fmt(b[key]), _fmt(s[key])))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = ["speculative decoding vs baseline (same sequences):"]
    lines += [f"  {a:<{w0}}  {x:>{w1}}  {y:>12}" for a, x, y in rows]
    pos = ", ".join(f"{p:.3f}" for p in s["per_position_acceptance"] or [])
    br = s["time_breakdown_frac"]
    lines += [
        "",
        f"  speedup (rollout)             {s['speedup']['rollout']:.3f}x",
        f"  mean acceptance length        {s['mean_acceptance_length']:.3f}   (vLLM: 1 + accepted / drafts)",
        f"  per-position acceptance       {pos}   (vLLM's per-position rates: unconditional, P(position i accepted))",
        f"  draft acceptance rate         {100 * s['draft_acceptance_rate']:.1f} %   (vLLM's Avg Draft acceptance rate: "
        "accepted / drafted tokens; not the scenario's per-token conditional acceptance `rate`)",
        f"  drafter ({sp['drafter']})   {100 * br.get('drafting', 0.0):.1f} % of engine time; "
        f"iterations with drafts {100 * sp['spec_iterations_frac']:.1f} %",
        f"  why: tokens per target pass rise {s['mean_acceptance_length']:.2f}x at the cost of verify passes over "
        f"{1 + sp['num_speculative_tokens']} tokens per sequence and the drafter",
    ]
    return "\n".join(lines)


def render_spec_explain(summary: dict, max_rows: int = 8) -> str:
    """Per engine: seconds in target passes, drafting, rejection sampling and host work."""
    rows = summary["speculative"]["engine_time_s"]
    keys = ("target_pass_s", "drafting_s", "rejection_sampling_s", "host_exposed_s", "drafting_host_s", "busy_s")
    head = ("engine", "target pass", "drafting", "rejection", "host exposed", "draft host", "busy")
    lines = ["time per engine (s):", "  " + "  ".join(f"{h:>12}" for h in head)]
    shown = rows[:max_rows]
    for r in shown:
        lines.append("  " + f"{r['engine']:>12}" + "".join(f"  {r[k]:>12.3f}" for k in keys))
    if len(rows) > max_rows:
        lines.append(f"  ... {len(rows) - max_rows} more engines")
    tot = {k: sum(r[k] for r in rows) for k in keys}
    lines.append("  " + f"{'all':>12}" + "".join(f"  {tot[k]:>12.3f}" for k in keys))
    busy = tot["busy_s"] or 1.0
    lines.append("  shares of busy time: " + ", ".join(f"{h} {100 * tot[k] / busy:.1f} %"
                                                   for h, k in zip(head[1:6], keys[:5])))
    return "\n".join(lines)


def render_seeds(stats: dict) -> str:
    """Mean and 95 % interval over seeds."""
    lines = [f"over {stats['num_seeds']} seeds {stats['seeds'][0]}..{stats['seeds'][-1]} (mean [95 % interval]):"]
    for k, v in stats.items():
        if isinstance(v, dict):
            lo, hi = v["ci95"]
            lines.append(f"  {k:<26} {v['mean']:,.4g}  [{lo:,.4g}, {hi:,.4g}]")
    return "\n".join(lines)


@app.command()
@_user_errors
def run(
    scenario: Optional[Path] = typer.Argument(None, help="scenario YAML (see scenarios/); or --from DIR"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field: path.to.field=value (YAML value); repeatable"),
    out: Optional[Path] = typer.Option(None, "--out", help="write summary.json, parquet tables, PNG and trace.json here"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the scenario's seed)"),
    seeds: int = typer.Option(1, "--seeds", min=1, help="run seeds SEED..SEED+N-1 and report mean and 95 % interval"),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="skip the baselines (the paired no-speculation run; "
                                                                   "RL: also the sync twin)"),
    json_: bool = typer.Option(False, "--json", help="print summary.json to stdout instead of the table"),
    baseline_mode: str = typer.Option("no-spec", "--baseline-mode",
                                      help="RL scenarios: baseline = same pipeline without speculation (no-spec) "
                                           "or the synchronous colocated twin without speculation (sync)"),
    explain: bool = typer.Option(False, "--explain", help="speculative rollouts: per engine, time in target passes, "
                                                          "drafting, rejection sampling and host work"),
    sensitivity: bool = typer.Option(False, "--sensitivity",
                                     help="RL scenarios with speculation: vary every assumed number over its stated range "
                                          "and write a tornado chart + table of the speed-ups (into --out, default ./sensitivity)"),
    work_limit: float = typer.Option(_HARD_LIMIT, "--work-limit",
                                     help="refuse runs estimated above this many token-equivalents (~1e-7 s each; "
                                          "0 = no limit; see the README's robustness section)"),
    from_: Optional[Path] = typer.Option(None, "--from", help="rerun a result folder written by --out "
                                                                 "(its scenario.resolved.yaml and run.json)"),
    report: Optional[Path] = typer.Option(None, "--report", help="write one self-contained HTML page (figures, "
                                                                 "tables, assumptions, warnings, resolved scenario)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    workers: int = typer.Option(1, "--workers", min=1, help="run a rollout batch's engines, or an RL scenario's runs "
                                                            "(speculative and baselines), in N processes (identical "
                                                            "results; serving runs use one)"),
) -> None:
    """Simulate SCENARIO: one rollout batch, or RL steps when it has an rl: section; explain
    where the time went.

    With a speculative_config the no-speculation baseline runs on the identical sequences and
    the speedup is reported."""
    from rlsim.api import simulate_seeds
    from rlsim.config import load_scenario
    from rlsim.config.work import check_work, estimate
    from rlsim.errors import ConfigError

    _check_work_limit(work_limit)
    if out is not None:
        _prepare_out(out)
    if from_ is not None:
        loaded, seeds, no_baseline, baseline_mode, scenario = _from_folder(from_, scenario, set_ or [], seed)
    elif scenario is None:
        from rlsim.errors import ConfigError

        raise ConfigError("rlsim run: give a SCENARIO file or --from DIR")
    else:
        loaded = load_scenario(scenario, set_ or [], seed)
    if sensitivity and (loaded.scenario.rl is None or loaded.scenario.rollout.engine.speculative_config is None):
        raise ConfigError(f"--sensitivity: {scenario} needs an rl: section and a speculative_config")
    from rlsim.api import _check_mode

    _check_mode(baseline_mode)
    warning = check_work(estimate(loaded.scenario, loaded.base_dir, seeds=seeds, baseline=not no_baseline,
                                  source=loaded.source),
                         loaded.source, work_limit)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    t0 = time.perf_counter()
    from rlsim.results.progress import tracking

    with _progress_bar("run", quiet) as bar, tracking(bar):  # RL: each run's trained steps
        results, stats = simulate_seeds(loaded, seeds, seed=seed, baseline=not no_baseline, baseline_mode=baseline_mode,
                                        work_limit=0, progress=bar if seeds > 1 else None, workers=workers)
    wall = time.perf_counter() - t0
    result = results[0]
    if seeds > 1:
        result.summary["seeds"] = stats
    _check_finite_summary(result.summary, loaded.source)
    if json_:
        text = json.dumps(result.summary, indent=2, sort_keys=True)
    else:
        text = _render_run(result, wall)
        if explain and result.kind != "rl" and (result.summary.get("speculative") or {}).get("engine_time_s"):
            text += "\n\n" + render_spec_explain(result.summary)
        if seeds > 1:
            text += "\n\n" + render_seeds(stats)
    typer.echo(text)
    if out is not None:
        from rlsim.results.reproduce import write_reproduction

        paths = _save_run(result, out, text)
        paths += write_reproduction(out, loaded, set_ or [], {"seeds": seeds, "baseline": not no_baseline,
                                                              "baseline_mode": baseline_mode})
        typer.echo(f"\nwrote {', '.join(str(p) for p in paths)}", err=json_)
    if report is not None:
        typer.echo(f"wrote {_run_report(result, loaded, out, report, text)}", err=json_)
    if sensitivity:
        _sensitivity(scenario, set_ or [], seed, result, out, baseline_mode)


def _run_report(result, loaded, out: Optional[Path], report: Path, text: str) -> Path:
    """``--report``: the HTML page, with the PNGs of ``--out`` (or of a scratch folder)."""
    import tempfile

    from rlsim.results.html_report import run_report

    if out is not None:
        return run_report(result, loaded.raw, sorted(out.glob("*.png")), report, text)
    with tempfile.TemporaryDirectory() as tmp:
        _write_run_outputs(result, Path(tmp))
        return run_report(result, loaded.raw, sorted(Path(tmp).glob("*.png")), report, text)


def _from_folder(folder: Path, scenario, overrides: list[str], seed):
    """(loaded, seeds, no_baseline, baseline_mode, scenario path) of ``rlsim run --from DIR``."""
    from rlsim.errors import ConfigError
    from rlsim.results.reproduce import load_reproduction

    if scenario is not None:
        raise ConfigError(f"rlsim run: give SCENARIO ({scenario}) or --from {folder}, not both")
    loaded, info = load_reproduction(folder, overrides + ([f"seed={seed}"] if seed is not None else []))
    opts = info.get("command", {}).get("options", {})
    return (loaded, int(opts.get("seeds", 1)), not opts.get("baseline", True), opts.get("baseline_mode", "no-spec"),
            Path(loaded.source))


def _check_work_limit(limit: float) -> None:
    import math

    from rlsim.errors import ConfigError

    if not math.isfinite(limit) or limit < 0:
        raise ConfigError(f"--work-limit = {limit!r} must be a finite number >= 0 (0 = no limit)")


def _check_finite_summary(summary: dict, source: str) -> None:
    """A non-finite number in a result is never an answer: refuse it (with where it is) instead
    of printing ``nan`` or writing ``null``."""
    import math

    from rlsim.errors import RlsimError

    stack = [("", summary)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((f"{path}.{k}" if path else str(k), x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
        elif isinstance(v, float) and not math.isfinite(v):
            raise RlsimError(f"{source}: the simulation gave a non-finite result ({path} = {v}); nothing was written "
                             "(please report this scenario)")


def _save_run(result, out: Path, text: str) -> list:
    """The printed report first (report.txt), then every output file, each written atomically;
    if writing fails after simulating, the report is saved elsewhere and the message says where."""
    from rlsim.errors import ConfigError, RlsimError
    from rlsim.results.atomic import write_text_atomic

    try:
        write_text_atomic(out / "report.txt", text + "\n")
        return [out / "report.txt", *_write_run_outputs(result, out)]
    except (OSError, RlsimError) as exc:
        saved = _save_elsewhere(text)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"--out = {str(out)!r}: writing the results failed ({why}); the printed report is saved in "
                          f"{saved}") from None


def _save_elsewhere(text: str) -> str:
    """Save ``text`` in the working folder, else the temp folder; the path, or 'nowhere'."""
    import os
    import tempfile

    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            fd, name = tempfile.mkstemp(prefix="rlsim-report-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
            return name
        except OSError:
            continue
    return "nowhere (no writable folder; the report is on stdout above)"


def _render_run(result, wall_s: float) -> str:
    """The table ``rlsim run`` prints for a rollout or an RL result."""
    if result.kind == "rl":
        return render_rl(result, wall_s)
    text = render_rollout(result.summary, wall_s)
    return text + ("\n\n" + render_speculation(result.summary) if "speedup" in result.summary else "")


def _write_run_outputs(result, out: Path) -> list:
    if result.kind == "rl":
        from rlsim.results.rl import write_rl_outputs

        return write_rl_outputs(result, out)
    from rlsim.results import write_outputs

    return write_outputs(result, out, title=result.summary["scenario"])


def _sensitivity(scenario: Path, overrides: list[str], seed, result, out: Optional[Path], baseline_mode: str) -> None:
    from rlsim.analysis.sensitivity import render, run_sensitivity

    folder = out if out is not None else Path("sensitivity")
    _prepare_out(folder)
    with _progress_bar("sensitivity") as bar:
        sens = run_sensitivity(scenario, overrides, seed, out=folder, full=result if baseline_mode == "no-spec" else None,
                               progress=bar)
    typer.echo("\n" + render(sens))
    typer.echo(f"\nwrote {', '.join(str(p) for p in sens.paths)} in {sens.wall_s:.0f} s wall, {sens.cpu_s:.0f} s CPU")


def render_rl(result, wall_s: float | None = None) -> str:
    """Per-step table, steady-state window per run, trainer MFU breakdown, weight sync, speedups,
    assumptions and every warning."""
    s = result.summary
    model, hw = (s.get("model") or {}).get("name", "?"), (s.get("hardware") or {}).get("profile", "?")
    lines = [f"RL: {s['scenario']}: {model} on {hw} (seed {s['seed']}, pipeline {s['pipeline']})"]
    for name, run in result.runs.items():
        lines += _rl_steps(name, run)
    lines += _rl_window(result)
    for name, run in result.runs.items():
        lines += _rl_trainer(name, run.summary)
    if s["speedup"]:
        lines.append("\nspeedups (steady-state windows):")
        lines += [f"  {k:<22} {v:.3f}x" for k, v in s["speedup"].items()]
    h = s["hardware"]
    lines.append(f"\nhardware {h['profile']}: {h['calibration_status']} ({h['calibration_source']})")
    if h.get("kernel_tables"):
        lines.append(_tables_line(h["kernel_tables"]))
    lines += [f"warning: {w}" for w in s.get("warnings", [])]
    if wall_s is not None:
        lines.append(f"simulated in {wall_s:.2f} s wall")
    return "\n".join(lines)


def _rl_steps(name: str, run) -> list[str]:
    sm = run.summary
    lines = [f"\n{name}: {sm['pipeline']}, pools {sm['pools']}, warm-up {sm['warmup_steps']} + window "
             f"{sm['window_steps']} steps ({'converged' if sm['converged'] else 'NOT converged'})",
             "  step  warm-up  step(s)  sync(s)  gen(s)  reward(s)  logprob(s)  train(s)  rollout(s)  tok/s   MFU"]
    for r in run.steps.itertuples(index=False):
        lines.append(f"  {r.step:>4}  {'yes' if r.warmup else '':>7}  {r.step_time_s:7.1f}  {r.weight_sync_time_s:7.1f}"
                     f"  {r.generation_time_s:6.1f}  {r.reward_time_s:9.1f}  {r.logprob_time_s:10.1f}"
                     f"  {r.train_time_s + r.drafter_train_time_s:8.1f}  {r.generation_makespan_s:10.1f}"
                     f"  {r.rollout_tokens_per_s:7,.0f}  {r.trainer_mfu:5.3f}")
    return lines


def _rl_window(result) -> list[str]:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    rows = [("", *result.runs.keys())]
    for label, key, fmt in (
        ("step time, mean (s)", "step_time_s", _fmt), ("  std / min / max (s)", None, None),
        ("steps per hour", "steps_per_hour", _fmt), ("  weight sync (s)", "weight_sync_time_s", _fmt),
        ("  generation, exposed (s)", "generation_time_s", _fmt), ("  reward (s)", "reward_time_s", _fmt),
        ("  logprob (s)", "logprob_time_s", _fmt), ("  train (s)", "train_time_s", _fmt),
        ("  drafter training (s)", "drafter_train_time_s", _fmt), ("rollout makespan (s)", "generation_makespan_s", _fmt),
        ("rollout pool tokens/s", "rollout_tokens_per_s", _fmt), ("rollout pool idle", "rollout_idle_frac", pct),
        ("rollout paused for weights", "rollout_weight_update_frac", pct), ("trainer idle", "trainer_idle_frac", pct),
        ("trainer MFU", None, None), ("policy lag seen (mean, max)", None, None),
        ("mean acceptance length", "mean_acceptance_length", _fmt)):
        vals = []
        for run in result.runs.values():
            sm = run.summary
            if key is not None:
                vals.append(fmt(sm[key]) if sm.get(key) is not None else "-")
            elif label.startswith("  std"):
                vals.append(f"{sm['step_time_std_s']:.1f} / {sm['step_time_min_s']:.1f} / {sm['step_time_max_s']:.1f}")
            elif label == "trainer MFU":
                vals.append(f"{sm['trainer']['mfu']:.3f} ({sm['trainer']['cost_model']})")
            else:
                lag = sm["policy_lag"]
                vals.append(f"{lag['mean_at_first_token']:.2f}, {lag['max_at_first_token']}")
        rows.append((label, *vals))
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = ["\nsteady state (window after the warm-up; throughput over the window's wall time):"]
    return out + ["  " + "  ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i]) for i, c in enumerate(r)) for r in rows]


def _rl_trainer(name: str, sm: dict) -> list[str]:
    tr, ws = sm["trainer"], sm["weight_sync"]
    lines = [f"\n{name} trainer: {tr['layout']} on {tr['num_gpus']} GPUs, {tr['cost_model']} model, MFU {tr['mfu']:.3f}"
             + (f" (HFU {tr['hfu']:.3f})" if "hfu" in tr else f" [{tr['mfu_source']}]")]
    if tr.get("breakdown_s"):
        parts = sorted(((k, v) for k, v in tr["breakdown_s"].items() if v > 0), key=lambda kv: -kv[1])
        lines.append("  " + ", ".join(f"{k} {v:.1f} s ({100 * tr['breakdown_frac'][k]:.0f} %)" for k, v in parts))
        lines.append("  assumed: " + "; ".join(f"{k}" + (f" = {a['value']:g}" if isinstance(a["value"], (int, float)) else "")
                                              for k, a in tr["assumed"].items()))
    lines.append(f"  weight sync: {ws['mode']}, {ws['transport']} over {ws['link']}, {ws['total_s']:.2f} s = "
                 + " + ".join(f"{k[:-2]} {v:.2f}" for k, v in ws["parts_s"].items() if v > 0)
                 + f" ({ws['bytes_per_receiver'] / 1e9:.1f} GB per rollout GPU)")
    return lines


def _tables_line(t: dict) -> str:
    """One line on table mode: distinct op lookups and how many fell back to the fitted model."""
    per = ", ".join(f"{k} {v['fallbacks']}/{v['lookups']}" for k, v in t["ops"].items())
    return (f"kernel tables: {t['source']}: {t['lookups']} op lookups, {t['fallbacks']} fell back to the fitted "
            f"model ({100 * t['fallback_frac']:.0f} %; {per})")


@app.command()
@_user_errors
def compare(
    scenario: Path = typer.Argument(..., help="RL scenario YAML (see scenarios/)"),
    policies: str = typer.Option("none,dynamic_sampling,partial_rollout,history_drafter,concurrency_draft",
                                 "--policies", help="comma-separated policies (rlsim.rl.policies.NAMED; none = the "
                                                    "scenario without a policy, no_spec = without speculation, scenario = its own rl.policy), or all"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="seeds SEED..SEED+N-1, every policy on each (paired)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field: path.to.field=value; repeatable"),
    out: Optional[Path] = typer.Option(None, "--out", help="write compare.csv (per policy and seed), "
                                                          "compare_summary.csv and compare.png here"),
    workers: int = typer.Option(1, "--workers", min=1, help="simulate the (policy, seed) runs in N processes "
                                                            "(identical results)"),
) -> None:
    """Run rollout-acceleration policies on identical sequences and compare step time, rollout
    throughput, GPU idle and the training-data side effects (off-policy share, staleness,
    filtered groups), with 95 % intervals over seeds."""
    from rlsim.config import load_scenario
    from rlsim.rl.policies import compare as cmp

    if out is not None:
        _prepare_out(out)
    loaded = load_scenario(scenario, set_ or [])
    rows = cmp.compare_policies(loaded, cmp.policy_names(policies, loaded), seeds, workers=workers)
    table = cmp.summarise(rows)
    typer.echo(cmp.render(table, loaded.scenario.name))
    if out is not None:
        from rlsim.results.atomic import write_text_atomic

        write_text_atomic(out / "compare.csv", rows.to_csv(index=False))
        write_text_atomic(out / "compare_summary.csv", table.to_csv(index=False))
        png = cmp.plot(table, out / "compare.png", loaded.scenario.name)
        typer.echo(f"\nwrote {out / 'compare.csv'}, {out / 'compare_summary.csv'}, {png}")


@app.command()
@_user_errors
def validate(
    case: Optional[List[str]] = typer.Option(None, "--case", help="run only this case (repeatable); default: all"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the results as JSON here"),
) -> None:
    """Published vs simulated for every validation case, with the delta and pass/fail per case
    (exit code 1 if any case fails)."""
    from rlsim.errors import ConfigError
    from rlsim.validation import CASE_NAMES, run_validation
    from rlsim.validation_e2e import E2E_CASES

    CASE_NAMES = CASE_NAMES + tuple(c[0] for c in E2E_CASES)  # noqa: N806

    for c in case or []:
        if c not in CASE_NAMES:
            raise ConfigError(f"--case = {c!r} is not a validation case (cases: {', '.join(CASE_NAMES)})")
    results = run_validation(case or None)
    w = max(len(r.case.name) for r in results)
    typer.echo(f"{'case':<{w}}  {'published':>10}  {'simulated':>10}  {'delta':>8}  result  {'role':<11}  tolerance")
    for r in results:
        typer.echo(f"{r.case.name:<{w}}  {r.case.published:>10.4g}  {r.simulated:>10.4g}  {r.delta_pct:>7.1f}%  "
                   f"{'pass' if r.passed else 'FAIL':<6}  {r.case.role:<11}  {r.case.tolerance}")
        typer.echo(f"{'':<{w}}  {r.case.what}; source: {r.case.source}")
    failed = sum(not r.passed for r in results)
    typer.echo(f"\n{len(results) - failed} passed, {failed} failed (role: calibration = a number of the case was "
               "fitted or matched, independent = a prediction)")
    if json_out is not None:
        json_out.write_text(json.dumps([{"case": r.case.name, "published": r.case.published, "simulated": r.simulated,
                                         "delta_pct": r.delta_pct, "passed": r.passed, "low": r.case.low,
                                         "high": r.case.high, "source": r.case.source, "role": r.case.role}
                                        for r in results], indent=2))
    if failed:
        raise typer.Exit(code=1)


@acceptance_app.command("from-vllm")
@_user_errors
def acceptance_from_vllm(
    source: str = typer.Argument(..., help="file with vLLM output, or - for stdin: 'SpecDecoding metrics:' log "
                                           "lines, a Prometheus /metrics dump, or vllm bench serve's section"),
) -> None:
    """Print the acceptance YAML to paste under speculative_config, from what vLLM printed."""
    from rlsim._paths import check_path_text
    from rlsim.speculation.ingest import acceptance_yaml, parse_vllm_spec_metrics, read_metrics_source

    text = read_metrics_source(check_path_text(source, None, "source"))
    typer.echo(acceptance_yaml(parse_vllm_spec_metrics(text, source=None if source == "-" else source)), nl=False)


@profiles_app.command("list")
@_user_errors
def profiles_list() -> None:
    """List the hardware profiles with their calibration status."""
    from rlsim.hardware import list_profiles, load_profile

    for name in list_profiles():
        p = load_profile(name)
        typer.echo(f"{name:<12} {p.display_name:<36} {p.calibration.status}")


@profiles_app.command("show")
@_user_errors
def profiles_show(name: str = typer.Argument(..., help="profile name or path to a profile YAML")) -> None:
    """Print a profile's datasheet numbers, efficiencies, topology and derived figures."""
    from rlsim.hardware import describe_profile, load_profile

    typer.echo(json.dumps(describe_profile(load_profile(name, path="profile")), indent=2, default=str))


@models_app.command("list")
@_user_errors
def models_list() -> None:
    """List catalog models with total and active parameters."""
    from rlsim.models import list_models, load_model

    for name in list_models():
        m = load_model(name)
        typer.echo(f"{name:<26} total {m.total_params / 1e9:8.3f} B   active {m.active_params / 1e9:7.3f} B   {m.hf_architecture}")


@models_app.command("show")
@_user_errors
def models_show(name: str = typer.Argument(..., help="catalog name, HF id, or path to a config.json")) -> None:
    """Print total/active parameters, weight bytes per dtype and KV bytes per token."""
    from rlsim.models import describe, load_model

    typer.echo(json.dumps(describe(load_model(name)), indent=2, default=str))


@calibrate_app.command("fit")
@_user_errors
def calibrate_fit(
    traces: Path = typer.Option(..., "--traces", help="one system's aiconfigurator folder, a folder of Vidur CSVs, or Chrome-trace JSON"),
    profile: str = typer.Option(..., "--profile", help="profile name or YAML path; rewritten in place unless --out"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the fitted profile here instead"),
    all_shapes: bool = typer.Option(False, "--all-shapes", help="fit every measured shape, not only the catalog models' shapes"),
    keys: Optional[str] = typer.Option(None, "--keys", help="comma-separated keys to fit (e.g. gemm:bf16,nccl_all_reduce)"),
    folds: int = typer.Option(5, "--folds", min=2, help="grouped k-fold for the held-out error"),
    patterns: Optional[Path] = typer.Option(None, "--patterns", help="JSON/YAML kernel-name pattern table for Chrome traces"),
) -> None:
    """Fit each op class's efficiency parameters (least squares on log time) and write them
    into the profile with provenance and in-sample / held-out error."""
    from rlsim.calibration import calibrate_profile

    key_list = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    hw, results = calibrate_profile(profile, traces, out=out, relevant=not all_shapes, keys=key_list, n_folds=folds,
                                    patterns=patterns, progress=lambda k: typer.echo(f"fitting {k} ...", err=True))
    typer.echo(f"{'key':<28} {'rows':>7}  {'in-sample med/p90 %':>20}  {'held-out med/p90 %':>19}")
    for r in results:
        a, b = r.in_sample, r.held_out
        typer.echo(f"{r.key:<28} {r.rows:>7,}  {a['median_abs_pct_err']:>9.1f} /{a['p90_abs_pct_err']:>7.1f}  "
                   f"{b['median_abs_pct_err']:>9.1f} /{b['p90_abs_pct_err']:>7.1f}")
    for r in results:
        gs = r.group_size_held_out
        if gs and gs["errors"]["n"]:
            e = gs["errors"]
            typer.echo(f"{r.key:<28} held out by group size (fit on {', '.join(map(str, gs['train_gpus']))} GPUs, "
                       f"check {gs['test_gpus']}): {e['median_abs_pct_err']:.1f} / {e['p90_abs_pct_err']:.1f} %")
    typer.echo(f"wrote {hw.source} ({hw.calibration.status})")


@calibrate_app.command("routing")
@_user_errors
def calibrate_routing(
    traces: Path = typer.Option(..., "--traces", help="one system's aiconfigurator folder (with power-law MoE rows)"),
    profile: str = typer.Option(..., "--profile", help="profile name or YAML path; rewritten in place unless --out"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the profile here instead"),
) -> None:
    """Fit the MoE time of a real (skewed) router against the uniform spread, per routed rows per
    expert, from the tables' power-law rows (rlsim.calibration.routing); calibrate fit runs it too."""
    from rlsim.calibration.routing import write_skewed_routing

    hw, report = write_skewed_routing(profile, str(traces), None if out is None else str(out))
    typer.echo(f"{'key':<12} {'rows':>6}  {'uniform med/p90 %':>18}  {'in-sample':>12}  {'held out (shape)':>16}  kept")
    for key, r in report.items():
        b, i, h = r["before"], r["in_sample"], r["held_out"]
        typer.echo(f"moe:{key:<8} {b['rows']:>6}  {b['median_abs_pct_err']:>8.1f} /{b['p90_abs_pct_err']:>6.1f}  "
                   f"{i['median_abs_pct_err']:>5.1f} /{i['p90_abs_pct_err']:>5.1f}  {h['median_abs_pct_err']:>8.1f} /"
                   f"{h['p90_abs_pct_err']:>5.1f}  {'yes' if r['kept'] else 'no'}")
    typer.echo(f"wrote {hw.source}")


def _med_max(err: dict | None) -> str:
    """``median / max`` of an error dict, or ``-``."""
    return "-" if not err else f"{err['median_abs_pct_err']:.1f} / {err['max_abs_pct_err']:.1f}"


@calibrate_app.command("spec")
@_user_errors
def calibrate_spec(
    profile: str = typer.Option("h100_sxm", "--profile", help="profile name or YAML path (its speculation section)"),
    measured: Optional[Path] = typer.Option(None, "--measured", help="spec_decode_measured.md (default ../shared/reference)"),
    write: bool = typer.Option(False, "--write", help="write the fitted speculation section into the profile"),
) -> None:
    """Fit the speculative-decoding terms (drafting, verification, host, n-gram) to the measured
    step-time decomposition; print in-sample and held-out errors; optionally store them."""
    from rlsim.calibration.spec import fit_all, read_decomposition, read_legacy_tpot, write_section
    from rlsim.hardware import load_profile

    hw = load_profile(profile)
    legacy = read_legacy_tpot(None if measured is None else measured.with_name("hardware_and_models.md"))
    params, report = fit_all(hw, read_decomposition(measured), legacy)
    typer.echo(f"{'term':<14} {'before med/max %':>17} {'in-sample med/max %':>20} {'held-out (batch) %':>19} "
               f"{'held-out (ctx) %':>17}")
    for name, r in report["terms"].items():
        cells = [r.get(key) for key in ("before", "in_sample", "leave_one_batch_out", "leave_one_context_out")]
        typer.echo(f"{name:<14} " + " ".join(f"{_med_max(c):>18}" for c in cells))
    typer.echo(", ".join(f"{k} = {v:g}" for k, v in params.items()))
    if write:
        write_section(Path(hw.source), params, report, "0.10.1-0.11.1")
        typer.echo(f"wrote the speculation section of {hw.source}")


@calibrate_app.command("acceptance")
@_user_errors
def calibrate_acceptance(
    traces: Optional[Path] = typer.Option(None, "--traces", help="acceptance-trace summary CSV (default ../shared/reference)"),
    write: bool = typer.Option(False, "--write", help="write the fitted models into rlsim/catalog"),
) -> None:
    """Fit bursty (regime) acceptance models to measured acceptance traces, per dataset and
    method; print the AL and per-request spread errors per k."""
    from rlsim.calibration.acceptance import CATALOG, default_traces, fit_acceptance, read_traces, write_catalog

    path = traces or default_traces()
    models, report = fit_acceptance(read_traces(path))
    typer.echo(f"{'model':<22} {'fitted':<70} max |AL err| %  max |spread err| %")
    for name, m in models.items():
        errs = report[name].values()
        fields = ", ".join(f"{k}={v}" for k, v in m.items() if k != "kind")
        typer.echo(f"{name:<22} {fields:<70} {max(abs(e['al_err_pct']) for e in errs):>13.2f}  "
                   f"{max(abs(e['spread_err_pct']) for e in errs):>17.1f}")
    if write:
        write_catalog(models, report, path)
        typer.echo(f"wrote {CATALOG}")


@calibrate_app.command("check")
@_user_errors
def calibrate_check(
    profile: str = typer.Option(..., "--profile", help="profile name or YAML path"),
    traces: Path = typer.Option(..., "--traces", help="measurements (same layouts as calibrate fit)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write {key: {n, median_abs_pct_err, p90_abs_pct_err}} here"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write parity plots (PNG) into this folder"),
    relevant: bool = typer.Option(False, "--relevant", help="only shapes the catalog models produce"),
    patterns: Optional[Path] = typer.Option(None, "--patterns", help="JSON/YAML kernel-name pattern table for Chrome traces"),
    table_mode: bool = typer.Option(False, "--table-mode", help="also report table mode's held-out error "
                                    "(kernel_tables over these measurements, each size left out in turn)"),
) -> None:
    """Predict every measured row with the cost model and print the error per op class and dtype."""
    from rlsim.calibration import check_profile, parity_plots, render_check

    hw, result = check_profile(profile, traces, relevant=relevant, patterns=patterns, table_mode=table_mode)
    typer.echo(render_check(result, hw, str(traces), relevant))
    if json_out is not None:
        doc = dict(result["keys"])
        doc.update({f"{k}@table_mode": v for k, v in result.get("table_mode", {}).items()})
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            from rlsim.errors import ConfigError

            raise ConfigError(f"--json = {str(json_out)!r}: cannot write ({exc.strerror})") from None
        typer.echo(f"wrote {json_out}")
    if plots is not None:
        paths = parity_plots(result, plots, title=f"{hw.name} vs {traces}")
        typer.echo(f"wrote {len(paths)} parity plots to {plots}")


@calibrate_app.command("e2e")
@_user_errors
def calibrate_e2e_cmd(
    measurements: Path = typer.Option(..., "--measurements", help="measured runs: the shared/e2e CSV layout or a folder "
                                      "of vllm bench serve --save-result JSON files (see rlsim.serving.measured)"),
    profile: List[str] = typer.Option(..., "--profile", help="profile name, YAML path or folder; repeatable, one per system"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the fitted profiles into this folder instead of in place"),
    rounds: int = typer.Option(2, "--rounds", min=1, help="fit / re-simulate rounds"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes simulating rows"),
    heldout: bool = typer.Option(True, "--heldout/--no-heldout", help="also report leave-one-model-out error"),
) -> None:
    """Fit each profile's engine-level overheads (not its kernels) to its system's measured
    end-to-end runs, and write them with their provenance."""
    from rlsim.calibration.e2e import (calibrate_e2e, error_report, held_out_results, profile_overheads,
                                       profiles_by_system, render_e2e_check, write_fitted_profile)
    from rlsim.serving.measured import read_measurements

    runs = read_measurements(measurements)
    for system, path in profiles_by_system(profile).items():
        rows = [r for r in runs if r.system == system]
        if not rows:
            typer.echo(f"{system}: no measured rows, profile unchanged", err=True)
            continue
        start = profile_overheads(path)
        with _progress_bar(f"fit {system}") as bar:
            params, fit, results = calibrate_e2e(rows, path, start, rounds, workers, bar)
        report = error_report(results)
        held = None
        if heldout:
            with _progress_bar(f"held out {system}") as bar:
                held_results, held_params = held_out_results(rows, results, start, workers, bar)
            held = error_report(held_results)
        target = (out / Path(path).name if Path(path).suffix else out / f"{system}.yaml") if out else None
        hw = write_fitted_profile(path, params, fit, report, held, str(measurements), target,
                                  held_params if heldout else None)
        typer.echo(f"{system}: {len(fit.free)} parameters fitted ({', '.join(fit.free)}): "
                   + ", ".join(f"{k} = {params[k]:.3g}" for k in fit.free))
        typer.echo(render_e2e_check(report, results))
        if held is not None:
            typer.echo("\nleave one model out:\n" + render_e2e_check(held, held_results, worst=0))
        typer.echo(f"wrote {hw.source}")


@calibrate_app.command("e2e-check")
@_user_errors
def calibrate_e2e_check(
    measurements: Path = typer.Option(..., "--measurements", help="measured runs (see calibrate e2e)"),
    profile: Optional[List[str]] = typer.Option(None, "--profile", help="profile name, YAML path or folder; repeatable "
                                                "(default: the shipped profile of each row's system)"),
    heldout: bool = typer.Option(False, "--heldout", help="predict each model with overheads fitted without it"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the error report as JSON here"),
    workers: int = typer.Option(1, "--workers", min=1, help="processes simulating rows"),
) -> None:
    """Simulate every measured run and print, per (system, model), rows, median and p90 |error|
    of TPOT and TTFT, the signed bias, and the worst rows."""
    from rlsim.calibration.e2e import (error_report, held_out_results, profile_overheads, profiles_by_system,
                                       render_e2e_check, simulate_rows)
    from rlsim.serving.measured import read_measurements

    runs = read_measurements(measurements)
    profiles = profiles_by_system(profile or [])
    if json_out is not None:
        _check_json_out(json_out)
    with _progress_bar("e2e-check") as bar:
        results = simulate_rows(runs, profiles, workers, bar, record=heldout)
    if heldout:
        held: list = []
        for system in sorted({r.system for r in runs}):
            rows = [r for r in runs if r.system == system]
            start = profile_overheads(profiles.get(system, system))
            mine = [res for res in results if res.run.system == system]
            with _progress_bar(f"held out {system}") as bar:
                held += held_out_results(rows, mine, start, workers, bar)[0]
        results = held
    report = error_report(results)
    typer.echo(render_e2e_check(report, results))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"wrote {json_out}")


def _check_json_out(path: Path) -> None:
    from rlsim.errors import ConfigError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"--json = {str(path)!r}: cannot write ({exc.strerror})") from None


@calibrate_app.command("transfer")
@_user_errors
def calibrate_transfer(
    source: str = typer.Option(..., "--from", help="calibrated profile (name or path) of the same architecture"),
    target: str = typer.Option(..., "--to", help="profile to receive its efficiencies (datasheet kept); rewritten in place"),
    out: Optional[Path] = typer.Option(None, "--out", help="write here instead of rewriting --to"),
) -> None:
    """Give a GPU without measurements the efficiencies of a calibrated one (status: transferred)."""
    from rlsim.calibration.transfer import transfer_efficiencies

    hw = transfer_efficiencies(source, target, out=out)
    typer.echo(f"wrote {hw.source} ({hw.calibration.status}: {hw.calibration.source})")


_ENGINE = "vllm serve"
_CLIENT = "vllm bench serve"


@app.command()
@_user_errors
def bench(
    scenario: Optional[Path] = typer.Argument(None, help="scenario YAML with a serving: section (optional: flags alone work)"),
    model: Optional[str] = typer.Option(None, "--model", help="catalog name or config.json path", rich_help_panel=_ENGINE),
    hardware: Optional[str] = typer.Option(None, "--hardware", help="hardware profile (h100_sxm, b200_sxm, ...)", rich_help_panel=_ENGINE),
    tensor_parallel_size: Optional[int] = typer.Option(None, "--tensor-parallel-size", "-tp", rich_help_panel=_ENGINE),
    data_parallel_size: Optional[int] = typer.Option(None, "--data-parallel-size", "-dp", rich_help_panel=_ENGINE),
    enable_expert_parallel: Optional[bool] = typer.Option(None, "--enable-expert-parallel/--no-enable-expert-parallel", rich_help_panel=_ENGINE),
    quantization: Optional[str] = typer.Option(None, "--quantization", "-q", rich_help_panel=_ENGINE),
    kv_cache_dtype: Optional[str] = typer.Option(None, "--kv-cache-dtype", rich_help_panel=_ENGINE),
    max_num_seqs: Optional[int] = typer.Option(None, "--max-num-seqs", rich_help_panel=_ENGINE),
    max_num_batched_tokens: Optional[int] = typer.Option(None, "--max-num-batched-tokens", rich_help_panel=_ENGINE),
    max_model_len: Optional[int] = typer.Option(None, "--max-model-len", rich_help_panel=_ENGINE),
    gpu_memory_utilization: Optional[float] = typer.Option(None, "--gpu-memory-utilization", rich_help_panel=_ENGINE),
    enforce_eager: Optional[bool] = typer.Option(None, "--enforce-eager/--no-enforce-eager", rich_help_panel=_ENGINE),
    enable_prefix_caching: Optional[bool] = typer.Option(None, "--enable-prefix-caching/--no-enable-prefix-caching", rich_help_panel=_ENGINE),
    async_scheduling: Optional[bool] = typer.Option(None, "--async-scheduling/--no-async-scheduling", rich_help_panel=_ENGINE),
    speculative_config: Optional[str] = typer.Option(None, "--speculative-config", help="JSON, vLLM's keys + an acceptance model", rich_help_panel=_ENGINE),
    num_prompts: Optional[int] = typer.Option(None, "--num-prompts", rich_help_panel=_CLIENT),
    max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency", rich_help_panel=_CLIENT),
    request_rate: Optional[float] = typer.Option(None, "--request-rate", help="requests/s (inf: all at once)", rich_help_panel=_CLIENT),
    burstiness: Optional[float] = typer.Option(None, "--burstiness", rich_help_panel=_CLIENT),
    random_input_len: Optional[int] = typer.Option(None, "--random-input-len", rich_help_panel=_CLIENT),
    random_output_len: Optional[int] = typer.Option(None, "--random-output-len", rich_help_panel=_CLIENT),
    random_range_ratio: Optional[float] = typer.Option(None, "--random-range-ratio", rich_help_panel=_CLIENT),
    random_prefix_len: Optional[int] = typer.Option(None, "--random-prefix-len", rich_help_panel=_CLIENT),
    dataset_path: Optional[str] = typer.Option(None, "--dataset-path", help="CSV with input_len, output_len columns", rich_help_panel=_CLIENT),
    seed: Optional[int] = typer.Option(None, "--seed", rich_help_panel=_CLIENT),
    metric_percentiles: str = typer.Option("99", "--metric-percentiles", help="comma-separated, e.g. 50,90,99", rich_help_panel=_CLIENT),
    save_result: Optional[Path] = typer.Option(None, "--save-result", help="write the result JSON (vLLM's keys) here", rich_help_panel=_CLIENT),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override any scenario field: path=value; repeatable"),
    json_: bool = typer.Option(False, "--json", help="print the result JSON instead of the report"),
    report: Optional[Path] = typer.Option(None, "--report", help="write one self-contained HTML page of the result"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar (-q is vLLM's --quantization here)"),
    work_limit: float = typer.Option(_HARD_LIMIT, "--work-limit", help="refuse benchmarks estimated above this many "
                                     "token-equivalents (0 = no limit; see the README's robustness section)"),
) -> None:
    """A simulated `vllm bench serve`: the flags of `vllm serve` and `vllm bench serve` (or a
    scenario with a serving: section); prints vLLM's report, --save-result writes its JSON."""
    from rlsim.serving.bench_cli import run_bench

    flags = {k: v for k, v in locals().items()
             if k not in ("scenario", "metric_percentiles", "save_result", "set_", "json_", "work_limit", "report", "quiet")}
    _check_work_limit(work_limit)
    with _progress_bar("bench: requests finished", quiet) as bar:
        result, text = run_bench(scenario, flags, set_ or [], metric_percentiles, save_result, work_limit, progress=bar)
    typer.echo(json.dumps(result, indent=2, sort_keys=True) if json_ else text)
    for w in result.get("warnings", []):
        typer.echo(f"warning: {w}", err=True)
    if save_result is not None:
        typer.echo(f"wrote {save_result}", err=True)
    if report is not None:
        from rlsim.results.html_report import bench_report

        typer.echo(f"wrote {bench_report(result, text, None, report)}", err=True)


@app.command()
@_user_errors
def sweep(
    scenario: Path = typer.Argument(..., help="scenario YAML (see scenarios/)"),
    grid: Optional[List[str]] = typer.Option(None, "--grid", help="path=v1,v2,... (YAML values; a..b = integer range); "
                                             "repeatable, full factorial"),
    zip_: Optional[List[str]] = typer.Option(None, "--zip", help="path=v1,v2,...; repeatable, zipped together (same length)"),
    out: Path = typer.Option(..., "--out", help="results parquet: streamed as points finish; rerun to resume"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field for every point: path=value; repeatable"),
    seed: Optional[int] = typer.Option(None, "--seed", help="first seed (default: the scenario's)"),
    seeds: int = typer.Option(1, "--seeds", min=1, help="run seeds SEED..SEED+N-1 for every point"),
    backend: str = typer.Option("local", "--backend", help="local (process pool) or ray"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="parallel workers (default: all CPUs; ray: local instance CPUs)"),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address (auto, ray://host:10001); default a local instance"),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="skip the no-speculation baselines (no speedup columns)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    work_limit: float = typer.Option(_HARD_LIMIT, "--work-limit",
                                     help="refuse sweeps whose points together are estimated above this many "
                                          "token-equivalents (0 = no limit; see the README's robustness section)"),
) -> None:
    """Sweep SCENARIO over --grid / --zip values; one row per point and seed in --out, with its
    error when it is infeasible or fails; the no-speculation baseline is simulated once per
    distinct non-speculative setting and shared."""
    from rlsim.analysis.sweep import summarize
    from rlsim.analysis.sweep import sweep as run_sweep

    if not grid and not zip_:
        from rlsim.errors import ConfigError

        raise ConfigError("sweep: give at least one --grid or --zip axis")
    _check_work_limit(work_limit)
    with _progress_bar("sweep", quiet) as bar:
        df = run_sweep(scenario, grid or [], zip_ or [], overrides=set_ or [], seeds=seeds, seed=seed, out=out,
                       backend=backend, workers=workers, address=address, baseline=not no_baseline, progress=bar,
                       work_limit=work_limit, warn=lambda line: typer.echo(f"warning: {line}", err=True))
    typer.echo(summarize(df))
    typer.echo(f"\nwrote {out}")


@app.command()
@_user_errors
def plan(
    scenario: Path = typer.Argument(..., help="RL scenario YAML (with an rl: section)"),
    target_step_time_s: float = typer.Option(..., "--target-step-time-s", help="the steady-state RL step time to reach"),
    gpus: str = typer.Option("h100_sxm,b200_sxm,gb200", "--gpus", help="comma-separated hardware profiles to consider"),
    max_gpus: Optional[int] = typer.Option(None, "--max-gpus", min=1, help="largest cluster to consider (default: the scenario's)"),
    out: Path = typer.Option(Path("plan"), "--out", help="folder for plan.md, pareto.png, points.csv"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field of every point (e.g. rl.num_steps=3)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="parallel workers (default: all CPUs)"),
    k_values: str = typer.Option("2,3,4", "--k", help="speculative k values to try (besides no speculation)"),
    objective: str = typer.Option("fewest-gpus", "--objective",
                                  help="fewest-gpus | cheapest-step | cheapest-run | fastest (meeting the target)"),
    run_steps: int = typer.Option(1000, "--run-steps", min=1, help="steps of a run, for --objective cheapest-run"),
    report: Optional[Path] = typer.Option(None, "--report", help="write plan.md as one self-contained HTML page"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """The cluster that reaches a target step time (default: the fewest GPUs): screens GPU
    kinds, cluster sizes and rollout / trainer layouts (TP, EP, PP, split) against memory,
    searches down to the smallest size meeting the target, then refines split, rollout TP/EP
    and k (with and without speculation); writes plan.md, pareto.png, points.csv and
    layouts.csv (every layout tried, with why it does not fit)."""
    from rlsim.analysis.plan import run_plan

    _prepare_out(out)
    t0 = time.perf_counter()
    with _progress_bar("plan", quiet) as bar:
        result = run_plan(scenario, target_step_time_s, gpus=[g.strip() for g in gpus.split(",") if g.strip()],
                          max_gpus=max_gpus, out=out, overrides=set_ or [], workers=workers,
                          k_values=_int_list(k_values, "--k"), progress=bar, objective=objective,
                          run_steps=run_steps)
    from rlsim.config import load_scenario
    from rlsim.results.reproduce import write_reproduction

    loaded = load_scenario(scenario, set_ or [])
    result.paths += write_reproduction(out, loaded, set_ or [],
                                       {"target_step_time_s": target_step_time_s, "gpus": gpus, "max_gpus": max_gpus,
                                        "objective": objective, "run_steps": run_steps, "k": k_values})
    if report is not None:
        from rlsim.results.html_report import plan_report

        result.paths.append(plan_report(out / "plan.md", loaded.raw, report))
    typer.echo(result.headline)
    typer.echo(f"\nwrote {', '.join(str(p) for p in result.paths)} in {time.perf_counter() - t0:.0f} s")


@app.command("import")
@_user_errors
def import_(
    framework: str = typer.Argument(..., help="nemo-rl or verl"),
    config: Path = typer.Argument(..., help="the framework's GRPO config YAML"),
    hardware: str = typer.Option("h100_sxm", "--hardware", help="GPU kind (the configs name none)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the scenario YAML here (default: stdout)"),
) -> None:
    """A NeMo-RL or verl GRPO config -> a scenario YAML; reports every key used, ignored or
    unknown, and every default the config cannot set (stderr)."""
    import yaml

    from rlsim._yaml import read_yaml_mapping
    from rlsim.config.importers import import_config
    from rlsim.config.loader import scenario_from_dict

    rep = import_config(framework, read_yaml_mapping(config, f"{framework} config"), hardware)
    scenario_from_dict(rep.scenario, f"{config} (imported)")  # what it maps to validates
    text = yaml.safe_dump(rep.scenario, sort_keys=False)
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)
    typer.echo(rep.render(), err=True)
    if out is not None:
        typer.echo(f"wrote {out}", err=True)


@app.command()
@_user_errors
def export(
    target: str = typer.Argument(..., help="vllm (a vllm serve command line) or nemo-rl (a GRPO config fragment)"),
    scenario: Path = typer.Argument(..., help="scenario YAML"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field: path=value; repeatable"),
    plan_dir: Optional[Path] = typer.Option(None, "--plan", help="apply the recommended point of an rlsim plan --out DIR"),
) -> None:
    """Print the scenario (or the plan's recommended point) as `vllm serve` flags or a NeMo-RL
    config fragment."""
    from rlsim.config import load_scenario
    from rlsim.config.exporters import nemo_rl_fragment, vllm_serve_command
    from rlsim.errors import ConfigError

    if target not in ("vllm", "nemo-rl"):
        raise ConfigError(f"export: target {target!r} must be vllm or nemo-rl")
    overrides = list(set_ or [])
    if plan_dir is not None:
        rec = plan_dir / "recommended.json"
        if not rec.is_file():
            raise ConfigError(f"--plan = {str(plan_dir)!r}: recommended.json not found (no point met the target?)")
        overrides = [f"{k}={json.dumps(v)}" for k, v in sorted(json.loads(rec.read_text()).items())] + overrides
    loaded = load_scenario(scenario, overrides)
    typer.echo(vllm_serve_command(loaded) if target == "vllm" else nemo_rl_fragment(loaded))


def _int_list(text: str, option: str) -> list[int]:
    from rlsim.errors import ConfigError

    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} = {text!r} must be comma-separated integers") from None
    if not vals or min(vals) < 1:
        raise ConfigError(f"{option} = {text!r} must list integers >= 1")
    return vals


def _progress_bar(what: str, quiet: bool = False):
    """A progress bar on stderr fed by ``progress(done, total, row)`` callbacks (rlsim.results.progress:
    rich on a terminal, tqdm in a notebook, nothing under --quiet or when stderr is not a terminal)."""
    from rlsim.results.progress import ProgressBar

    return ProgressBar(what, quiet)


def main() -> None:
    """Console-script entry point: usage mistakes and RlsimError print one line, exit 2."""
    exc = _click_exceptions()
    try:
        rv = app(standalone_mode=False)
    except exc.UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            typer.echo(err.ctx.get_help() if err.ctx else str(err))
            sys.exit(0)
        typer.echo(f"error: {err.format_message()}", err=True)
        sys.exit(2)
    except (getattr(exc, "Exit", typer.Exit), typer.Exit) as err:
        sys.exit(getattr(err, "exit_code", 0))
    except (getattr(exc, "Abort", typer.Abort), typer.Abort):
        typer.echo("aborted", err=True)
        sys.exit(1)
    except RlsimError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


def _click_exceptions():
    """click's exception module (typer >= 0.22 vendors click as typer._click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer depends on click
        from click import exceptions
    return exceptions


def _prepare_out(out: Path) -> None:
    """Create ``--out`` and prove it writable (a probe file created and removed) before
    simulating, so a bad folder fails fast and nothing is lost."""
    from rlsim._paths import check_path_text
    from rlsim.errors import ConfigError, short_repr
    from rlsim.results.atomic import probe_writable

    check_path_text(str(out), None, "--out")
    shown = short_repr(str(out))
    try:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out = {shown}: exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        probe_writable(out)
    except OSError as exc:
        raise ConfigError(f"--out = {shown}: cannot write there ({exc.strerror or exc})") from None
