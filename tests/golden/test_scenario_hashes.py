"""Every shipped scenario's summary.json keeps its digest (see golden_digest.py to regenerate)."""

from __future__ import annotations

import json
import os

import pytest

from golden.golden_digest import HASHES, QUICK, digest, scenarios

_STORED = json.loads(HASHES.read_text())


def test_every_shipped_scenario_has_a_stored_digest():
    assert sorted(_STORED["quick"]) == scenarios()
    assert _STORED["quick_overrides"] == QUICK


@pytest.mark.parametrize("name", scenarios())
def test_quick_scenario_summary_is_unchanged(name):
    assert digest(name, QUICK) == _STORED["quick"][name]


@pytest.mark.skipif(os.environ.get("RLSIM_GOLDEN_FULL") != "1", reason="full-size scenarios take minutes: set RLSIM_GOLDEN_FULL=1")
@pytest.mark.parametrize("name", scenarios())
def test_full_scenario_summary_is_unchanged(name):
    assert digest(name, []) == _STORED["full"][name]
