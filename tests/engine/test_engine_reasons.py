"""One test per evaluation reason and error kind: what an application sees from ``evaluate``."""

from __future__ import annotations

from typing import Any

import pytest

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.evaluation import ErrorKind, ReasonKind
from flagstream.events import (
    Clause,
    Flag,
    Operator,
    Prerequisite,
    Rollout,
    Rule,
    Segment,
    SegmentRule,
    Serve,
    Target,
    Variation,
    WeightedVariation,
)

COLORS = (Variation(key="red", value="#f00"), Variation(key="green", value="#0f0"), Variation(key="blue", value="#00f"))


def colors(**kw: Any) -> Flag:
    base: dict[str, Any] = {
        "key": "color",
        "on": True,
        "variations": COLORS,
        "off_variation": "red",
        "fallthrough": Serve(variation="green"),
    }
    base.update(kw)
    return Flag(**base)


def compiled(*flags: Flag, segments: tuple[Segment, ...] = ()) -> dict:
    segs = {s.key: compile_segment(s) for s in segments}
    return {f.key: compile_flag(f, segs) for f in flags}


def test_off_serves_the_off_variation() -> None:
    d = evaluate(compiled(colors(on=False)), "color", {"key": "u1"}, "default", 7)
    assert (d.value, d.variation, d.reason.kind, d.seq) == ("#f00", "red", ReasonKind.OFF, 7)


def test_fallthrough_serves_the_default_rule() -> None:
    d = evaluate(compiled(colors()), "color", {"key": "u1"}, "default", 3)
    assert (d.value, d.variation, d.reason.kind, d.seq) == ("#0f0", "green", ReasonKind.FALLTHROUGH, 3)
    assert d.reason.in_rollout is False


def test_target_match_comes_before_rules() -> None:
    flag = colors(
        targets=(Target(variation="blue", values=("u1", "u2")),),
        rules=(Rule(id="all", clauses=(Clause(op=Operator.EXISTS, attribute="key"),), serve=Serve(variation="red")),),
    )
    d = evaluate(compiled(flag), "color", {"key": "u2"}, "default")
    assert (d.value, d.reason.kind) == ("#00f", ReasonKind.TARGET_MATCH)
    assert evaluate(compiled(flag), "color", {"key": "u3"}, "default").reason.kind is ReasonKind.RULE_MATCH


def test_rule_match_names_the_rule_and_its_index() -> None:
    flag = colors(
        rules=(
            Rule(
                id="never",
                clauses=(Clause(attribute="state", op=Operator.IN, values=("NY",)),),
                serve=Serve(variation="red"),
            ),
            Rule(
                id="ca",
                clauses=(Clause(attribute="state", op=Operator.IN, values=("CA",)),),
                serve=Serve(variation="blue"),
            ),
        )
    )
    d = evaluate(compiled(flag), "color", {"key": "u1", "state": "CA"}, "default", 9)
    assert (d.value, d.variation, d.seq) == ("#00f", "blue", 9)
    assert (d.reason.kind, d.reason.rule_index, d.reason.rule_id, d.reason.in_rollout) == (
        ReasonKind.RULE_MATCH,
        1,
        "ca",
        False,
    )


def test_first_matching_rule_wins() -> None:
    flag = colors(
        rules=(
            Rule(id="a", clauses=(Clause(op=Operator.EXISTS, attribute="key"),), serve=Serve(variation="blue")),
            Rule(id="b", clauses=(Clause(op=Operator.EXISTS, attribute="key"),), serve=Serve(variation="red")),
        )
    )
    assert evaluate(compiled(flag), "color", {"key": "u"}, None).reason.rule_id == "a"


def test_rollout_rule_reports_in_rollout() -> None:
    rollout = Rollout(variations=(WeightedVariation(variation="blue", weight=100_000),))
    flag = colors(rules=(Rule(id="r", clauses=(), serve=Serve(rollout=rollout)),))
    d = evaluate(compiled(flag), "color", {"key": "u"}, None)
    assert (d.variation, d.reason.kind, d.reason.in_rollout) == ("blue", ReasonKind.RULE_MATCH, True)


def test_prerequisite_failed_serves_off_and_names_the_prerequisite() -> None:
    gate = Flag(key="gate", on=False)
    flag = colors(prerequisites=(Prerequisite(flag="gate", variation="on"),))
    d = evaluate(compiled(gate, flag), "color", {"key": "u"}, "default")
    assert (d.value, d.variation, d.reason.kind, d.reason.prerequisite_key) == (
        "#f00",
        "red",
        ReasonKind.PREREQUISITE_FAILED,
        "gate",
    )


def test_prerequisite_met_evaluates_normally() -> None:
    gate = Flag(key="gate", on=True)
    flag = colors(prerequisites=(Prerequisite(flag="gate", variation="on"),))
    d = evaluate(compiled(gate, flag), "color", {"key": "u"}, "default")
    assert (d.variation, d.reason.kind) == ("green", ReasonKind.FALLTHROUGH)


def test_missing_prerequisite_fails() -> None:
    flag = colors(prerequisites=(Prerequisite(flag="gone", variation="on"),))
    d = evaluate(compiled(flag), "color", {"key": "u"}, "default")
    assert (d.reason.kind, d.reason.prerequisite_key) == (ReasonKind.PREREQUISITE_FAILED, "gone")


def test_prerequisite_cycle_at_run_time_is_malformed_not_a_crash() -> None:
    a = Flag(key="a", on=True, prerequisites=(Prerequisite(flag="b", variation="on"),))
    b = Flag(key="b", on=True, prerequisites=(Prerequisite(flag="a", variation="on"),))
    d = evaluate(compiled(a, b), "a", {"key": "u"}, "default", 4)
    assert (d.value, d.reason.kind, d.reason.error_kind, d.seq) == (
        "default",
        ReasonKind.ERROR,
        ErrorKind.MALFORMED_FLAG,
        4,
    )


def test_unknown_flag_is_flag_not_found() -> None:
    d = evaluate({}, "nope", {"key": "u"}, "default", 2)
    assert (d.value, d.variation, d.reason.error_kind, d.seq) == ("default", None, ErrorKind.FLAG_NOT_FOUND, 2)


def test_archived_flag_is_flag_not_found() -> None:
    d = evaluate(compiled(colors(archived=True)), "color", {"key": "u"}, "default")
    assert (d.value, d.reason.error_kind) == ("default", ErrorKind.FLAG_NOT_FOUND)


@pytest.mark.parametrize(
    "flag",
    [
        colors(off_variation="purple"),
        colors(fallthrough=Serve(variation="purple")),
        colors(fallthrough=Serve()),
        colors(rules=(Rule(id="r", serve=Serve(variation="nope")),)),
        colors(
            rules=(Rule(id="r", clauses=(Clause(op=Operator.MATCHES, values=("(",)),), serve=Serve(variation="red")),)
        ),
        colors(fallthrough=Serve(rollout=Rollout(variations=(WeightedVariation(variation="red", weight=50_000),)))),
        colors(variations=()),
    ],
    ids=["off", "fallthrough", "empty-serve", "rule-variation", "bad-regex", "weights", "no-variations"],
)
def test_malformed_flag_gives_the_default(flag: Flag) -> None:
    d = evaluate(compiled(flag), "color", {"key": "u"}, "default")
    assert (d.value, d.variation, d.reason.kind, d.reason.error_kind) == (
        "default",
        None,
        ReasonKind.ERROR,
        ErrorKind.MALFORMED_FLAG,
    )


@pytest.mark.parametrize(
    "context",
    [
        42,
        "u1",
        [],
        {"state": "CA"},
        {"key": True},
        {"key": 4.5},
        {"kind": "", "key": "u"},
        {"kind": "multi"},
        {"kind": "multi", "user": "u1"},
        {"kind": "multi", "user": {"name": "x"}},
    ],
)
@pytest.mark.parametrize("on", [True, False])
def test_malformed_context(context: Any, on: bool) -> None:
    d = evaluate(compiled(colors(on=on)), "color", context, "default", 5)
    assert (d.value, d.reason.error_kind, d.seq) == ("default", ErrorKind.MALFORMED_CONTEXT, 5)


def test_none_context_is_an_empty_context() -> None:
    flag = colors(
        rules=(Rule(id="r", clauses=(Clause(op=Operator.EXISTS, attribute="key"),), serve=Serve(variation="blue")),)
    )
    d = evaluate(compiled(flag), "color", None, "default")
    assert (d.variation, d.reason.kind) == ("green", ReasonKind.FALLTHROUGH)


def test_multi_kind_context_targets_and_rules_by_kind() -> None:
    flag = colors(
        targets=(Target(variation="blue", values=("acme",), context_kind="organization"),),
        rules=(
            Rule(
                id="eu-orgs",
                clauses=(Clause(context_kind="organization", attribute="region", op=Operator.IN, values=("eu",)),),
                serve=Serve(variation="red"),
            ),
        ),
    )
    flags = compiled(flag)
    multi = {"kind": "multi", "user": {"key": "u1"}, "organization": {"key": "acme"}}
    assert evaluate(flags, "color", multi, None).variation == "blue"
    # a user whose key equals the org key is not targeted: targets are per kind
    assert evaluate(flags, "color", {"key": "acme"}, None).variation == "green"
    org = {"kind": "organization", "key": "initech", "region": "eu"}
    d = evaluate(flags, "color", org, None)
    assert (d.variation, d.reason.rule_id) == ("red", "eu-orgs")


def test_in_segment_rule() -> None:
    staff = SegmentRule(id="staff", clauses=(Clause(attribute="email", op=Operator.ENDS_WITH, values=("@corp.com",)),))
    beta = Segment(key="beta", included=("u1",), excluded=("u2",), rules=(staff,))
    flag = colors(
        rules=(
            Rule(id="beta", clauses=(Clause(op=Operator.IN_SEGMENT, values=("beta",)),), serve=Serve(variation="blue")),
        )
    )
    flags = compiled(flag, segments=(beta,))
    assert evaluate(flags, "color", {"key": "u1"}, None).variation == "blue"
    assert evaluate(flags, "color", {"key": "u2", "email": "x@corp.com"}, None).variation == "green"
    assert evaluate(flags, "color", {"key": "u3", "email": "x@corp.com"}, None).variation == "blue"
    assert evaluate(flags, "color", {"key": "u4", "email": "x@else.com"}, None).variation == "green"


def test_seq_is_per_call() -> None:
    flags = compiled(colors())
    assert [evaluate(flags, "color", {"key": "u"}, None, s).seq for s in (1, 2, 2, 1)] == [1, 2, 2, 1]


def test_variations_of_any_json_type() -> None:
    values = ({"a": [1, 2]}, [1, "x"], 3.5, None, "s", True)
    variations = tuple(Variation(key=f"v{i}", value=v) for i, v in enumerate(values))
    for i, v in enumerate(values):
        flag = Flag(key="j", on=True, variations=variations, off_variation="v0", fallthrough=Serve(variation=f"v{i}"))
        assert evaluate(compiled(flag), "j", {"key": "u"}, "default").value == v


def test_rule_with_hundreds_of_clauses() -> None:
    clauses = tuple(Clause(attribute=f"a{i}", op=Operator.GTE, values=(i,)) for i in range(300))
    flags = compiled(colors(rules=(Rule(id="many", clauses=clauses, serve=Serve(variation="blue")),)))
    everything = {"key": "u", **{f"a{i}": i for i in range(300)}}
    assert evaluate(flags, "color", everything, None).reason.rule_id == "many"
    assert evaluate(flags, "color", {**everything, "a299": 0}, None).reason.kind is ReasonKind.FALLTHROUGH


def test_flag_built_with_wrong_types_is_malformed_not_a_crash() -> None:
    weird = Flag(key="color", on=True, variations=None, rules=(None,))  # type: ignore[arg-type]
    d = evaluate(compiled(weird), "color", {"key": "u"}, "default")
    assert (d.value, d.reason.error_kind) == ("default", ErrorKind.MALFORMED_FLAG)
    weird_segment = Segment(key="s", rules=(None,))  # type: ignore[arg-type]
    flag = colors(
        rules=(Rule(id="r", clauses=(Clause(op=Operator.IN_SEGMENT, values=("s",)),), serve=Serve(variation="blue")),)
    )
    assert evaluate(compiled(flag, segments=(weird_segment,)), "color", {"key": "u"}, None).variation == "green"
