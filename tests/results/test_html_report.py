"""--report report.html for run / plan / bench: one self-contained page with the figures
embedded, the summary tables, assumptions, warnings and the resolved scenario."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.results.html_report import assumption_rows, flat_rows, markdown_to_html

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
RL_TINY = ["workload.num_prompts_per_step=4", "workload.num_generations_per_prompt=2", "rl.num_steps=3",
           "workload.response_length.mean_tokens=300"]


def _ok(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return r.output


def _self_contained(text: str) -> list[bytes]:
    """The page refers to nothing outside itself; returns its embedded PNGs."""
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)
    pngs = [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    return pngs


def test_rl_run_report(tmp_path):
    rep = tmp_path / "report.html"
    args = ["run", str(REPO / "scenarios" / "qwen8b_async.yaml"), "--no-baseline", "--report", str(rep)]
    for s in RL_TINY:
        args += ["--set", s]
    _ok(args)
    text = rep.read_text()
    assert len(_self_contained(text)) == 3  # breakdown, gantt, running batch
    for part in ("<h2>Summary</h2>", "<h2>Steps: spec</h2>", "<h2>Assumptions</h2>", "<h2>Warnings</h2>",
                 "<h2>Resolved scenario</h2>", "rlsim run: qwen8b_async (Qwen3-8B on gb200)", "num_prompts_per_step: 4",
                 "<td>spec.step_time_s</td>"):
        assert part in text
    assert "<td>sleep_wake_s</td>" in text or "<td>latency_s</td>" in text  # the weight sync's assumed terms


def test_rollout_run_report_with_out(small_scenario, tmp_path):
    rep, out = tmp_path / "r.html", tmp_path / "o"
    _ok(["run", str(small_scenario), "--out", str(out), "--report", str(rep)])
    text = rep.read_text()
    assert len(_self_contained(text)) == 1 and "<td>rollout_time_s</td>" in text and "name: small" in text


def test_bench_report(tmp_path):
    rep = tmp_path / "b.html"
    r = runner.invoke(app, ["bench", "--model", "Qwen3-0.6B", "--hardware", "h100_sxm", "--num-prompts", "8",
                            "--max-concurrency", "4", "--random-input-len", "64", "--random-output-len", "16",
                            "--report", str(rep)])
    assert r.exit_code == 0, r.output
    text = rep.read_text()
    _self_contained(text)
    assert "Serving Benchmark Result" in text and "<td>completed</td>" in text


def test_markdown_subset_and_tables(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    md = "# T\n\nsome **bold** `code`\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | <x> |\n\n![alt](a.png)\n"
    h = markdown_to_html(md, tmp_path)
    assert h.startswith("<h2>T</h2>\n<p>some <b>bold</b> <code>code</code></p>\n<ul><li>one</li><li>two</li></ul>")
    assert "<td>&lt;x&gt;</td>" in h and 'src="data:image/png;base64,' in h
    assert flat_rows({"a": {"b": 1.23456789, "c": [1, 2]}, "warnings": ["w"]}) == [["a.b", "1.23457"], ["a.c", "1, 2"]]
    assert assumption_rows({"spec": {"trainer": {"assumed": {"x": {"value": 1, "why": "assumed (y)"}}}}}) == [
        ["spec.trainer", "x", "1", "assumed (y)"]]
