"""Simulator cost against the work: one Qwen3-8B rollout batch on 32 H100s at 1k-32k sequences.

Runs ``scenarios/qwen8b_rollout.yaml`` (and, with ``--spec``, ``qwen8b_rollout_eagle3.yaml``) at
``num_prompts_per_step`` = 64 .. 2,048 (x 16 samples = 1,024 .. 32,768 sequences) on one core,
prints CPU time, engine iterations, slow (step-by-step) iterations, preemptions and peak memory
per size, and the exponent of CPU time against sequences (least squares on log-log, and per
doubling).  Target (speed issue): exponent <= 1.1.  ``--workers N`` runs the engines in N forked
processes (CPU time then counts this process only: read the wall column).  Not a test.

    python benchmarks/scaling.py [--max-prompts 2048] [--spec] [--core 0] [--workers 1]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _one(scenario: Path, prompts: int, workers: int = 1) -> dict:
    from rlsim import load_scenario
    from rlsim.sim import resolve, simulate_rollout

    res = resolve(load_scenario(scenario, [f"workload.num_prompts_per_step={prompts}"]))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    s = simulate_rollout(res, workers=workers).summary
    return {"sequences": s["num_sequences"], "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
            "iterations": s["engine_iterations"], "preemptions": s["preemptions"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-prompts", type=int, default=2048)
    ap.add_argument("--spec", action="store_true", help="the EAGLE-3 scenario instead of the baseline")
    ap.add_argument("--core", type=int, default=None, help="the core to run on (default: the first allowed)")
    ap.add_argument("--workers", type=int, default=1, help="engines in this many forked processes")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and args.workers == 1:
        core = sorted(os.sched_getaffinity(0))[0] if args.core is None else args.core
        os.sched_setaffinity(0, {core})  # one core
    scenario = ROOT / "scenarios" / ("qwen8b_rollout_eagle3.yaml" if args.spec else "qwen8b_rollout.yaml")
    sizes = [p for p in (64, 128, 256, 512, 1024, 2048, 4096, 8192) if p <= args.max_prompts]
    rows = []
    print(f"scenario {scenario.name}, one core")
    print(f"{'sequences':>10} {'CPU s':>8} {'wall s':>8} {'iterations':>12} {'iter/s CPU':>11} {'preemptions':>12} {'peak MB':>8}")
    for p in sizes:
        r = _one(scenario, p, args.workers)
        rows.append(r)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{r['sequences']:>10,} {r['cpu_s']:>8.2f} {r['wall_s']:>8.2f} {r['iterations']:>12,} "
              f"{r['iterations'] / max(r['cpu_s'], 1e-9):>11,.0f} {r['preemptions']:>12,} {peak:>8.0f}",
              flush=True)
    n = np.log([r["sequences"] for r in rows])
    t = np.log([max(r["cpu_s"], 1e-3) for r in rows])
    if len(rows) >= 2:
        slope = np.polyfit(n, t, 1)[0]
        steps = ", ".join(f"{np.exp(n[i]):,.0f}->{np.exp(n[i + 1]):,.0f}: {(t[i + 1] - t[i]) / (n[i + 1] - n[i]):.2f}"
                          for i in range(len(rows) - 1))
        print(f"exponent of CPU time in sequences: {slope:.2f} (least squares); per doubling {steps}")


if __name__ == "__main__":
    main()
