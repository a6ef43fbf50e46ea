"""Clause regexes run on RE2: the classic catastrophic patterns are accepted and answer at once on long hostile
values; lookarounds and backreferences are refused with a reason; everyday patterns answer as Python's re does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from flagstream.linear_regex import compile_search
from flagstream.operators import regex_problem

N = 100_000

#: (pattern, hostile value, whether it matches). Under a backtracking engine each of these runs for years
#: (exponential) or hours (polynomial of high degree) on a value of this length.
HOSTILE = [
    ("(a+)+$", "a" * N + "!", False),
    ("(a+)+$", "a" * N, True),
    ("^(a|aa)+$", "a" * N + "b", False),
    ("^(a|a)*$", "a" * N + "b", False),
    (r"^(\w+\s?)*$", "word " * (N // 5) + "!", False),
    ("(.*a){12}$", "a" * N + "b", False),
    (".*a.*b.*c", "ab" * (N // 2), False),
    (".*a.*b.*c", "ab" * (N // 2) + "c", True),
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", "a" * N + "!", False),
]

EVALUATE = """
import json, sys
from flagstream.engine import compile_flag, evaluate
from flagstream.events import Clause, Flag, Operator, Rule, Serve

answers = []
for pattern, value in json.load(sys.stdin):
    clause = Clause(attribute="a", op=Operator.MATCHES, values=(pattern,))
    rule = Rule(id="r", clauses=(clause,), serve=Serve(variation="on"))
    flag = compile_flag(Flag(key="f", on=True, fallthrough=Serve(variation="off"), rules=(rule,)), {})
    assert not flag.malformed, flag.problems
    answers.append(evaluate({"f": flag}, "f", {"key": "u", "a": value}, None).variation == "on")
print(json.dumps(answers))
"""


def test_catastrophic_patterns_are_accepted_and_answer_on_long_hostile_values() -> None:
    for pattern, _, _ in HOSTILE:
        assert regex_problem(pattern) is None, pattern
    # In a child process, so that a backtracking engine fails this test (the generous time-out: it finishes in
    # milliseconds) rather than hang the suite.
    cases = json.dumps([[pattern, value] for pattern, value, _ in HOSTILE])
    done = subprocess.run(
        [sys.executable, "-c", EVALUATE], input=cases, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == [expected for _, _, expected in HOSTILE]


@pytest.mark.parametrize("pattern", [r"(?=a)b", r"(?<!x)y", r"(a)\1", r"(?P<w>x)(?P=w)"])
def test_lookarounds_and_backreferences_are_refused_with_the_reason(pattern: str) -> None:
    problem = regex_problem(pattern) or ""
    assert problem.startswith("invalid regular expression"), problem
    assert "lookarounds and backreferences are not supported" in problem, problem


def test_an_invalid_or_overlong_pattern_says_what_is_wrong() -> None:
    assert (regex_problem("(unclosed") or "").startswith("invalid regular expression: missing )"), regex_problem(
        "(unclosed"
    )
    assert regex_problem("x" * 501) == "regular expression longer than 500 characters"
    assert regex_problem(42) == "a regular expression must be a string"


EVERYDAY = [
    r"^.*@example\.com$",
    "^(ios|android)$",
    "[a-z]+-[0-9]+",
    r"(\d+\.){3}\d+",
    r"^(\d{1,3}\.){3}\d{1,3}$",
    r"^v?(\d+)(\.\d+)*$",
    r"^([a-z0-9]+\.)+com$",
    "(foo|bar)*",
    r"Chrome/(\d+)",
    r"^Mozilla/5\.0 \((?:Windows|Macintosh)",
    "(?i)^beta-",
    "^[^@]+@[^@]+$",
    r"\bpremium\b",
    r"^\s*$",
    r"^(?P<major>\d+)\.\d+$",
]
SAMPLES = [
    "bob@example.com",
    "ios",
    "Android",
    "ticket-42",
    "10.0.0.1",
    "v1.2.3",
    "shop.example.com",
    "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0",
    "Mozilla/5.0 (X11; Linux) Chrome/99",
    "BETA-tester",
    "a premium user",
    "   ",
    "",
    "3.14",
    "æøå@ÆØÅ.no",
]


@pytest.mark.parametrize("pattern", EVERYDAY)
def test_everyday_patterns_answer_as_pythons_re(pattern: str) -> None:
    assert regex_problem(pattern) is None, pattern
    for ignore_case in (False, True):
        search = compile_search(pattern, ignore_case)
        reference = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        for sample in SAMPLES:
            assert search(sample) is (reference.search(sample) is not None), (pattern, ignore_case, sample)


def test_case_insensitive_matching_folds_unicode() -> None:
    assert compile_search("^ærøskøbing$", ignore_case=True)("ÆRØSKØBING")
    assert not compile_search("^ærøskøbing$")("ÆRØSKØBING")


def test_a_value_that_is_not_valid_unicode_text_does_not_raise() -> None:
    assert compile_search("x")("\ud800x")  # a lone surrogate (JSON can carry one)
    assert not compile_search("^y")("\ud800x")
