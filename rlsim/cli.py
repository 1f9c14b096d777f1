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


def _user_errors(fn: Callable) -> Callable:
    """Print RlsimError as one line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RlsimError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


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
    out = [_table(rows, f"rollout: {s['scenario']} (seed {s['seed']})")]
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
    ], "memory and assumptions:"))
    for w in s.get("warnings", [])[1:]:  # the first (calibration status) is in the table above
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
        f"  per-position acceptance       {pos}",
        f"  draft acceptance rate         {100 * s['draft_acceptance_rate']:.1f} %",
        f"  drafter ({sp['drafter']})   {100 * br.get('drafting', 0.0):.1f} % of engine time; "
        f"iterations with drafts {100 * sp['spec_iterations_frac']:.1f} %",
        f"  why: tokens per target pass rise {s['mean_acceptance_length']:.2f}x at the cost of verify passes over "
        f"{1 + sp['num_speculative_tokens']} tokens per sequence and the drafter",
    ]
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
    scenario: Path = typer.Argument(..., help="scenario YAML (see scenarios/)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a field: path.to.field=value (YAML value); repeatable"),
    out: Optional[Path] = typer.Option(None, "--out", help="write summary.json, parquet tables, PNG and trace.json here"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the scenario's seed)"),
    seeds: int = typer.Option(1, "--seeds", min=1, help="run seeds SEED..SEED+N-1 and report mean and 95 % interval"),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="with speculative_config: skip the paired no-speculation run"),
    json_: bool = typer.Option(False, "--json", help="print summary.json to stdout instead of the table"),
) -> None:
    """Simulate one RL rollout batch of SCENARIO and explain where the time went.

    With a speculative_config the no-speculation baseline runs on the identical sequences and
    the speedup is reported."""
    from rlsim.api import simulate_seeds

    if out is not None:
        _prepare_out(out)
    t0 = time.perf_counter()
    results, stats = simulate_seeds(scenario, seeds, overrides=set_ or [], seed=seed, baseline=not no_baseline)
    wall = time.perf_counter() - t0
    result = results[0]
    if seeds > 1:
        result.summary["seeds"] = stats
    if json_:
        typer.echo(json.dumps(result.summary, indent=2, sort_keys=True))
    else:
        typer.echo(render_rollout(result.summary, wall))
        if "speedup" in result.summary:
            typer.echo("\n" + render_speculation(result.summary))
        if seeds > 1:
            typer.echo("\n" + render_seeds(stats))
    if out is not None:
        from rlsim.results import write_outputs

        paths = write_outputs(result, out, title=result.summary["scenario"])
        typer.echo(f"\nwrote {', '.join(str(p) for p in paths)}", err=json_)


@acceptance_app.command("from-vllm")
@_user_errors
def acceptance_from_vllm(
    source: str = typer.Argument(..., help="file with vLLM output, or - for stdin: 'SpecDecoding metrics:' log "
                                           "lines, a Prometheus /metrics dump, or vllm bench serve's section"),
) -> None:
    """Print the acceptance YAML to paste under speculative_config, from what vLLM printed."""
    from rlsim.speculation.ingest import acceptance_yaml, parse_vllm_spec_metrics, read_metrics_source

    text = read_metrics_source(source)
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
    """Create ``--out`` before simulating, so a bad folder fails fast and nothing is lost."""
    from rlsim.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out = {str(out)!r}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out = {str(out)!r}: cannot create the folder ({exc.strerror})") from None
