"""The seeded mutation fuzzer in CI: a few hundred cases over every shipped scenario and the CLI
(the >= 5,000-case run is benchmarks/fuzz.py; figures in the README)."""

from __future__ import annotations

import json
from pathlib import Path

from rlsim.fuzz import check_case, run_fuzz
from rlsim.fuzz.mutations import Case, base_documents
from rlsim.fuzz.runner import Outcome

CASES = 300


def test_no_traceback_hang_noise_or_silent_acceptance(repo):
    rep = run_fuzz(CASES, seed=14, repo=repo, bound_s=30)
    assert rep.cases == CASES
    assert not rep.failures, "\n".join(json.dumps(e) for e in rep.examples[:10])
    assert rep.exit_0 + rep.exit_2 == CASES
    assert rep.exit_0 >= 30 and rep.exit_2 >= 150  # both outcomes are exercised
    assert len({m.split(":")[0] for m in rep.by_mutation}) == 7  # value, key, rule, file, flag, sweep, cmd


def test_every_shipped_scenario_is_a_base(repo):
    assert sorted(base_documents(repo)) == sorted(p.name for p in (repo / "scenarios").glob("*.yaml"))


def _out(code, stderr="", stdout="{}", tb=None, hang=False, wall=0.1):
    return Outcome(code, stdout, stderr, wall, tb, hang)


def test_the_checks_can_fail(tmp_path: Path):
    inv = Case("value:bool", "s", ["run", "s.yaml", "--json"], expect="invalid")
    valid = Case("file:merge", "s", ["run", "s.yaml", "--json"], expect="valid")
    warned = Case("rule:drafter_target", "s", ["run", "s.yaml", "--json"], expect="warned", warning="trained for")
    assert check_case(inv, _out(None, tb="Traceback ..."), tmp_path, 10) == "traceback"
    assert check_case(inv, _out(None, hang=True), tmp_path, 10) == "hang"
    assert check_case(inv, _out(2, "error: x", wall=11), tmp_path, 10) == "hang"
    assert check_case(inv, _out(1, "error: x"), tmp_path, 10) == "bad_exit"
    assert check_case(inv, _out(2, "error: x\nmore"), tmp_path, 10) == "noisy_error"
    assert check_case(inv, _out(2, "oops"), tmp_path, 10) == "noisy_error"
    assert check_case(inv, _out(0), tmp_path, 10) == "silent_acceptance"
    assert check_case(warned, _out(0), tmp_path, 10) == "silent_acceptance"
    assert check_case(warned, _out(0, stdout='{"warnings": ["trained for x"]}'), tmp_path, 10) is None
    assert check_case(valid, _out(2, "error: x"), tmp_path, 10) == "wrong_rejection"
    assert check_case(valid, _out(0, stdout='{"a": NaN}'), tmp_path, 10) == "non_finite"
    assert check_case(valid, _out(0, stdout='{"a": 1.5}'), tmp_path, 10) is None
    assert check_case(inv, _out(2, "error: x"), tmp_path, 10) is None


def test_base_documents_name_files_beside_the_scenario_absolutely():
    """Cases run from a temporary folder: a scenario's relative model folder is made absolute."""
    from pathlib import Path

    from rlsim.fuzz.mutations import base_documents

    repo = Path(__file__).resolve().parents[2]
    name = base_documents(repo)["vidur_llama2_7b.yaml"]["model"]["name"]
    assert Path(name).is_absolute() and (Path(name) / "config.json").is_file()
