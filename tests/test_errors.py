"""rlsim.errors.short_repr: values in messages bounded in length and time."""

from __future__ import annotations

from rlsim.errors import ConfigError, short_repr


def test_short_values_are_plain_repr():
    assert short_repr("abc") == "'abc'" and short_repr({"b": 1, "a": 2}) == "{'b': 1, 'a': 2}" and short_repr(2**63) == str(2**63)


def test_long_values_keep_the_head_and_say_how_long():
    assert short_repr("x" * 100_000) == "'" + "x" * 60 + "'... (100,000 characters)"
    assert short_repr(list(range(1000))) == "[0, 1, 2, 3, 4, 5, ...]"
    nested = [[list(range(50))] * 50] * 50
    assert short_repr(nested).endswith("... (50 items)") and len(short_repr(nested)) <= 80
    assert short_repr(10**5000) == "an integer of 16,610 bits"
    assert str(ConfigError.at("f.yaml", "a.b", "y" * 500, "is bad")) == "f.yaml: a.b = '" + "y" * 60 + "'... (500 characters) is bad"
