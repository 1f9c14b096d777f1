"""Parameter sweeps over any scenario field (DESIGN 11): ``rlsim sweep`` and ``rlsim.sweep``.

``sweep(scenario, grid={...}, zip={...}, seeds=N, out="results.parquet")`` expands the points
(:mod:`rlsim.analysis.points`), runs them on a local process pool or Ray
(:mod:`rlsim.analysis.backends`) and returns one row per (point, seed), in point order:

* the axis values (one column per field path), ``seed``, ``point_id`` (the resume key),
  ``status`` (``ok`` / ``infeasible`` / ``error``) and ``error`` (the one-line reason);
* the point's metrics (RL: steady-state ``step_time_s`` and its split, ``generation_makespan_s``,
  ``rollout_tokens_per_s``, ``mean_acceptance_length``...; rollout-only: ``rollout_time_s``...),
  ``k`` (0 = no speculation), hardware, GPUs and its calibration status;
* with a ``speculative_config``: ``baseline_*`` (the same point without speculation) and
  ``speedup_*`` (RL: ``end_to_end``, ``generation``, ``rollout_throughput``, and for async /
  disaggregated pipelines ``end_to_end_vs_sync``; rollout: ``speedup_rollout``).

Speed: the baseline depends on neither k nor the acceptance model, so it is simulated once per
distinct remaining scenario (:func:`rlsim.analysis.points.baseline_key`) and shared.

Resume: every finished task is appended to ``OUT.journal.jsonl`` at once (a killed sweep loses
at most the tasks in flight) and ``OUT`` is rewritten atomically every few seconds and at the
end.  The journal is kept: it is the source of truth, so a results file that cannot be read is
set aside (``OUT.corrupt``) and rebuilt from it, and a corrupted journal line is reported and
skipped (the results file still holds that point).  Rerunning the same sweep skips every point
whose key is in ``OUT`` or the journal with status ``ok`` or ``infeasible``; ``error`` points
(crashes, non-finite results) are retried.  Rows of other points already in ``OUT`` are kept
after the current ones.

Bounded: at most :data:`rlsim.config.work.MAX_POINTS` points, and the summed work estimate of
every point and seed (:mod:`rlsim.config.work`) is checked against ``work_limit`` before any
point runs.  Worker processes end with the sweep, however it ends (``kill -9`` included).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from rlsim.analysis.backends import default_workers, run_local, run_ray
from rlsim.analysis.points import (baseline_key, check_path, expand, file_sha, overrides_of, parse_axis,
                                   point_key)
from rlsim._paths import check_path_text
from rlsim.analysis.worker import load_text
from rlsim.config.work import HARD_LIMIT, MAX_POINTS, check_sweep_work, estimate
from rlsim.errors import ConfigError, RlsimError, short_repr
from rlsim.results.atomic import probe_writable

__all__ = ["sweep", "summarize", "SPEEDUP_COLUMNS"]

SPEEDUP_COLUMNS = ("speedup_end_to_end", "speedup_generation", "speedup_rollout_throughput",
                   "speedup_end_to_end_vs_sync", "speedup_rollout")
_META = ("point", "point_id", "seed", "status", "error", "params", "overrides", "baseline_key", "baseline_status",
         "baseline_error")
_WRITE_EVERY_S = 5.0


def _axes(spec, option: str) -> list[tuple[str, list]]:
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        axes = []
        for p, v in spec.items():
            if isinstance(v, str):
                axes.append(parse_axis(f"{p}={v}", option))
            else:
                axes.append((str(p), list(v)))
    else:
        axes = [parse_axis(s, option) for s in ([spec] if isinstance(spec, str) else spec)]
    for p, vals in axes:
        if not vals:
            raise ConfigError(f"{option} {p}: no values")
        check_path(p, option)
    return axes


def _clean(v):
    """Parquet / numpy values back to plain Python (NaN -> None)."""
    if v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


class _Store:
    """``OUT`` (parquet, rewritten atomically) + ``OUT.journal.jsonl`` (append per task)."""

    def __init__(self, out: Path | None):
        self.out = out
        self.journal = Path(str(out) + ".journal.jsonl") if out is not None else None
        self.points: dict[str, dict] = {}      # point key -> point result
        self.baselines: dict[str, dict] = {}   # baseline key -> baseline result
        self.old_rows: list[dict] = []         # rows of OUT (kept if not re-listed)
        self._fh = None
        self._last_write = 0.0
        self.warnings: list[str] = []

    def load(self) -> None:
        """Rows of ``OUT`` and records of the journal.  The journal is the source of truth: a
        results file that cannot be read is set aside (``OUT.corrupt``) and rebuilt from it;
        without a journal such a file is refused (it may be someone else's)."""
        if self.out is None:
            return
        if self.out.exists():
            try:
                df = pd.read_parquet(self.out)
                if "point_id" not in df.columns:
                    raise ValueError("no point_id column")
                rows = [{k: _clean(v) for k, v in rec.items()} for rec in df.to_dict("records")]
                for row in rows:
                    self._from_row(row)
                self.old_rows = rows
            except Exception as exc:  # noqa: BLE001 - a foreign, truncated or garbled file
                self.points.clear()
                self.baselines.clear()
                why = short_repr(str(exc)).strip("'\"")
                if not self.journal.exists():
                    raise ConfigError(f"--out = {str(self.out)!r}: exists but is not a sweep results parquet ({why}) "
                                      "and there is no journal to rebuild it from") from None
                aside = self.out.with_name(self.out.name + ".corrupt")
                os.replace(self.out, aside)
                self.warnings.append(f"{self.out}: not a readable sweep results file ({why}); moved to {aside}, "
                                     f"rows rebuilt from {self.journal}")
        if self.journal.exists():
            self._read_journal()

    def _read_journal(self) -> None:
        """Every complete record of the journal; a corrupted line is reported and skipped."""
        try:
            data = self.journal.read_bytes()
        except OSError as exc:
            self.warnings.append(f"{self.journal}: cannot be read ({exc.strerror}); ignored")
            return
        lines = data.split(b"\n")
        bad: list[str] = []
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            problem = None
            try:
                rec = json.loads(raw.decode("utf-8"))
                if not (isinstance(rec, dict) and rec.get("type") in ("point", "baseline")
                        and isinstance(rec.get("key"), str) and isinstance(rec.get("result"), dict)
                        and rec["result"].get("status") in ("ok", "infeasible", "error")):
                    problem = "not a sweep record"
            except UnicodeDecodeError:
                problem = "not UTF-8 text"
            except ValueError:
                problem = "cut short (the sweep was killed while writing it)" if n == len(lines) else "not JSON"
            if problem is not None:
                bad.append(f"line {n} {problem}")
                continue
            (self.points if rec["type"] == "point" else self.baselines)[rec["key"]] = rec["result"]
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            self.warnings.append(f"{self.journal}: skipped {len(bad)} corrupted line(s): {'; '.join(bad[:3])}{more}")

    def _from_row(self, row: dict) -> None:
        params = set(json.loads(row.get("params") or "{}"))
        res = {k: v for k, v in row.items()
               if k not in _META and k not in params and not k.startswith(("baseline_", "sync_", "speedup_"))}
        self.points[row["point_id"]] = {"status": row["status"], "error": row.get("error"), **res}
        bk = row.get("baseline_key")
        if bk and row.get("baseline_status") in ("ok", "infeasible"):
            base = {k: v for k, v in row.items() if k.startswith(("baseline_", "sync_")) and k not in _META}
            self.baselines[bk] = {"status": row["baseline_status"], "error": row.get("baseline_error"), **base}

    def record(self, kind: str, key: str, result: dict) -> None:
        (self.points if kind == "point" else self.baselines)[key] = result
        if self.journal is None:
            return
        if self._fh is None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.journal.open("a", encoding="utf-8")
        self._fh.write(json.dumps({"type": kind, "key": key, "result": result}) + "\n")
        self._fh.flush()

    def write(self, df: pd.DataFrame, force: bool = False, final: bool = False) -> None:
        if self.out is None or (not force and time.monotonic() - self._last_write < _WRITE_EVERY_S):
            return
        tmp = self.out.with_name(self.out.name + ".tmp")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.out)
        self._last_write = time.monotonic()
        if final and self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _cost(sc) -> float:
    """Relative simulation cost of a point (for longest-first scheduling)."""
    steps = (sc.rl.num_steps or sc.rl.convergence.max_steps // 2) if sc.rl is not None else 1
    return float(sc.workload.num_sequences_per_step * steps)


def _speedups(row: dict) -> dict:
    def ratio(a, b):
        x, y = row.get(a), row.get(b)
        return x / y if (x is not None and y is not None and y > 0) else None

    if "step_time_s" in row:
        return {"speedup_end_to_end": ratio("baseline_step_time_s", "step_time_s"),
                "speedup_generation": ratio("baseline_generation_makespan_s", "generation_makespan_s"),
                "speedup_rollout_throughput": ratio("rollout_tokens_per_s", "baseline_rollout_tokens_per_s"),
                **({"speedup_end_to_end_vs_sync": ratio("sync_step_time_s", "step_time_s")}
                   if "sync_step_time_s" in row else {})}
    return {"speedup_rollout": ratio("baseline_rollout_time_s", "rollout_time_s")}


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _frame(rows: list[dict], param_cols: list[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=["point", "point_id", "seed", *param_cols, "status", "error"])
    cols: list[str] = []
    seen = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    lead = ["point", "point_id", "seed", *[c for c in param_cols if c in seen], "status", "error"]
    rest = [c for c in cols if c not in lead]
    tail = [c for c in ("params", "overrides") if c in rest]
    body = [c for c in rest if c not in tail]
    df = pd.DataFrame(rows, columns=lead + body + tail)
    for c in df.columns:
        if c in param_cols or c in _META:
            vals = [v for v in df[c] if not _missing(v)]
            if vals and len({type(v) for v in vals}) > 1 and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                df[c] = [None if _missing(v) else json.dumps(v) if not isinstance(v, str) else v for v in df[c]]
            elif vals and all(isinstance(v, (list, dict)) for v in vals):
                df[c] = [None if _missing(v) else json.dumps(v) for v in df[c]]
            continue
        vals = [v for v in df[c] if v is not None]
        if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("Int64")
        elif vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("float64")
        elif vals and all(isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("boolean")
    for c in ("point", "seed"):
        df[c] = df[c].astype("int64")
    return df


def sweep(
    scenario: str | Path,
    grid=None,
    zip=None,  # noqa: A002 - the CLI's --zip
    *,
    points: list[dict] | None = None,
    overrides: Iterable[str] = (),
    seeds: int = 1,
    seed: int | None = None,
    out: str | Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    baseline: bool = True,
    progress: Callable[[int, int, dict | None], None] | None = None,
    work_limit: float | None = HARD_LIMIT,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run a sweep and return one row per (point, seed) -- see the module docstring.

    ``grid`` / ``zip``: ``{"path": [v1, v2]}`` or ``["path=v1,v2", ...]`` (CLI syntax);
    ``points``: an explicit list of ``{path: value}`` points instead.  ``overrides``: ``--set``
    applied to every point.  ``seeds``: seeds ``seed .. seed + seeds - 1`` (default: the
    scenario's seed).  ``out``: parquet file to stream to and resume from.  ``backend``:
    ``local`` (process pool of ``workers``, default all CPUs) or ``ray`` (``address`` of an
    existing cluster, or None for a local instance).  ``baseline=False`` skips the
    no-speculation baselines.  ``progress(done, total, row)`` is called as rows complete.
    ``df.attrs["stats"]`` counts points computed / resumed and the wall time.  ``work_limit``:
    the largest summed work estimate (:mod:`rlsim.config.work`; None or 0: no limit).
    ``warn(line)`` receives warnings (a large sweep, a corrupted journal line or results file);
    they are also in ``df.attrs["warnings"]``.
    """
    warnings_seen: list[str] = []

    def warn_once(line: str) -> None:
        warnings_seen.append(line)
        if warn is not None:
            warn(line)

    t0 = time.perf_counter()
    path = Path(scenario)
    overrides = list(overrides or [])
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend = {backend!r} must be local or ray")
    if seeds < 1:
        raise ConfigError(f"--seeds = {seeds} must be >= 1")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers = {workers} must be >= 1")
    from rlsim.config import load_scenario

    base = load_scenario(path, overrides, seed)  # a bad file or --set fails here, once
    raw = path.read_bytes()
    text, sha = raw.decode("utf-8"), file_sha(raw)
    first_seed = base.scenario.seed
    if points is not None:
        if grid or zip:
            raise ConfigError("sweep: give points or grid/zip, not both")
        pts = [dict(p) for p in points]
        for p in {k for pt in pts for k in pt}:
            check_path(p, "points")
    else:
        pts = expand(_axes(grid, "--grid"), _axes(zip, "--zip"))
    if len(pts) * seeds > MAX_POINTS:
        raise ConfigError(f"sweep: {len(pts):,} points x {seeds:,} seeds is more than a sweep may run ({MAX_POINTS:,})")
    param_cols = list(dict.fromkeys(k for p in pts for k in p))
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        check_path_text(str(out_path), None, "--out")
        if out_path.exists() and out_path.is_dir():
            raise ConfigError(f"--out = {str(out_path)!r}: is a folder (give a .parquet file)")
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            probe_writable(out_path.parent)
        except OSError as exc:
            raise ConfigError(f"--out = {short_repr(str(out_path))}: cannot write its folder ({exc.strerror or exc})") from None
    store = _Store(out_path)
    store.load()
    for line in store.warnings:
        warn_once(line)

    # ---- the rows to produce
    costs: list[float] = []
    work: list = []
    items = []  # (index, point dict, seed, overrides, key, baseline key or None, load error)
    for i, p in enumerate(pts):
        ov = overrides + overrides_of(p)
        for s in range(first_seed, first_seed + seeds):
            key = point_key(sha, ov, s)
            bkey, err = None, None
            try:
                loaded = load_text(text, str(path), str(base.base_dir), ov, s)
                if baseline and loaded.scenario.rollout.engine.speculative_config is not None:
                    bkey = baseline_key(sha, loaded.scenario, s)
            except RlsimError as e:
                err = str(e)
            items.append((i, p, s, ov, key, bkey, err))
            costs.append(_cost(loaded.scenario) if err is None else 0.0)
            if err is None:
                work.append(estimate(loaded.scenario, base.base_dir, baseline=False, source=str(path)))
    line = check_sweep_work(work, str(path), work_limit) if work else None
    if line:
        warn_once(line)
    for _, _, _, _, key, _, err in items:
        if key in store.points and store.points[key]["status"] == "error":
            del store.points[key]  # a crash last time: retried now
        if err is not None:
            store.points[key] = {"status": "infeasible", "error": err}

    def done_point(key: str) -> bool:
        r = store.points.get(key)
        return r is not None and r["status"] in ("ok", "infeasible")

    def done_base(bkey: str) -> bool:
        r = store.baselines.get(bkey)
        return r is not None and r["status"] in ("ok", "infeasible")

    resumed = sum(1 for it in items if done_point(it[4]) and it[6] is None
                  and (it[5] is None or done_base(it[5]) or store.points[it[4]]["status"] != "ok"))
    tasks, queued_base = [], set()
    common = {"scenario_text": text, "source": str(path), "base_dir": str(base.base_dir)}
    for i, p, s, ov, key, bkey, err in items:  # baselines first: rows complete early and steadily
        if bkey and not done_base(bkey) and bkey not in queued_base and not (
                done_point(key) and store.points[key]["status"] != "ok"):
            queued_base.add(bkey)
            tasks.append((("baseline", bkey), {**common, "kind": "baseline", "seed": s,
                                               "overrides": ov + ["rollout.engine.speculative_config=null"]}))
    point_tasks = []
    for n, (i, p, s, ov, key, bkey, err) in enumerate(items):
        if not done_point(key):
            point_tasks.append((-costs[n], n, (("point", key), {**common, "kind": "point", "seed": s, "overrides": ov})))
    # longest first (by simulated sequences), so the last tasks in flight are short ones
    tasks += [t for _, _, t in sorted(point_tasks, key=lambda x: (x[0], x[1]))]

    def make_row(it) -> dict | None:
        i, p, s, ov, key, bkey, _ = it
        r = store.points.get(key)
        if r is None:
            return None
        row = {"point": i, "point_id": key, "seed": s, **p, **r}
        if bkey is not None and r["status"] == "ok":
            b = store.baselines.get(bkey)
            if b is None:
                return None
            row.update({"baseline_key": bkey, "baseline_status": b["status"], "baseline_error": b.get("error")})
            row.update({k: v for k, v in b.items() if k not in ("status", "error")})
            row.update(_speedups(row))
        row["params"] = json.dumps(p, sort_keys=True, default=str)
        row["overrides"] = json.dumps(ov)
        return row

    rows: dict[int, dict] = {}
    for n, it in enumerate(items):
        r = make_row(it) if (done_point(it[4]) and (it[5] is None or done_base(it[5])
                                                     or store.points[it[4]]["status"] != "ok")) else None
        if r is not None:
            rows[n] = r
    waiting = {n for n in range(len(items)) if n not in rows}
    current = {it[4] for it in items}
    extra = [r for r in store.old_rows if r["point_id"] not in current]

    def frame() -> pd.DataFrame:
        ordered = [rows[n] for n in sorted(rows)]
        df = _frame(ordered + extra, param_cols)
        return df

    total = len(items)
    if progress:
        progress(len(rows), total, None)
    nworkers = workers or default_workers()
    stream = run_ray(tasks, workers, address) if backend == "ray" else run_local(tasks, nworkers)
    computed = 0
    try:
        if tasks:
            for (kind, key), result in stream:
                store.record(kind, key, result)
                computed += kind == "point"
                for n in sorted(waiting):
                    it = items[n]
                    if (kind == "point" and it[4] == key) or (kind == "baseline" and it[5] == key):
                        r = make_row(it)
                        if r is not None:
                            rows[n] = r
                            waiting.discard(n)
                            if progress:
                                progress(len(rows), total, r)
                store.write(frame())
    finally:
        store.close()
        if tasks or store.out is not None:
            store.write(frame(), force=True, final=not waiting)
    df = _frame([rows[n] for n in sorted(rows)], param_cols)
    df.attrs["stats"] = {"points": total, "resumed": resumed, "computed": computed,
                         "baselines_computed": sum(1 for (k, _), _t in tasks if k == "baseline"),
                         "wall_s": time.perf_counter() - t0, "backend": backend,
                         "workers": nworkers if backend == "local" else workers, "out": str(out_path) if out_path else None}
    df.attrs["warnings"] = warnings_seen
    return df


def summarize(df: pd.DataFrame, top: int = 5) -> str:
    """The table ``rlsim sweep`` prints at the end: counts, the best points, the failures."""
    st = df.attrs.get("stats", {})
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    lines = [f"sweep: {len(df)} rows: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "infeasible", "error"))]
    if st:
        lines.append(f"  computed {st['computed']} points and {st['baselines_computed']} baselines, resumed {st['resumed']}; "
                     f"{st['wall_s']:.1f} s wall ({st['backend']}, {st['workers'] or 'all'} workers)")
    metric = next((c for c in ("speedup_end_to_end", "speedup_rollout") if c in df.columns and df[c].notna().any()), None)
    params = json.loads(df["params"].iloc[0]) if len(df) and "params" in df.columns else {}
    pcols = [c for c in params if c in df.columns]
    if metric:
        ok = df[df[metric].notna()].sort_values(metric, ascending=False, kind="stable")
        lines.append(f"\nbest {min(top, len(ok))} by {metric}:")
        short = {c: c.split(".")[-1] for c in pcols}
        show = [c for c in ("step_time_s", "rollout_time_s", "mean_acceptance_length") if c in ok.columns]
        hdr = [short[c] for c in pcols] + ["seed"] + show + [metric]
        table = [hdr] + [[_fmt(r[c]) for c in pcols] + [str(r["seed"])] + [_fmt(r[c]) for c in show] + [f"{r[metric]:.3f}x"]
                         for _, r in ok.head(top).iterrows()]
        w = [max(len(str(row[j])) for row in table) for j in range(len(hdr))]
        lines += ["  " + "  ".join(str(v).rjust(w[j]) for j, v in enumerate(row)) for row in table]
    bad = df[df["status"] != "ok"]
    if len(bad):
        lines.append(f"\nnot ok ({len(bad)}), first reasons:")
        for msg, n in bad["error"].value_counts().head(3).items():
            lines.append(f"  {n} x {msg}")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
