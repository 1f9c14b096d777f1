"""Paper headlines vs rlsim: the rollout policies on a scenario resembling each paper's setting.

Runs `rlsim compare` on ``--scenario`` (default the 8B sync GB200 scenario: Qwen3-8B, GRPO,
sync colocated, long-tailed reasoning lengths -- the setting the papers below study, at
another scale) with every named policy (``none`` and ``no_spec`` included), on ``--seeds`` paired
seeds; prints each paper's own headline beside the same ratio in rlsim (mean over seeds,
paired), writes the comparison chart (docs/rollout_policies_qwen8b.png) and the rows
(benchmarks/policy_headlines.csv).  ``--scenario scenarios/qwen235b_sync.yaml --png
docs/rollout_policies_qwen235b.png --csv benchmarks/policy_headlines_235b.csv`` gives the 235B chart.

The headline numbers are the papers' abstracts as quoted in the issue note (label S: not
checked against the PDFs here); they are compared with, never fed into, the simulation.

    python benchmarks/policy_headlines.py [--seeds 2] [--scenario scenarios/qwen8b_sync.yaml] [--workers 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rlsim import load_scenario  # noqa: E402
from rlsim.rl.policies import NAMED  # noqa: E402
from rlsim.rl.policies import compare as cmp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: every named policy (rlsim.rl.policies.NAMED), ``none`` first: the chart shows them all
POLICIES = list(NAMED)

#: (policy, paper, its headline, rlsim metric: (numerator policy, denominator policy, column, kind))
HEADLINES = (
    ("active_partial_rollout", "APRIL arXiv:2509.18521 (abstract)", "rollout throughput up to +44 % (GRPO/DAPO/GSPO)",
     ("active_partial_rollout", "none", "rollout_tokens_per_s", "gain")),
    ("partial_rollout", "Kimi k1.5 Sec. 2.6.2 (token budget; APRIL's figure)", "rollout throughput up to +44 %",
     ("partial_rollout", "none", "rollout_tokens_per_s", "gain")),
    ("dynamic_sampling", "DAPO arXiv:2503.14476 Sec. 3.2", "over-sampling 'does not necessarily impede training "
                                                           "efficiency' (long-tail-bound generation)",
     ("dynamic_sampling", "none", "step_time_s", "ratio")),
    ("history_drafter", "DAS (2025 preprint, abstract)", "rollout time up to -50 % (vs no speculation)",
     ("history_drafter", "no_spec", "generation_time_s", "cut")),
    ("length_aware_draft", "DAS (2025 preprint, as recalled)", "rollout time up to -50 % (vs no speculation; "
                                                                "its whole system)",
     ("length_aware_draft", "no_spec", "generation_time_s", "cut")),
    ("concurrency_draft", "FastGRPO arXiv:2509.21792 (abstract)", "end-to-end 2.35x-2.72x (vs no speculation)",
     ("concurrency_draft", "no_spec", "step_time_s", "speedup")),
    ("tail_migration", "Seer arXiv:2511.14617 (abstract, as recalled)", "long-tail latency -75..-93 % (whole system)",
     ("tail_migration", "none", "tail_time_s", "cut")),
)


def _paired(rows, num: str, den: str, col: str) -> np.ndarray:
    a = rows[rows["policy"] == num].set_index("seed")[col]
    b = rows[rows["policy"] == den].set_index("seed")[col]
    return (a / b.loc[a.index]).to_numpy()


def _fmt(kind: str, r: np.ndarray) -> str:
    m, lo, hi = float(r.mean()), float(r.min()), float(r.max())
    if kind == "gain":
        return f"{100 * (m - 1):+.0f} % (seeds {100 * (lo - 1):+.0f}..{100 * (hi - 1):+.0f} %)"
    if kind == "cut":
        return f"{100 * (m - 1):+.0f} % (seeds {100 * (lo - 1):+.0f}..{100 * (hi - 1):+.0f} %)"
    if kind == "speedup":
        return f"{1 / m:.2f}x (seeds {1 / hi:.2f}..{1 / lo:.2f}x)"
    return f"step time x{m:.2f} (seeds {lo:.2f}..{hi:.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "qwen8b_sync.yaml"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--png", default=str(ROOT / "docs" / "rollout_policies_qwen8b.png"))
    ap.add_argument("--csv", default=str(ROOT / "benchmarks" / "policy_headlines.csv"))
    ap.add_argument("--workers", type=int, default=1, help="forked processes for the (policy, seed) runs (same rows)")
    args = ap.parse_args()
    loaded = load_scenario(args.scenario)
    t0 = time.process_time()
    rows = cmp.compare_policies(loaded, POLICIES, args.seeds, workers=args.workers)
    table = cmp.summarise(rows)
    print(cmp.render(table, loaded.scenario.name))
    print(f"\nCPU {time.process_time() - t0:.1f} s (this process; with --workers the runs' CPU is in the children)\n")
    print("policy             paper                                   paper's headline  |  rlsim (mean of paired seeds)")
    for pol, paper, claim, (num, den, col, kind) in HEADLINES:
        print(f"{pol:18s} {paper:40s} {claim}  |  {_fmt(kind, _paired(rows, num, den, col))}")
    rows.to_csv(args.csv, index=False)
    cmp.plot(table, args.png, loaded.scenario.name)
    print(f"\nwrote {args.csv}, {args.png}")


if __name__ == "__main__":
    main()
