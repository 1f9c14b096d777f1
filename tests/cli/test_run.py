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


def test_workers_give_the_same_rl_summary(tmp_path):
    """An async RL scenario's three runs (speculative, baseline, sync baseline) in 2 processes."""
    import yaml
    from helpers import rl_policy_scenario

    raw = dict(rl_policy_scenario(None, fixed=False, steps=3).raw)
    raw["cluster"] = {"hardware": "h100_sxm", "num_gpus": 4}
    raw["rollout"] = {**raw["rollout"], "num_gpus": 2}
    raw["rl"] = {**raw["rl"], "pipeline": "async", "training": {"activation_checkpointing": True, "num_gpus": 2}}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    args = ["run", str(path), "--json", "-q"]
    one, two = runner.invoke(app, args), runner.invoke(app, args + ["--workers", "2"])
    assert one.exit_code == 0 == two.exit_code, one.output + two.output
    assert '"sync_baseline"' in one.stdout and '"end_to_end_vs_sync"' in one.stdout
    assert one.stdout == two.stdout
