"""rlsim compare: paired rows, intervals by hand, the table, the CLI and its errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml
from helpers import rl_policy_scenario
from scipy import stats
from typer.testing import CliRunner

from rlsim.cli import app
from rlsim.errors import ConfigError
from rlsim.rl.policies.compare import METRICS, compare_policies, policy_extras, policy_scenario, render, summarise

runner = CliRunner()


def _rows() -> pd.DataFrame:
    rows = []
    for seed, (a, b) in enumerate([(100.0, 50.0), (110.0, 50.0), (90.0, 60.0)]):
        for name, step in (("none", a), ("fast", b)):
            rows.append({"policy": name, "seed": seed, **{m: 1.0 for m in METRICS}, "step_time_s": step})
    return pd.DataFrame(rows)


def test_intervals_and_paired_speedup_by_hand():
    t = summarise(_rows())
    assert t["policy"].tolist() == ["none", "fast"]
    half = stats.t.ppf(0.975, 2) * 10.0 / math.sqrt(3)  # sd of 100, 110, 90 is 10
    assert t.loc[0, "step_time_s"] == pytest.approx(100.0) and t.loc[0, "step_time_s_ci"] == pytest.approx(half)
    ratios = [2.0, 2.2, 1.5]  # paired by seed: 100/50, 110/50, 90/60
    assert t.loc[1, "speedup"] == pytest.approx(sum(ratios) / 3)
    sd = pd.Series(ratios).std(ddof=1)
    assert t.loc[1, "speedup_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert t.loc[0, "speedup"] == 1.0 and t.loc[0, "speedup_ci"] == 0.0


def test_one_seed_has_no_interval():
    t = summarise(_rows()[lambda d: d["seed"] == 0])
    assert math.isnan(t.loc[0, "step_time_s_ci"])
    text = render(t, "s")
    assert text.splitlines()[0] == ("s: rollout policies on identical sequences, 1 seed (mean ± 95 % interval; "
                                    "speed-up vs none, paired by seed)")
    assert "±" not in text.splitlines()[2]


def test_policy_specific_figures_are_summarised_and_printed():
    assert policy_extras({"name": "x", "params": {}, "off_policy_token_share": 0.5, "trained_tokens": 9,
                          "tool_wait_s": 6, "flag": True}) == {"policy.tool_wait_s": 6.0}
    rows = _rows()
    rows["policy.tool_wait_s"] = [float("nan") if p == "none" else w for p, w in
                                  zip(rows["policy"], [0, 4.0, 0, 6.0, 0, 8.0])]
    t = summarise(rows)
    assert math.isnan(t.loc[0, "policy.tool_wait_s"]) and t.loc[1, "policy.tool_wait_s"] == pytest.approx(6.0)
    half = stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)  # sd of 4, 6, 8 is 2
    assert t.loc[1, "policy.tool_wait_s_ci"] == pytest.approx(half)
    lines = render(t, "s").splitlines()
    assert lines[-2:] == ["policy-specific figures (steady-state means):", f"  fast: tool_wait_s 6 ±{half:.4g}"]
    assert "policy-specific" not in render(summarise(_rows()), "s")


def test_tail_training_harvest_reaches_the_compare_row():
    loaded = rl_policy_scenario(None, fixed=False, steps=3)
    rows = compare_policies(loaded, ["none", "drafter_tail_training"], 1)
    tlt = rows.set_index("policy").loc["drafter_tail_training"]
    assert tlt["policy.tail_train_gpu_s"] > 0.0
    assert math.isnan(rows.set_index("policy").loc["none"].get("policy.tail_train_gpu_s", float("nan")))


def test_policies_share_the_base_sequences():
    loaded = rl_policy_scenario(None, fixed=False, steps=3)
    rows = compare_policies(loaded, ["none", "no_spec", "history_drafter"], 2)
    assert rows["seed"].tolist() == [1, 1, 1, 2, 2, 2]
    none = rows[rows["policy"] == "none"].set_index("seed")
    nospec = rows[rows["policy"] == "no_spec"].set_index("seed")
    # identical sequences: the same trained tokens per second of step time ratio-free check
    assert (none["trained_tokens_per_s"] * none["step_time_s"]).tolist() == \
        pytest.approx((nospec["trained_tokens_per_s"] * nospec["step_time_s"]).tolist(), rel=1e-12)
    assert (nospec["mean_acceptance_length"] == 1.0).all()


def test_workers_give_the_same_rows():
    loaded = rl_policy_scenario(None, fixed=False, steps=3)
    heard = []
    one = compare_policies(loaded, ["none", "partial_rollout"], 2)
    two = compare_policies(loaded, ["none", "partial_rollout"], 2, progress=lambda n, s, out: heard.append(
        (n, s, out.summary["step_time_s"])), workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert [(n, s) for n, s, _ in heard] == [("none", 1), ("partial_rollout", 1), ("none", 2), ("partial_rollout", 2)]
    assert [t for *_, t in heard] == one["step_time_s"].tolist()


def test_policy_names_all_is_every_named_policy_none_first():
    from rlsim.rl.policies import NAMED
    from rlsim.rl.policies.compare import policy_names

    assert policy_names("all") == list(NAMED) and policy_names("all")[0] == "none"
    assert policy_names(" none, partial_rollout ,") == ["none", "partial_rollout"]
    # without speculation: neither no_spec nor the policies that act on the drafter
    assert policy_names("all", rl_policy_scenario(None, spec=False)) == [
        "none", "dynamic_sampling", "partial_rollout", "active_partial_rollout", "multi_turn", "multi_turn_evict",
        "tail_migration"]
    assert policy_names("all", rl_policy_scenario(None)) == list(NAMED)


def test_unknown_or_repeated_policy_is_a_config_error():
    loaded = rl_policy_scenario(None)
    with pytest.raises(ConfigError) as e:
        policy_scenario(loaded, "warp")
    assert str(e.value) == ("--policies: 'warp' is not a policy; expected some of none, no_spec, dynamic_sampling, "
                            "partial_rollout, active_partial_rollout, history_drafter, concurrency_draft, drafter_tail_training, multi_turn, multi_turn_evict, tail_migration, "
                                "length_aware_draft, decoupled_draft, or scenario (the scenario's own rl.policy)")
    with pytest.raises(ConfigError) as e:
        compare_policies(loaded, ["none", "none"], 1)
    assert str(e.value) == "--policies: none,none names a policy twice"
    with pytest.raises(ConfigError) as e:
        policy_scenario(loaded, "scenario")
    assert str(e.value) == "--policies: 'scenario' runs the scenario's own rl.policy, and rl.yaml sets none"


def test_the_scenarios_own_policy_runs_as_scenario_and_is_never_dropped_unseen():
    from rlsim.rl.policies.compare import policy_names

    loaded = rl_policy_scenario({"kind": "partial_rollout", "segment_tokens": 800}, fixed=False, steps=6)
    with pytest.raises(ConfigError) as e:
        compare_policies(loaded, ["none", "partial_rollout"], 1)
    assert str(e.value) == ("rl.yaml: rl.policy = 'partial_rollout' is set but --policies does not name 'scenario': "
                            "each run takes the policy --policies names (add 'scenario' to run the configured one)")
    assert policy_names("all", loaded)[-1] == "scenario"
    rows = compare_policies(loaded, ["none", "partial_rollout", "scenario"], 1)
    own, named = (rows.set_index("policy").loc[n] for n in ("scenario", "partial_rollout"))
    assert own["step_time_s"] < named["step_time_s"]  # 800 tokens per step, not the default 4096
    with pytest.raises(ConfigError) as e:
        policy_scenario(rl_policy_scenario(None, spec=False), "no_spec")
    assert str(e.value) == "--policies: no_spec needs a speculative_config in rl.yaml (it switches it off)"


def test_cli_prints_the_table_and_writes_csv_and_png(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(rl_policy_scenario(None, fixed=False, steps=3).raw), encoding="utf-8")
    out = tmp_path / "cmp"
    r = runner.invoke(app, ["compare", str(path), "--policies", "none,partial_rollout", "--seeds", "2",
                            "--set", "rl.num_steps=5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1].split()[:3] == ["policy", "step", "s"]
    assert {p.name for p in out.iterdir()} == {"compare.csv", "compare_summary.csv", "compare.png"}
    assert len(pd.read_csv(out / "compare.csv")) == 4


def test_cli_bad_policy_is_one_line_exit_2(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(rl_policy_scenario(None).raw), encoding="utf-8")
    r = runner.invoke(app, ["compare", str(path), "--policies", "none,warp"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip() == ("error: --policies: 'warp' is not a policy; expected some of none, no_spec, "
                                "dynamic_sampling, partial_rollout, active_partial_rollout, history_drafter, concurrency_draft, drafter_tail_training, multi_turn, multi_turn_evict, tail_migration, "
                                "length_aware_draft, decoupled_draft, or scenario (the scenario's own rl.policy)")
