"""Simulator speed: one RL rollout batch of Qwen3-8B on 32 H100s.

512 prompts x 16 samples = 8,192 sequences, mean response ~4.2k tokens (lognormal, cap 16k),
from ``scenarios/qwen8b_rollout.yaml``.  Target (core issue): at most 10 s wall on one core.
Prints the simulator's wall time, engine iterations simulated per second and segments (simpy
timeouts) per second.  Not a test: run it by hand or in CI logs.

    python benchmarks/rollout_speed.py [--repeat 3] [--scenario PATH] [--set k=v ...]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: keep BLAS single-threaded
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rlsim import load_scenario  # noqa: E402
from rlsim.sim import resolve, simulate_rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen8b_rollout.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # pin to one core
    res = resolve(load_scenario(args.scenario, args.overrides))
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        r = simulate_rollout(res)
        walls.append(time.perf_counter() - t0)
    s = r.summary
    best = min(walls)
    print(f"scenario            {s['scenario']}  ({s['num_sequences']} sequences, {s['num_engines']} engines)")
    print(f"simulated batch     {s['rollout_time_s']:.1f} s, {s['generated_tokens']:,} tokens, {s['preemptions']} preemptions")
    print(f"wall time           best {best:.2f} s, all {', '.join(f'{w:.2f}' for w in walls)} s (one core)")
    print(f"engine iterations   {s['engine_iterations']:,}  -> {s['engine_iterations'] / best:,.0f} iterations/s")
    print(f"segments (events)   {len(r.segments):,}  -> {len(r.segments) / best:,.0f} events/s")


if __name__ == "__main__":
    main()
