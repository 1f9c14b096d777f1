"""The count trigger's plan-level approximation, measured: how long a simulated step runs past the
last of the N trajectories its budget finishes (what a run-time abort there would save).

``partial_rollout`` with ``trigger: count`` (APRIL) stops each step at a token budget -- the N-th
smallest remaining length -- instead of aborting the unfinished requests at the N-th simulated
completion.  For every steady-state step of ``--scenario`` under ``active_partial_rollout`` this
prints the time from the last finishing trajectory's completion to the step's generation end,
beside the generation time.  Not a test.

    python benchmarks/count_trigger_check.py [--seeds 2] [--scenario scenarios/qwen8b_sync.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rlsim import load_scenario
from rlsim.rl.pipeline import horizon, step_batches
from rlsim.rl.policies import compare as cmp
from rlsim.rl.policies.partial_rollout import PartialRolloutSeam
from rlsim.rl.run import run_pipeline
from rlsim.sim import resolve

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen8b_sync.yaml"))
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    res = resolve(cmp.policy_scenario(load_scenario(args.scenario), "active_partial_rollout"))
    rl, seam = res.scenario.rl, PartialRolloutSeam(res.scenario.rl.policy)
    for seed in range(res.scenario.seed, res.scenario.seed + args.seeds):
        out, _ = run_pipeline(res, seed, True, rl.pipeline)
        n = max(horizon(res, rl.pipeline, seed)[2], rl.convergence.max_steps)  # the batches the run planned
        fins = seam.finishing(res, step_batches(res, seed, n))
        seqs, steps = out.sequences, out.steps
        past, gen = [], []
        for t in np.flatnonzero(~steps["warmup"].to_numpy()):
            done = seqs[seqs["step"] == t].sort_values("seq_id")["finish_s"].to_numpy()
            past.append(done.max() - done[fins[t]].max())
            gen.append(done.max() - steps["dispatch_s"].iloc[t])
        print(f"seed {seed}: {len(past)} steady steps; the step runs {np.mean(past):.2f} s (max {np.max(past):.2f} s) "
              f"past its last finishing trajectory, of {np.mean(gen):.1f} s generation ({100 * np.mean(past) / np.mean(gen):.1f} %)")


if __name__ == "__main__":
    main()
