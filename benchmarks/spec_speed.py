"""Simulator speed with speculation: the core rollout benchmark with EAGLE-3 k=3 vs its baseline.

``scenarios/qwen8b_rollout_eagle3.yaml`` (8,192 sequences of Qwen3-8B on 32 H100s).  Target
(speculative-decoding issue): the speculative run simulates within 2x the simulator time of
its no-speculation baseline.  Prints both times (best of ``--repeat`` alternating runs, CPU seconds of
this single-threaded process pinned to one core) and the ratio.

    python benchmarks/spec_speed.py [--repeat 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rlsim import load_scenario  # noqa: E402
from rlsim.sim import resolve, simulate_rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _once(res, speculative: bool):
    t0 = time.process_time()
    r = simulate_rollout(res, speculative=speculative, paired=False)
    return time.process_time() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen8b_rollout_eagle3.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    res = resolve(load_scenario(args.scenario))
    base_times, spec_times = [], []
    for _ in range(args.repeat):  # alternate, so machine noise hits both alike; CPU time of this process
        t, base = _once(res, False)
        base_times.append(t)
        t, spec = _once(res, True)
        spec_times.append(t)
    base_s, spec_s = min(base_times), min(spec_times)
    print(f"baseline     {base_s:6.2f} s CPU  ({base.summary['engine_iterations']:,} engine iterations, "
          f"{len(base.segments):,} events, simulated batch {base.summary['rollout_time_s']:.1f} s)")
    print(f"speculative  {spec_s:6.2f} s CPU  ({spec.summary['engine_iterations']:,} engine iterations, "
          f"{len(spec.segments):,} events, simulated batch {spec.summary['rollout_time_s']:.1f} s)")
    print(f"ratio        {spec_s / base_s:.2f}x  (target <= 2x); simulated speedup "
          f"{base.summary['rollout_time_s'] / spec.summary['rollout_time_s']:.3f}x")


if __name__ == "__main__":
    main()
