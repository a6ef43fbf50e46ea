"""Clause regexes that can backtrack catastrophically are refused; the everyday ones are accepted.

The refused shapes are the classic ReDoS forms (docs/security.md): a quantifier inside a repetition that can
also match what follows it, and alternatives inside a repetition that can start alike.
"""

from __future__ import annotations

import pytest

from flagstream.operators import regex_problem

REFUSED = [
    "(a+)+$",
    "(a*)*b",
    r"(\w+\s?)*$",
    "(x+x+)+y",
    "(a|a)*$",
    "(a|a){40}$",
    "(a|aa)+",
    "(.|.a?)*c$",  # re factors the common prefix: '.' then (|a?), both empty
    "(.[ab]|.)+!",
    "(.*a){12}$",
    "(a+b?)*c",
    "(x|a+)*b",
]

ACCEPTED = [
    r"^.*@example\.com$",
    "^(ios|android)$",
    "[a-z]+-[0-9]+",
    r"(\d+\.){3}\d+",
    r"^(\d{1,3}\.){3}\d{1,3}$",
    r"^v?(\d+)(\.\d+)*$",
    r"^([a-z0-9]+\.)+com$",
    "(foo|bar)*",
    "(a|ab)*c",
    "(ab|a)*$",
    r"(\w|\d)+$",
    "((a+)b)*",
    "^[^@]+@[^@]+$",
]


@pytest.mark.parametrize("pattern", REFUSED)
def test_a_backtracking_pattern_is_refused_with_a_reason(pattern: str) -> None:
    problem = regex_problem(pattern)
    assert "rewrite the expression" in (problem or ""), (pattern, problem)


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_an_everyday_pattern_is_accepted(pattern: str) -> None:
    assert regex_problem(pattern) is None, pattern


def test_an_invalid_pattern_names_the_syntax_error() -> None:
    problem = regex_problem("(unclosed")
    assert (problem or "").startswith("invalid regular expression"), problem
