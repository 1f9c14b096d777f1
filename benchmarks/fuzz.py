"""The large fuzz run: >= 5,000 seeded mutation cases over every shipped scenario and the CLI.

    nice -n 10 python benchmarks/fuzz.py --cases 5000 --seed 0 [--json fuzz.json]

Prints the counts (exit 0 / clean exit 2, and tracebacks, hangs, bad exits, noisy errors,
silent acceptances, wrong rejections, non-finite results: rlsim.fuzz.FAILURES), the cases per
mutation class, the slowest case, wall and CPU time, and up to 20 failing cases.  How each
class is decided (what makes a case "invalid by construction", so that exit 0 on it is a
silent acceptance) is in rlsim/fuzz/mutations.py.  ``--no-work-limit-flag`` leaves
``--work-limit`` out of the command lines (to fuzz a build that lacks it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlsim.fuzz import FAILURES, run_fuzz  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bound-s", type=float, default=60.0, help="a case running longer is a hang")
    ap.add_argument("--json", type=Path, default=None, help="write the report (counts and failing cases) here")
    ap.add_argument("--no-work-limit-flag", action="store_true")
    args = ap.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(done, rep):
        if done % 250 == 0 or done == args.cases:
            bad = sum(rep.failures.values())
            print(f"  {done}/{args.cases} cases, {bad} failures, {time.perf_counter() - t0:.0f} s", flush=True)

    rep = run_fuzz(args.cases, args.seed, bound_s=args.bound_s, progress=progress,
                   work_limit_flag=not args.no_work_limit_flag)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(rep.line())
    print(f"wall {wall:.0f} s, CPU {cpu:.0f} s, {rep.cases / wall:.1f} cases/s")
    print("failures: " + ", ".join(f"{k} {rep.failures.get(k, 0)}" for k in FAILURES))
    print("cases per mutation class:")
    for k, v in sorted(rep.by_mutation.items()):
        print(f"  {k:<40} {v}")
    for e in rep.examples[:20]:
        print(json.dumps(e))
    if args.json is not None:
        args.json.write_text(json.dumps({"line": rep.line(), "cases": rep.cases, "exit_0": rep.exit_0,
                                         "exit_2": rep.exit_2, "failures": dict(rep.failures),
                                         "by_mutation": dict(rep.by_mutation), "wall_s": wall, "cpu_s": cpu,
                                         "examples": rep.examples}, indent=2) + "\n")


if __name__ == "__main__":
    main()
