"""Simulator speed of a policy comparison: `rlsim compare scenarios/qwen8b_sync.yaml` with five policies.

Target (rollout-policies issue): five policies on the 8B sync scenario in <= 5 minutes on one
core.  Runs none, dynamic_sampling, partial_rollout, history_drafter and concurrency_draft on
``--seeds`` seeds (each policy to its converged steady state), pinned to one core; prints wall
and CPU time, engine segments (events) per second and the table.

    python benchmarks/policy_compare_speed.py [--seeds 3] [--scenario scenarios/qwen8b_sync.yaml]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rlsim import load_scenario  # noqa: E402
from rlsim.rl.policies import compare as cmp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ["none", "dynamic_sampling", "partial_rollout", "history_drafter", "concurrency_draft"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen8b_sync.yaml"))
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    loaded = load_scenario(args.scenario)
    times: dict[str, float] = {}
    last = [time.process_time()]
    events = [0]

    def tick(name, seed, run):
        now = time.process_time()
        times[name] = times.get(name, 0.0) + now - last[0]
        last[0] = now
        events[0] += len(run.segments)

    t0, c0 = time.perf_counter(), time.process_time()
    rows = cmp.compare_policies(loaded, POLICIES, args.seeds, progress=tick)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(cmp.render(cmp.summarise(rows), loaded.scenario.name))
    print(f"\n{len(POLICIES)} policies x {args.seeds} seeds: wall {wall:.1f} s, CPU {cpu:.1f} s "
          f"(one core; target <= 300 s); {events[0]:,} engine segments, {events[0] / cpu:,.0f} segments/CPU s")
    print("CPU per policy (all seeds): " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
