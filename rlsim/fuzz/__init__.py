"""A seeded mutation fuzzer of rlsim's inputs: every shipped scenario and the command line
(:mod:`rlsim.fuzz.mutations`), run in this process (:mod:`rlsim.fuzz.runner`).

Each case must end with exit 0, or exit 2 and exactly one ``error: ...`` line on stderr; never
a traceback, never past its time bound; with exit 0 the numbers of ``summary.json`` (``--json``
on stdout, or ``--out``) are finite.  On top, each case's expectation is checked: exit 0 on a
case invalid by construction is a *silent acceptance*, exit 2 on a valid one a *wrong
rejection* (see :mod:`rlsim.fuzz.mutations` for how each class is decided).

``python benchmarks/fuzz.py --cases 5000`` prints the counts; ``tests/fuzz`` runs a few hundred.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rlsim.fuzz.mutations import Case, base_documents, make_case, summary_numbers_finite
from rlsim.fuzz.runner import Outcome, invoke

__all__ = ["FuzzReport", "run_fuzz", "check_case", "FAILURES", "Case", "Outcome"]

#: Failure kinds, in the order a case is classified (the first that applies).
FAILURES = ("traceback", "hang", "bad_exit", "noisy_error", "silent_acceptance", "wrong_rejection", "non_finite")


@dataclass
class FuzzReport:
    """Counts of a fuzz run and the failing cases (mutation, args, outcome detail)."""

    cases: int = 0
    exit_0: int = 0
    exit_2: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    by_mutation: Counter = field(default_factory=Counter)
    slowest_s: float = 0.0
    wall_s: float = 0.0

    def line(self) -> str:
        f = ", ".join(f"{self.failures.get(k, 0)} {k.replace('_', ' ')}s" for k in FAILURES)
        return (f"{self.cases} cases: {self.exit_0} exit 0, {self.exit_2} exit 2 (clean one-line errors); {f}; "
                f"slowest case {self.slowest_s:.1f} s; {self.wall_s:.0f} s wall")


def check_case(case: Case, out: Outcome, folder: Path, bound_s: float) -> str | None:
    """The first failure kind (:data:`FAILURES`) of ``case`` given its outcome, or None."""
    if out.traceback is not None:
        return "traceback"
    if out.hang or out.wall_s > bound_s:
        return "hang"
    if out.code not in (0, 2):
        return "bad_exit"
    if out.code == 2:
        lines = out.stderr_lines
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return "noisy_error"
        return "wrong_rejection" if case.expect == "valid" else None
    if case.expect == "invalid":
        return "silent_acceptance"
    if case.expect == "warned" and case.warning not in out.stdout + out.stderr:
        return "silent_acceptance"
    if case.args[:1] == ["run"] and "--json" in case.args and not summary_numbers_finite(out.stdout):
        return "non_finite"
    summary = folder / "outdir" / "summary.json"
    if summary.exists() and not summary_numbers_finite(summary.read_text(encoding="utf-8")):
        return "non_finite"
    return None


def run_fuzz(cases: int, seed: int = 0, repo: Path | None = None, bound_s: float = 60.0,
             progress: Callable[[int, FuzzReport], None] | None = None, work_limit_flag: bool = True) -> FuzzReport:
    """Run ``cases`` cases from ``random.Random(seed)`` (the same seed, the same cases) over the
    scenarios of ``repo`` (default: this checkout); ``bound_s`` is the time bound of one case."""
    import time

    repo = repo or Path(__file__).resolve().parents[2]
    docs = base_documents(repo)
    rng = random.Random(seed)
    report = FuzzReport()
    t0 = time.perf_counter()
    for i in range(cases):
        case = make_case(rng, docs, work_limit_flag)
        with tempfile.TemporaryDirectory(prefix="rlsim-fuzz-") as tmp:
            folder = Path(tmp)
            for name, data in case.files.items():
                (folder / name).write_bytes(data)
            out = invoke(case.args, folder, bound_s + 5)
            failure = check_case(case, out, folder, bound_s)
        report.cases += 1
        report.exit_0 += out.code == 0
        report.exit_2 += out.code == 2 and failure != "noisy_error"
        report.slowest_s = max(report.slowest_s, out.wall_s)
        report.by_mutation[case.mutation] += 1
        if failure is not None:
            report.failures[failure] += 1
            if len(report.examples) < 200:
                report.examples.append({"case": i, "failure": failure, "mutation": case.mutation,
                                        "scenario": case.scenario, "args": case.args, "detail": case.detail,
                                        "code": out.code, "stderr": (out.traceback or out.stderr)[-600:],
                                        "wall_s": round(out.wall_s, 2)})
        if progress is not None:
            progress(i + 1, report)
    report.wall_s = time.perf_counter() - t0
    return report
