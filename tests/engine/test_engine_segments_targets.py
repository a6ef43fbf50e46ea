"""Segments (included, excluded, rules, weights, kinds), large target lists, and context shapes."""

from __future__ import annotations

import random

from flagstream.bucketing import bucket
from flagstream.context import normalize
from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.evaluation import ReasonKind
from flagstream.events import Clause, Flag, Operator, Rule, Segment, SegmentRule, Serve, Target
from flagstream.semver import parse_semver


def with_segment(*segments: Segment, negate: bool = False) -> dict:
    compiled = {s.key: compile_segment(s) for s in segments}
    clause = Clause(op=Operator.IN_SEGMENT, values=tuple(s.key for s in segments) or ("gone",), negate=negate)
    flag = Flag(
        key="f",
        on=True,
        fallthrough=Serve(variation="off"),
        rules=(Rule(id="seg", clauses=(clause,), serve=Serve(variation="on")),),
    )
    return {"f": compile_flag(flag, compiled)}


def value(flags: dict, context: object) -> object:
    return evaluate(flags, "f", context, "default").value


def test_excluded_wins_over_included_and_rules() -> None:
    everyone = SegmentRule(id="all", clauses=())
    flags = with_segment(Segment(key="s", included=("u1", "u2"), excluded=("u2", "u3"), rules=(everyone,)))
    assert [value(flags, {"key": k}) for k in ("u1", "u2", "u3", "u4")] == [True, False, False, True]


def test_negated_segment_clause() -> None:
    flags = with_segment(Segment(key="s", included=("u1",)), negate=True)
    assert [value(flags, {"key": k}) for k in ("u1", "u2")] == [False, True]


def test_segment_of_another_kind() -> None:
    flags = with_segment(Segment(key="big", context_kind="organization", included=("acme",)))
    assert value(flags, {"key": "acme"}) is False  # a user called acme is not the organization acme
    assert value(flags, {"kind": "multi", "user": {"key": "u"}, "organization": {"key": "acme"}}) is True


def test_segment_rule_weight_keeps_a_sticky_share() -> None:
    rule = SegmentRule(id="some", clauses=(Clause(attribute="beta", op=Operator.IN, values=(True,)),), weight=30_000)
    flags = with_segment(Segment(key="s", rules=(rule,)))
    rnd = random.Random(3)
    keys = [f"{rnd.getrandbits(64):x}" for _ in range(20_000)]
    got = [value(flags, {"key": k, "beta": True}) for k in keys]
    assert got == [bucket("s", k) < 30_000 for k in keys]  # salt: the segment key
    assert abs(sum(got) / len(keys) - 0.30) < 0.015
    assert not any(value(flags, {"key": k, "beta": False}) for k in keys[:1000])


def test_missing_or_archived_segment_contains_nobody() -> None:
    assert value(with_segment(), {"key": "u1"}) is False
    assert value(with_segment(Segment(key="s", included=("u1",), archived=True)), {"key": "u1"}) is False


def test_segment_change_applies_when_flags_are_recompiled() -> None:
    assert value(with_segment(Segment(key="s", included=("u1",))), {"key": "u1"}) is True
    assert value(with_segment(Segment(key="s", included=())), {"key": "u1"}) is False


def test_one_hundred_thousand_targeted_keys() -> None:
    keys = tuple(f"user-{i}" for i in range(100_000))
    flag = Flag(
        key="f",
        on=True,
        fallthrough=Serve(variation="off"),
        targets=(Target(variation="on", values=keys[:50_000]), Target(variation="off", values=keys[50_000:])),
    )
    flags = {"f": compile_flag(flag, {})}
    for k, want in (("user-0", True), ("user-49999", True), ("user-50000", False), ("user-99999", False)):
        d = evaluate(flags, "f", {"key": k}, None)
        assert (d.value, d.reason.kind) == (want, ReasonKind.TARGET_MATCH)
    assert evaluate(flags, "f", {"key": "user-100000"}, None).reason.kind is ReasonKind.FALLTHROUGH


def test_context_shapes() -> None:
    user = {"key": "u", "a": 1}
    assert normalize(user) == {"user": user}
    org = {"kind": "org", "key": "o"}
    assert normalize(org) == {"org": org}
    multi = {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o"}}
    assert normalize(multi) == {"user": {"key": "u"}, "org": {"key": "o"}}
    assert normalize(None) == {}
    for bad in (1, "u", {"a": 1}, {"kind": 3, "key": "u"}, {"kind": "multi"}, {"kind": "multi", "u": {"k": 1}}):
        assert normalize(bad) is None


def test_semver_parsing() -> None:
    assert parse_semver("1.2.3") == parse_semver("v1.2.3") == parse_semver("1.2.3+build.7")
    assert parse_semver("1") == parse_semver("1.0.0")
    assert parse_semver("1.0.0-alpha") < parse_semver("1.0.0-alpha.1") < parse_semver("1.0.0-alpha.beta")
    assert (
        parse_semver("1.0.0-beta.2")
        < parse_semver("1.0.0-beta.11")
        < parse_semver("1.0.0-rc.1")
        < parse_semver("1.0.0")
    )
    for bad in ("", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3-01", "a.b.c", "1.2.3 ", "١.٢.٣", None, 1, [1]):
        assert parse_semver(bad) is None, bad  # type: ignore[arg-type]
