"""rlsim._yaml: limits, merge keys, plain keys, duplicate keys, YAML 1.2 floats, exact messages."""

from __future__ import annotations

import pytest

from rlsim._yaml import MAX_DEPTH, parse_yaml_value, read_yaml_mapping
from rlsim.errors import ConfigError


def _read(tmp_path, text: str | bytes):
    p = tmp_path / "f.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_yaml_mapping(p, "scenario")


def _err(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as e:
        _read(tmp_path, text)
    return str(e.value).replace(str(tmp_path) + "/", "")


def test_merge_keys_explicit_keys_win(tmp_path):
    doc = _read(tmp_path, "_b: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert doc["c"] == {"x": 1, "y": 3}


def test_limits_and_keys(tmp_path):
    assert _err(tmp_path, "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) == "f.yaml: line 1: nested deeper than 64 levels"
    assert _err(tmp_path, "? {a: 1}\n: 2\n") == "f.yaml: line 1: a mapping cannot be a mapping key (keys are plain names)"
    assert _err(tmp_path, "a: 1\na: 2\n") == "f.yaml: line 2 duplicate key 'a' (first given on line 1)"
    assert _err(tmp_path, "a: " + "9" * 5000) .startswith("f.yaml: invalid YAML: a value cannot be read (Exceeds the limit")
    assert _err(tmp_path, "a: [1, 2\n") == "f.yaml: line 2 invalid YAML: expected ',' or ']', but got '<stream end>'"
    laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef"))
    assert _err(tmp_path, laughs) == "f.yaml: expands to more than 1,000,000 values through its aliases (&/*)"


def test_values():
    assert parse_yaml_value("1e6", "--set x") == 1e6 and parse_yaml_value("-2.5E-3", "x") == -2.5e-3
    assert parse_yaml_value("[1, 2", "--set x") == "[1, 2"  # not YAML: the text itself
    assert parse_yaml_value("{a: 1}", "x") == {"a": 1}
    with pytest.raises(ConfigError, match="^--set x: line 1: a list cannot be a mapping key"):
        parse_yaml_value("{[1]: 2}", "--set x")
