"""A number as a context's ``key`` or as a bucketing attribute is used as its decimal string, as other SDKs do:
``{"key": 42}`` is the user ``"42"`` for targets, clauses and rollouts. Other non-string keys stay malformed."""

from __future__ import annotations

from typing import Any

import pytest

from flagstream.context import normalize, problem
from flagstream.engine import compile_flag, evaluate
from flagstream.evaluation import ErrorKind, ReasonKind
from flagstream.events import Clause, Flag, Operator, Rollout, Rule, Serve, Target, WeightedVariation

HALF = Rollout(
    variations=(WeightedVariation(variation="on", weight=50_000), WeightedVariation(variation="off", weight=50_000))
)


def compiled(flag: Flag) -> dict[str, Any]:
    return {flag.key: compile_flag(flag, {})}


def test_a_numeric_key_is_the_user_of_that_decimal_string() -> None:
    flags = compiled(Flag(key="beta", on=True, targets=(Target(variation="off", values=("42",)),)))
    for context in ({"key": 42}, {"key": 42.0}, {"kind": "user", "key": 42}, {"kind": "multi", "user": {"key": 42}}):
        d = evaluate(flags, "beta", context, None)
        assert (d.value, d.reason.kind) == (False, ReasonKind.TARGET_MATCH), context
    assert evaluate(flags, "beta", {"key": 43}, None).reason.kind is ReasonKind.FALLTHROUGH


def test_a_numeric_key_matches_clauses_on_key_as_text() -> None:
    rule = Rule(id="staff", clauses=(Clause(attribute="key", op=Operator.STARTS_WITH, values=("10",)),),
                serve=Serve(variation="off"))  # fmt: skip
    flags = compiled(Flag(key="beta", on=True, rules=(rule,)))
    assert evaluate(flags, "beta", {"key": 1007}, None).reason.kind is ReasonKind.RULE_MATCH
    assert evaluate(flags, "beta", {"key": 2007}, None).reason.kind is ReasonKind.FALLTHROUGH


def test_a_numeric_key_buckets_as_its_decimal_string() -> None:
    flags = compiled(Flag(key="split", on=True, fallthrough=Serve(rollout=HALF)))
    served = {evaluate(flags, "split", {"key": n}, None).variation for n in range(200)}
    assert served == {"on", "off"}, "a rollout over numeric keys splits them"
    for n in range(200):
        as_text = evaluate(flags, "split", {"key": str(n)}, None)
        assert evaluate(flags, "split", {"key": n}, None).variation == as_text.variation, n
        assert evaluate(flags, "split", {"key": float(n)}, None).variation == as_text.variation, n


def test_a_numeric_bucketing_attribute_buckets_as_its_decimal_string() -> None:
    rollout = Rollout(variations=HALF.variations, bucket_by="account_id")
    flags = compiled(Flag(key="split", on=True, fallthrough=Serve(rollout=rollout)))
    for n in range(200):
        as_text = evaluate(flags, "split", {"key": "u", "account_id": str(n)}, None).variation
        assert evaluate(flags, "split", {"key": "u", "account_id": n}, None).variation == as_text, n


@pytest.mark.parametrize(
    ("context", "why"),
    [
        ({"key": True}, "'key' must be a string or a whole number, not bool"),
        ({"key": 4.5}, "'key' must be a string or a whole number, not 4.5"),
        ({"key": None}, "'key' must be a string or a whole number, not NoneType"),
        ({"key": [1]}, "'key' must be a string or a whole number, not list"),
        ({"name": "ada"}, "no 'key'"),
        ("user-1", "a context is a mapping (dict) or None, not str"),
        ({"kind": "multi"}, "a multi context needs at least one member"),
        ({"kind": "multi", "org": {"name": "x"}}, "member 'org': no 'key'"),
        ({"kind": ""}, "'kind' must be a non-empty string"),
    ],
)
def test_a_context_that_still_cannot_be_used_is_malformed_and_says_why(context: Any, why: str) -> None:
    flags = compiled(Flag(key="beta", on=True))
    d = evaluate(flags, "beta", context, "default")
    assert (d.value, d.reason.error_kind) == ("default", ErrorKind.MALFORMED_CONTEXT)
    assert normalize(context) is None
    assert problem(context) == why


def test_a_usable_context_has_no_problem() -> None:
    for context in (None, {"key": "u"}, {"key": 7}, {"kind": "multi", "user": {"key": 1}, "org": {"key": "o"}}):
        assert problem(context) is None, context
