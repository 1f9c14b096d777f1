"""Wall and CPU time of the design-review tools (issue 16) on this machine: the plan screen,
``rlsim plan`` of the 235B async scenario on B200 (600 s target) or a tiny 8B plan,
``--report``, ``run --from`` and ``import`` / ``export``.  Not a test.

    python benchmarks/review_tools.py            # the fast ones (about a minute)
    python benchmarks/review_tools.py --plan-235b  # also the 235B B200 plan (tens of CPU-minutes)
    python benchmarks/review_tools.py --plan-235b-h100  # the 235B plan on H100
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=4", "rl.num_steps=3",
        "workload.response_length.mean_tokens=600"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime + s.ru_utime + s.ru_stime


def timed(label: str, fn) -> None:
    w0, c0 = time.perf_counter(), _cpu()
    fn()
    print(f"{label:58s} wall {time.perf_counter() - w0:7.1f} s  CPU {_cpu() - c0:7.1f} s", flush=True)


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from rlsim.cli import main; main()", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan-235b", action="store_true")
    ap.add_argument("--plan-235b-h100", action="store_true", help="the same plan on h100_sxm")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    timed("rlsim --help (start-up: imports)", lambda: cli("--help"))
    from rlsim.analysis.plan_search import screen_kind

    timed("screen qwen235b_async on h100_sxm, b200_sxm, gb200 (144)", lambda: [
        screen_kind(ROOT / "scenarios/qwen235b_async.yaml", [], g, 144) for g in ("h100_sxm", "b200_sxm", "gb200")])
    sets = [a for s in TINY for a in ("--set", s)]
    timed("plan qwen8b_async tiny, h100_sxm + gb200, max 16 GPUs", lambda: cli(
        "plan", str(ROOT / "scenarios/qwen8b_async.yaml"), "--target-step-time-s", "60", "--gpus", "h100_sxm,gb200",
        "--max-gpus", "16", "--k", "2", "--out", str(tmp / "plan"), "--quiet", *sets))
    timed("run qwen8b_async tiny --out --report", lambda: cli(
        "run", str(ROOT / "scenarios/qwen8b_async.yaml"), "--out", str(tmp / "run"), "--report", str(tmp / "r.html"),
        "--quiet", *sets))
    timed("run --from (the same folder, byte-identical summary)", lambda: cli(
        "run", "--from", str(tmp / "run"), "--out", str(tmp / "run2"), "--quiet"))
    same = (tmp / "run" / "summary.json").read_bytes() == (tmp / "run2" / "summary.json").read_bytes()
    print(f"  summary.json identical: {same}")
    timed("export vllm + nemo-rl of qwen235b_async", lambda: [cli("export", t, str(ROOT / "scenarios/qwen235b_async.yaml"))
                                                              for t in ("vllm", "nemo-rl")])
    if args.plan_235b:
        timed("plan qwen235b_async, b200_sxm, 600 s target, max 144 GPUs", lambda: cli(
            "plan", str(ROOT / "scenarios/qwen235b_async.yaml"), "--target-step-time-s", "600", "--gpus", "b200_sxm",
            "--max-gpus", "144", "--out", str(tmp / "plan235"), "--quiet"))
    if args.plan_235b_h100:
        timed("plan qwen235b_async, h100_sxm, 600 s target, max 144 GPUs", lambda: cli(
            "plan", str(ROOT / "scenarios/qwen235b_async.yaml"), "--target-step-time-s", "600", "--gpus", "h100_sxm",
            "--max-gpus", "144", "--out", str(tmp / "plan235h100"), "--quiet"))


if __name__ == "__main__":
    main()
