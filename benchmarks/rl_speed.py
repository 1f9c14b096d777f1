"""Simulator speed of an RL scenario: `rlsim run scenarios/qwen235b_async.yaml` with its baselines.

Target (RL-pipelines issue, kept by the steady-state issue): at most 60 s on one core, the
speculative async run, the same job without speculation and the synchronous twin included, each
run to its converged steady state.  Prints wall and CPU time, the steps each run simulated and
events/s.

    python benchmarks/rl_speed.py [--scenario scenarios/qwen235b_async.yaml]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rlsim import load_scenario  # noqa: E402
from rlsim.rl.run import simulate_rl  # noqa: E402
from rlsim.sim import resolve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen235b_async.yaml"))
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate_rl(resolve(load_scenario(args.scenario)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = sum(len(r.segments) for r in result.runs.values())
    iters = sum(int(r.segments["iterations"].sum()) for r in result.runs.values() if len(r.segments))
    print(f"scenario     {result.summary['scenario']}  (runs: {', '.join(result.runs)})")
    print(f"wall time    {wall:.2f} s, CPU {cpu:.2f} s (one core; target <= 60 s)")
    print("steps        " + ", ".join(f"{k} {r.summary['warmup_steps']} + {r.summary['window_steps']}"
                                      f"{'' if r.summary['converged'] else ' (not converged)'}" for k, r in result.runs.items()))
    print(f"events       {events:,} engine segments -> {events / wall:,.0f} events/s; {iters:,} engine iterations")
    print("speedups     " + ", ".join(f"{k} {v:.3f}x" for k, v in result.summary["speedup"].items()))


if __name__ == "__main__":
    main()
