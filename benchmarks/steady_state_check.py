"""The steady-state headline does not depend on the run length: qwen235b_async's speed-ups from
the default (converged) runs vs runs twice as long (each run's converged step count x 2).

    python benchmarks/steady_state_check.py [--scenario scenarios/qwen235b_async.yaml] [--factor 2]

Prints each run's steps and mean step time and the relative change of every headline speed-up
(target: < 3 %).  CPU time is printed too (the machine may be shared).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rlsim import load_scenario
from rlsim.rl.run import run_pipeline, sync_twin
from rlsim.sim import resolve

ROOT = Path(__file__).resolve().parents[1]


def _runs(path: str, steps: dict | None) -> dict:
    out = {}
    for name, spec, twin in (("spec", True, False), ("baseline", False, False), ("sync_baseline", False, True)):
        over = [] if steps is None else [f"rl.num_steps={steps[name]}"]
        res = resolve(load_scenario(path, over))
        res = sync_twin(res) if twin else res
        out[name] = run_pipeline(res, res.scenario.seed, spec, res.scenario.rl.pipeline)[0].summary
    return out


def _headline(s: dict) -> dict:
    return {"end_to_end": s["baseline"]["step_time_s"] / s["spec"]["step_time_s"],
            "generation": s["baseline"]["generation_makespan_s"] / s["spec"]["generation_makespan_s"],
            "end_to_end_vs_sync": s["sync_baseline"]["step_time_s"] / s["spec"]["step_time_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen235b_async.yaml"))
    ap.add_argument("--factor", type=int, default=2)
    args = ap.parse_args()
    c0 = time.process_time()
    default = _runs(args.scenario, None)
    longer = _runs(args.scenario, {k: args.factor * v["num_steps"] for k, v in default.items()})
    for label, runs in (("default", default), (f"x{args.factor}", longer)):
        print(label, ", ".join(f"{k}: {v['num_steps']} steps, {v['step_time_s']:.1f} s/step" for k, v in runs.items()))
    h0, h1 = _headline(default), _headline(longer)
    for k in h0:
        print(f"{k:<20} default {h0[k]:.3f}x   x{args.factor} {h1[k]:.3f}x   change {100 * (h1[k] / h0[k] - 1):+.2f} %")
    print(f"CPU {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
