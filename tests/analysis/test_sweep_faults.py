"""Sweeps survive every fault: kill -9 leaves no worker behind, the journal rebuilds a corrupted
results file, corrupted journal lines are reported and skipped, non-finite results are error rows."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_settings import GRID, SYNC, TINY  # noqa: F401 - tests/analysis/conftest.py

from rlsim.analysis import sweep
from rlsim.errors import ConfigError


def _copy(tiny_sweep, tmp_path: Path) -> tuple[pd.DataFrame, Path, Path]:
    df, out = tiny_sweep
    new = tmp_path / "r.parquet"
    shutil.copy(out, new)
    shutil.copy(out.with_name(out.name + ".journal.jsonl"), new.with_name(new.name + ".journal.jsonl"))
    return df, new, new.with_name(new.name + ".journal.jsonl")


def test_corrupted_results_file_is_rebuilt_from_the_journal(tiny_sweep, tmp_path):
    df, out, _ = _copy(tiny_sweep, tmp_path)
    out.write_bytes(b"PAR1 not really a parquet file")
    seen: list[str] = []
    again = sweep(SYNC, grid=GRID, overrides=TINY, out=out, workers=1, warn=seen.append)
    assert again.attrs["stats"]["computed"] == 0 and again.attrs["stats"]["baselines_computed"] == 0
    pd.testing.assert_frame_equal(again, df)
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)
    assert (out.with_name("r.parquet.corrupt")).read_bytes() == b"PAR1 not really a parquet file"
    assert len(seen) == 1 and seen[0].startswith(f"{out}: not a readable sweep results file (")
    assert seen[0].endswith(f"moved to {out}.corrupt, rows rebuilt from {out}.journal.jsonl")


def test_corrupted_journal_lines_are_reported_and_skipped(tiny_sweep, tmp_path):
    df, out, journal = _copy(tiny_sweep, tmp_path)
    lines = journal.read_bytes().split(b"\n")
    lines[1:1] = [b"\xff\xfe not utf-8", b"[1, 2, 3]", b'{"type": "point"}']
    journal.write_bytes(b"\n".join(lines))
    seen: list[str] = []
    again = sweep(SYNC, grid=GRID, overrides=TINY, out=out, workers=1, warn=seen.append)
    assert again.attrs["stats"]["computed"] == 0
    pd.testing.assert_frame_equal(again, df)
    assert seen == [f"{journal}: skipped 3 corrupted line(s): line 2 not UTF-8 text; line 3 not a sweep record; "
                    "line 4 not a sweep record"]


def test_a_foreign_file_without_a_journal_is_refused(tmp_path):
    out = tmp_path / "mine.parquet"
    out.write_text("my own data")
    with pytest.raises(ConfigError) as err:
        sweep(SYNC, grid={"rollout.engine.max_num_seqs": [64]}, overrides=TINY, out=out, workers=1)
    assert str(err.value).startswith(f"--out = {str(out)!r}: exists but is not a sweep results parquet (")
    assert str(err.value).endswith(") and there is no journal to rebuild it from")
    assert out.read_text() == "my own data"


def test_non_finite_results_are_error_rows(tmp_path, monkeypatch):
    import rlsim.analysis.worker as w

    orig = w._point
    monkeypatch.setattr(w, "_point", lambda res, seed: {**orig(res, seed), "step_time_s": float("inf")})
    df = sweep(SYNC, grid={"rollout.engine.max_num_seqs": [64]}, overrides=TINY, out=tmp_path / "n.parquet",
               workers=1, baseline=False)
    assert df["status"].tolist() == ["error"]
    assert df["error"][0] == "the simulation gave a non-finite result (step_time_s = inf)"


def test_sweep_work_and_point_limits():
    with pytest.raises(ConfigError) as err:
        sweep(SYNC, grid={"seed": "0..1000000000000"}, overrides=TINY, workers=1)
    assert str(err.value) == ("--grid 'seed=0..1000000000000': range 0..1000000000000 has 1,000,000,000,001 values, "
                              "more than a sweep may have points (100,000)")
    with pytest.raises(ConfigError) as err:
        sweep(SYNC, grid={"workload.num_prompts_per_step": [10**7]}, overrides=TINY, workers=1)
    assert str(err.value) == (f"{SYNC}: the run asks for 1 run (points x seeds), 120,000,000 simulated sequences in "
                              "all (work 7.3e+11 token-equivalents, ~20.3 h), above the limit of 1e+11 (shrink it, or "
                              "raise the limit with --work-limit)")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/self/task").exists(),
                    reason="needs Linux /proc to list the sweep's worker processes")
def test_kill_minus_9_of_a_multi_worker_sweep_leaves_no_worker(tmp_path):
    script = textwrap.dedent(f"""
        import time
        import rlsim.analysis.worker as w
        w._point = lambda res, seed: time.sleep(300) or {{}}   # workers stay busy until killed
        from rlsim.analysis import sweep
        sweep({str(SYNC)!r}, grid={{"rollout.engine.max_num_seqs": [64, 128, 256, 512]}}, overrides={TINY!r},
              out={str(tmp_path / "k.parquet")!r}, workers=2, baseline=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(kids) < 2:
            time.sleep(0.2)
            kids = [c for c in _children(proc.pid) if _alive(c)] if proc.poll() is None else []
            assert proc.poll() is None, "the sweep ended before it could be killed"
        assert len(kids) == 2, kids
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(c) for c in kids):
            time.sleep(0.1)
        assert not [c for c in kids if _alive(c)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in kids:  # the test's own processes: never leave them behind, even when it fails
            if _alive(c):
                os.kill(c, signal.SIGKILL)
