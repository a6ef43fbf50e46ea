"""Table tests: every clause operator, negated or not, with the edge cases a user meets (missing attribute,
wrong type, invalid semver or date in the context, lists, empty lists, case-insensitive matching)."""

from __future__ import annotations

from typing import Any

import pytest

from flagstream.engine import compile_flag, evaluate
from flagstream.evaluation import ReasonKind
from flagstream.events import Clause, Flag, Operator, Rule, Serve

MISSING = object()


def matches(op: Operator, values: tuple[Any, ...], attr: Any, *, negate: bool = False, ci: bool = False) -> bool:
    """Whether a one-clause rule on attribute ``a`` matches a user whose ``a`` is ``attr``."""
    clause = Clause(attribute="a", op=op, values=values, negate=negate, case_insensitive=ci)
    flag = Flag(
        key="f",
        on=True,
        fallthrough=Serve(variation="off"),
        rules=(Rule(id="r", clauses=(clause,), serve=Serve(variation="on")),),
    )
    compiled = compile_flag(flag, {})
    assert not compiled.malformed, compiled.problems
    ctx: dict[str, Any] = {"key": "u"}
    if attr is not MISSING:
        ctx["a"] = attr
    d = evaluate({"f": compiled}, "f", ctx, None)
    assert d.reason.kind in (ReasonKind.RULE_MATCH, ReasonKind.FALLTHROUGH), d
    return d.reason.kind is ReasonKind.RULE_MATCH


Op = Operator
CASES: list[tuple[Operator, tuple[Any, ...], Any, bool]] = [
    # in / not_in: strings, numbers, booleans, JSON equality (true is not 1)
    (Op.IN, ("CA", "NY"), "CA", True),
    (Op.IN, ("CA", "NY"), "TX", False),
    (Op.IN, ("CA",), "ca", False),
    (Op.IN, (1, 2), 2, True),
    (Op.IN, (1, 2), 2.0, True),
    (Op.IN, (1,), True, False),
    (Op.IN, (True,), 1, False),
    (Op.IN, (True,), True, True),
    (Op.IN, ("1",), 1, False),
    (Op.IN, ("CA",), ["TX", "CA"], True),
    (Op.IN, ("CA",), ["TX"], False),
    (Op.IN, ("CA",), [], False),
    (Op.IN, ("CA",), MISSING, False),
    (Op.IN, ("CA",), None, False),
    (Op.IN, ("CA",), {"x": 1}, False),
    (Op.NOT_IN, ("CA",), "TX", True),
    (Op.NOT_IN, ("CA",), "CA", False),
    (Op.NOT_IN, ("CA",), MISSING, False),
    (Op.NOT_IN, ("CA",), [], True),
    # equals: exactly one value, any JSON type
    (Op.EQUALS, ("iOS",), "iOS", True),
    (Op.EQUALS, ("iOS",), "Android", False),
    (Op.EQUALS, (3,), 3, True),
    (Op.EQUALS, ({"a": 1},), {"a": 1}, True),
    (Op.EQUALS, ({"a": 1},), {"a": 2}, False),
    # strings
    (Op.STARTS_WITH, ("ab", "x"), "abc", True),
    (Op.STARTS_WITH, ("ab",), "cab", False),
    (Op.STARTS_WITH, ("1",), 12, False),
    (Op.ENDS_WITH, ("@corp.com",), "me@corp.com", True),
    (Op.ENDS_WITH, ("@corp.com",), "me@corp.co", False),
    (Op.CONTAINS, ("needle",), "haystackneedlehay", True),
    (Op.CONTAINS, ("needle",), "haystack", False),
    (Op.CONTAINS, ("a",), ["xyz", "bar"], True),
    (Op.MATCHES, (r"^user-\d+$",), "user-42", True),
    (Op.MATCHES, (r"^user-\d+$",), "user-x", False),
    (Op.MATCHES, (r"\d",), 5, False),
    # numbers: several values match if any does
    (Op.LT, (10,), 9.5, True),
    (Op.LT, (10,), 10, False),
    (Op.LTE, (10,), 10, True),
    (Op.GT, (10,), 11, True),
    (Op.GT, (10,), 10, False),
    (Op.GTE, (10,), 10.0, True),
    (Op.GT, (10, 100), 50, True),
    (Op.LT, (10,), "5", False),
    (Op.LT, (10,), True, False),
    (Op.GT, (1,), [0, 5], True),
    (Op.GT, (1,), float("nan"), False),
    # semantic versions, pre-release ordering per semver 2.0
    (Op.SEMVER_EQ, ("2.0.0",), "2.0.0+build.5", True),
    (Op.SEMVER_EQ, ("2.0.0",), "2.0", True),
    (Op.SEMVER_EQ, ("2.0.0",), "2.0.0-rc.1", False),
    (Op.SEMVER_LT, ("1.0.0",), "1.0.0-alpha", True),
    (Op.SEMVER_LT, ("1.0.0-alpha.1",), "1.0.0-alpha", True),
    (Op.SEMVER_LT, ("1.0.0-alpha.beta",), "1.0.0-alpha.1", True),
    (Op.SEMVER_LT, ("1.0.0-beta.11",), "1.0.0-beta.2", True),
    (Op.SEMVER_LT, ("1.0.0-rc.1",), "1.0.0-beta.11", True),
    (Op.SEMVER_GT, ("1.0.0-rc.1",), "1.0.0", True),
    (Op.SEMVER_GT, ("1.9.0",), "1.10.0", True),
    (Op.SEMVER_LTE, ("2.1.0",), "2.1.0", True),
    (Op.SEMVER_GTE, ("2.1.0",), "v2.1.0", True),
    (Op.SEMVER_GTE, ("2.1.0",), "2.0.9", False),
    (Op.SEMVER_GT, ("1.0.0",), "not-a-version", False),
    (Op.SEMVER_GT, ("1.0.0",), "01.2.3", False),
    (Op.SEMVER_GT, ("1.0.0",), 2, False),
    # dates: ISO-8601 (UTC when no zone) and epoch seconds / milliseconds
    (Op.AFTER, ("2024-01-01T00:00:00Z",), "2024-03-01", True),
    (Op.AFTER, ("2024-01-01T00:00:00Z",), "2023-12-31T23:59:59Z", False),
    (Op.AFTER, ("2024-01-01T00:00:00Z",), "2024-01-01T00:30:00+01:00", False),
    (Op.AFTER, ("2024-01-01",), 1_706_000_000, True),
    (Op.AFTER, ("2024-01-01",), 1_706_000_000_000, True),
    (Op.AFTER, (1_704_067_200,), "2024-01-02", True),
    (Op.BEFORE, ("2024-01-01",), "2023-06-01", True),
    (Op.BEFORE, ("2024-01-01",), "2024-06-01", False),
    (Op.BEFORE, ("2024-01-01",), "yesterday", False),
    (Op.BEFORE, ("2024-01-01",), True, False),
    (Op.AFTER, ("2024-01-01",), 10**400, False),
    (Op.AFTER, ("2024-01-01",), float("inf"), False),
    # presence
    (Op.EXISTS, (), "x", True),
    (Op.EXISTS, (), 0, True),
    (Op.EXISTS, (), [], True),
    (Op.EXISTS, (), MISSING, False),
    (Op.EXISTS, (), None, False),
]


@pytest.mark.parametrize(
    ("op", "values", "attr", "expected"), CASES, ids=[f"{c[0].value}-{i}" for i, c in enumerate(CASES)]
)
def test_operator(op: Operator, values: tuple[Any, ...], attr: Any, expected: bool) -> None:
    assert matches(op, values, attr) is expected


@pytest.mark.parametrize(
    ("op", "values", "attr", "expected"), CASES, ids=[f"{c[0].value}-{i}" for i, c in enumerate(CASES)]
)
def test_negated_operator(op: Operator, values: tuple[Any, ...], attr: Any, expected: bool) -> None:
    """``negate`` flips the result whenever the attribute is present; a missing attribute never matches
    (except ``exists``, whose negation means "absent")."""
    present = attr is not MISSING and attr is not None
    want = (not expected) if (present or op is Operator.EXISTS) else False
    assert matches(op, values, attr, negate=True) is want


@pytest.mark.parametrize(
    ("op", "values", "attr"),
    [
        (Op.IN, ("iOS",), "IOS"),
        (Op.EQUALS, ("iOS",), "ios"),
        (Op.STARTS_WITH, ("Ab",), "aBc"),
        (Op.ENDS_WITH, ("@CORP.com",), "me@corp.COM"),
        (Op.CONTAINS, ("NEEDLE",), "a needle"),
        (Op.MATCHES, ("^ios$",), "iOS"),
        (Op.NOT_IN, ("CA",), "ny"),
    ],
)
def test_case_insensitive(op: Operator, values: tuple[Any, ...], attr: str) -> None:
    assert matches(op, values, attr, ci=True) is True
    assert matches(op, values, attr) is (op is Operator.NOT_IN)


def test_key_and_nested_attributes() -> None:
    rule = Rule(
        id="r", clauses=(Clause(attribute="/address/city", op=Op.IN, values=("Paris",)),), serve=Serve(variation="on")
    )
    by_key = Rule(
        id="k", clauses=(Clause(attribute="key", op=Op.STARTS_WITH, values=("admin-",)),), serve=Serve(variation="on")
    )
    flags = {"f": compile_flag(Flag(key="f", on=True, fallthrough=Serve(variation="off"), rules=(rule, by_key)), {})}
    assert evaluate(flags, "f", {"key": "u", "address": {"city": "Paris"}}, None).reason.rule_id == "r"
    assert evaluate(flags, "f", {"key": "u", "address": "Paris"}, None).reason.kind is ReasonKind.FALLTHROUGH
    assert evaluate(flags, "f", {"key": "admin-1"}, None).reason.rule_id == "k"


def test_clauses_are_anded() -> None:
    rule = Rule(
        id="ca-ios",
        clauses=(
            Clause(attribute="state", op=Op.IN, values=("CA",)),
            Clause(attribute="os", op=Op.IN, values=("iOS",)),
        ),
        serve=Serve(variation="on"),
    )
    flags = {"f": compile_flag(Flag(key="f", on=True, fallthrough=Serve(variation="off"), rules=(rule,)), {})}
    assert evaluate(flags, "f", {"key": "u", "state": "CA", "os": "iOS"}, None).value is True
    assert evaluate(flags, "f", {"key": "u", "state": "CA", "os": "Android"}, None).value is False
    assert evaluate(flags, "f", {"key": "u", "os": "iOS"}, None).value is False


def test_rule_without_clauses_matches_everyone() -> None:
    rule = Rule(id="all", serve=Serve(variation="on"))
    flags = {"f": compile_flag(Flag(key="f", on=True, fallthrough=Serve(variation="off"), rules=(rule,)), {})}
    assert evaluate(flags, "f", {"key": "u"}, None).reason.rule_id == "all"


def test_clause_on_absent_context_kind_does_not_match() -> None:
    clause = Clause(context_kind="device", attribute="os", op=Op.IN, values=("iOS",), negate=True)
    rule = Rule(id="r", clauses=(clause,), serve=Serve(variation="on"))
    flags = {"f": compile_flag(Flag(key="f", on=True, fallthrough=Serve(variation="off"), rules=(rule,)), {})}
    assert evaluate(flags, "f", {"key": "u", "os": "Android"}, None).reason.kind is ReasonKind.FALLTHROUGH
