"""Simulator speed on the workload of the side-by-side with Vidur 0.0.26 (speed issue).

Llama-2-7B on H100, TP 1, vLLM scheduler, 512 prompt / 2,048 output tokens, batch cap 256,
all requests at t = 0 (``scenarios/vidur_llama2_7b.yaml``): 2,048 requests on 1 replica and
8,192 on 4 replicas, on one core.  Prints CPU and wall time (simulation only, the package
imported and the scenario resolved before the clock starts), the simulated makespan, engine
iterations and segments per second, and peak memory.  Vidur is not a dependency: the last
side-by-side figures (Vidur 25.3 s / 88.3 s CPU, ``farm-bench --vs``, median of 5 paired runs
on this 2-core machine) are quoted from the issue.  Not a test.

    python benchmarks/vidur_workload.py [--repeat 3]
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
SCENARIO = ROOT / "scenarios" / "vidur_llama2_7b.yaml"
#: (label, overrides, Vidur 0.0.26 CPU seconds on the same workload, from the speed issue)
CASES = (("2,048 requests, 1 replica", [], 25.3),
         ("8,192 requests, 4 replicas", ["workload.num_prompts_per_step=8192", "cluster.num_gpus=4"], 88.3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    from rlsim import load_scenario
    from rlsim.sim import resolve, simulate_rollout

    for label, overrides, vidur_s in CASES:
        res = resolve(load_scenario(SCENARIO, overrides))
        cpus, walls = [], []
        for _ in range(args.repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            r = simulate_rollout(res)
            cpus.append(time.process_time() - c0)
            walls.append(time.perf_counter() - w0)
        s, cpu = r.summary, min(cpus)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label}: CPU best {cpu:.2f} s (all {', '.join(f'{c:.2f}' for c in cpus)}), wall best {min(walls):.2f} s; "
              f"makespan {s['rollout_time_s']:.1f} s, {s['engine_iterations']:,} iterations "
              f"({s['engine_iterations'] / cpu:,.0f}/s), {len(r.segments):,} segments ({len(r.segments) / cpu:,.0f}/s), "
              f"{s['preemptions']:,} preemptions, peak {peak:.0f} MB; Vidur 0.0.26 {vidur_s} s -> {vidur_s / cpu:.1f}x")


if __name__ == "__main__":
    main()
