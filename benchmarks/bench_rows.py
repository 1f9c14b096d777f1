"""Simulator speed of ``rlsim bench`` over measured serving runs (``shared/e2e``).

Simulates every row of the measurement file that rlsim can express (as ``rlsim calibrate
e2e-check`` does: 10 x concurrency prompts per row), on one core, and prints wall and CPU
time, rows and engine segments (steps or fast-path jumps) per second, and peak memory.
Target (end-to-end issue): 1,000 rows in <= 2 minutes on one core.  Not a test.

    python benchmarks/bench_rows.py [--measurements FILE] [--limit N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measurements", default=str(ROOT.parent / "shared" / "e2e" / "vllm_serving_measured.csv"))
    ap.add_argument("--limit", type=int, default=None, help="first N rows only")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    from rlsim.calibration.e2e import error_report, simulate_rows
    from rlsim.serving.measured import read_measurements

    runs = read_measurements(args.measurements)[: args.limit]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    results = simulate_rows(runs, record=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    done = [r for r in results if not r.skip]
    segments = sum(len(r.trace.iterations) for r in done if r.trace is not None)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pooled = error_report(results)["pooled"]
    print(f"rows: {len(runs)} read, {len(done)} simulated, {len(runs) - len(done)} not expressible")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s; {len(done) / cpu:.1f} rows/s, {segments / cpu:,.0f} segments/s (CPU)")
    print(f"peak memory {peak_mb:.0f} MB")
    print(f"TPOT median |err| {pooled['tpot_median_abs_pct_err']}, TTFT median |err| {pooled['ttft_median_abs_pct_err']}")


if __name__ == "__main__":
    main()
