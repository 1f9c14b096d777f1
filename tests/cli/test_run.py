"""``rlsim run`` options beyond the errors: ``--workers``."""

from __future__ import annotations

from typer.testing import CliRunner

from rlsim.cli import app

runner = CliRunner()


def test_workers_give_the_same_summary(repo):
    args = ["run", str(repo / "scenarios" / "qwen8b_rollout.yaml"), "--set", "workload.num_prompts_per_step=8",
            "--set", "cluster.num_gpus=4", "--json", "-q"]
    one, two = runner.invoke(app, args), runner.invoke(app, args + ["--workers", "2"])
    assert one.exit_code == 0 == two.exit_code, one.output + two.output
    assert '"num_engines": 4' in one.stdout
    assert one.stdout == two.stdout
