"""Progress: rich on a terminal, tqdm in a notebook, nothing under --quiet or without a TTY;
the RL pipeline reports its steps to the bar that tracks them."""

from __future__ import annotations

from pathlib import Path

from rlsim.results import progress
from rlsim.results.progress import ProgressBar, bar_kind, report_step, tracking

REPO = Path(__file__).resolve().parents[2]


class _Rec(ProgressBar):
    def __init__(self):
        super().__init__("t", kind="record")
        self.calls = []

    def __call__(self, done, total, row=None, label=None):
        self.calls.append((label, done, total))


def test_kinds(monkeypatch):
    assert bar_kind(quiet=True) is None
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert bar_kind() == "tqdm" and bar_kind(quiet=True) is None
    monkeypatch.setattr(progress, "in_notebook", lambda: False)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert bar_kind() is None


def test_report_step_reaches_only_the_tracking_bar():
    rec = _Rec()
    report_step("x", 1, 2)  # no context: nowhere
    with tracking(rec):
        report_step("x", 1, 2)
    report_step("x", 2, 2)
    assert rec.calls == [("x", 1, 2)]


def test_rl_run_reports_each_trained_step():
    from rlsim.api import simulate

    rec = _Rec()
    with tracking(rec):
        simulate(REPO / "scenarios" / "qwen8b_async.yaml", baseline=False, progress=False,
                 overrides=["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2", "rl.num_steps=3",
                            "workload.response_length.mean_tokens=300"])
    # simulate(progress=False) opens its own silent context, so the outer recorder sees nothing;
    assert rec.calls == []
    from rlsim.config import load_scenario
    from rlsim.rl.run import run_pipeline
    from rlsim.sim import resolve

    res = resolve(load_scenario(REPO / "scenarios" / "qwen8b_async.yaml",
                                ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2",
                                 "rl.num_steps=3", "workload.response_length.mean_tokens=300"]))
    with tracking(rec):
        run_pipeline(res, 0, True, "async")
    assert rec.calls == [("async, speculative", 1, 3), ("async, speculative", 2, 3), ("async, speculative", 3, 3)]


def test_tqdm_bar_in_a_notebook(monkeypatch, capsys):
    bar = ProgressBar("sweep", kind="tqdm")
    with bar:
        bar(1, 4)
        bar(4, 4)
    assert bar._impl.n == 4 and bar._impl.total == 4
