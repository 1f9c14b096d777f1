"""Decoupled drafting (rl.policy decoupled_draft) against coupled EAGLE-3 and no speculation.

Prints (1) one iteration priced coupled and decoupled at running batches 1..256 (the verify
pass, the drafter's time, the transfer, the probability that the lock-step iteration hides its
drafting, and the ratio coupled / decoupled at load share 1 and at the default pool's share),
then (2) the steady-state step and generation times of ``none``, ``no_spec`` and
``decoupled_draft`` at several drafter pool sizes, on ``--seeds`` paired seeds, with the paired
step-time speed-ups.  CPU time per run is printed.

    python benchmarks/decoupled_draft_sweep.py [--scenario scenarios/qwen8b_sync.yaml] [--seeds 1] [--pools 1,2,4,8,16]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rlsim import load_scenario  # noqa: E402
from rlsim.rl.policies.run import policy_drafting, policy_resolved  # noqa: E402
from rlsim.rl.run import run_pipeline  # noqa: E402
from rlsim.sim import resolve  # noqa: E402
from rlsim.sim.engines import spec_runtime  # noqa: E402
from rlsim.speculation.decoupled import decoupled_iteration_s  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POLICY = "rl.policy.kind=decoupled_draft"


def iteration_table(path: str, ctx_per_seq: float = 2000.0) -> None:
    res = policy_resolved(resolve(load_scenario(path, [POLICY])))
    k = res.speculative.num_speculative_tokens
    n = 4096  # sequences whose acceptance scales (spread, temperature scale) price the pool, as a run's sampler does
    rt = spec_runtime(res, np.arange(n), np.full(n, 1000), 0, res.forward_model())
    dec = policy_drafting(res, rt.sampler)
    share = int(dec.load_share[0])
    print(f"one iteration, k = {k}, {ctx_per_seq:.0f} context tokens per request; default pool {dec.drafter_gpus} GPUs, "
          f"{res.num_engines} engines, load share of engine 0 {share} (engine e on instance e mod {dec.instances}); "
          f"P(A_(k+1) = k+1) = {dec.p_ready[k]:.4f}")
    print("batch  verify ms  draft ms  transfer us  P(hidden)  coupled ms  decoupled s=1 ms  decoupled s=share ms  "
          "coupled/decoupled s=1  s=share")
    for b in (1, 2, 8, 32, 128, 256):
        ctx = np.array([b * (ctx_per_seq + k)])
        verify = float(rt.target_times_s(b, ctx, k)[0]) + rt.verify_extra_s(b, k)
        draft = float(res.drafter.propose_times_s(b, ctx, k)[0])
        x, q = dec.transfer_s(0, b, k), dec.hidden(b, k)
        one, shared = (decoupled_iteration_s(verify, s * draft, x, q) for s in (1, share))
        coupled = verify + draft
        print(f"{b:5d}  {verify * 1e3:9.3f}  {draft * 1e3:8.3f}  {x * 1e6:11.1f}  {q:9.3g}  {coupled * 1e3:10.3f}  "
              f"{one * 1e3:16.3f}  {shared * 1e3:20.3f}  {coupled / one:21.3f}  {coupled / shared:7.3f}")


def runs(path: str, seeds: int, pools: list[int]) -> None:
    variants = [("none", [], True), ("no_spec", [], False)] + [
        (f"decoupled_draft({p})", [POLICY, f"rl.policy.drafter_gpus={p}"], True) for p in pools]
    rows = {}
    for name, over, spec in variants:
        for seed in range(seeds):
            t0 = time.process_time()
            res = resolve(load_scenario(path, over))
            out, _ = run_pipeline(res, seed, spec, res.scenario.rl.pipeline)
            s, pol = out.summary, out.summary.get("policy") or {}
            rows[name, seed] = s["step_time_s"]
            print(f"{name:22s} seed {seed}: step {s['step_time_s']:7.1f} s  generation {s['generation_time_s']:7.1f} s  "
                  f"hidden {pol.get('draft_hidden_share', float('nan')):.4f}  drafter util "
                  f"{pol.get('drafter_utilisation', float('nan')):.3f}  (CPU {time.process_time() - t0:.1f} s)")
    for name, _, _ in variants[2:]:
        vs_none = np.mean([rows["none", s] / rows[name, s] for s in range(seeds)])
        vs_plain = np.mean([rows["no_spec", s] / rows[name, s] for s in range(seeds)])
        print(f"{name:22s} step-time speed-up vs none {vs_none:.3f}x, vs no_spec {vs_plain:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen8b_sync.yaml"))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--pools", default="1,2,4,8,16")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    iteration_table(args.scenario)
    if not args.table_only:
        runs(args.scenario, args.seeds, [int(p) for p in args.pools.split(",")])


if __name__ == "__main__":
    main()
