"""Serving the caller's default, and clauses on the evaluation time, each against the home system's engine:
flagd (a disabled flag, a flag without a default variant, ``$flagd.timestamp``), LaunchDarkly (a flag without an
off variation, a prerequisite that serves nothing), GrowthBook (a null default value), Unleash (``DATE_AFTER`` and
``DATE_BEFORE`` on ``currentTime``); then the evaluation time of the SDK (its clock) and of time travel (the
instant asked about)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flagstream.engine import compile_flag, compile_segments, evaluate
from flagstream.evaluation import ReasonKind
from flagstream.events import (
    Clause,
    Flag,
    FlagCreated,
    Operator,
    Prerequisite,
    Rule,
    Segment,
    SegmentRule,
    Serve,
    Variation,
)
from flagstream.ruleset import Ruleset, apply_events
from tests.importers.differential import _flagd_core, _growthbook, _ld_evaluator, _unleash_engine

YES_NO = (Variation(key="yes", value="yes"), Variation(key="no", value="no"))


def compiled(*flags: Flag, segments: tuple[Segment, ...] = ()) -> dict[str, Any]:
    segs = compile_segments({s.key: s for s in segments})
    out = {f.key: compile_flag(f, segs) for f in flags}
    assert all(c.error is None or repr(c.error) == "SPECIAL" for c in out.values()), [c.problems for c in out.values()]
    return out


# -- the caller's default ---------------------------------------------------------------------------------------


def test_a_disabled_flagd_flag_and_one_without_default_variant_answer_the_callers_default() -> None:
    doc = {"flags": {
        "off": {"state": "DISABLED", "defaultVariant": "yes", "variants": {"yes": "yes", "no": "no"}},
        "nodefault": {"state": "ENABLED", "variants": {"yes": "yes", "no": "no"},
                      "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "yes", None]}},
    }}  # fmt: skip
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(doc)
    ours = compiled(
        Flag(key="off", on=False, off_default=True, variations=YES_NO, off_variation="yes",
             fallthrough=Serve(variation="yes")),
        Flag(key="nodefault", on=True, variations=YES_NO, off_variation="yes", fallthrough=Serve(default=True),
             rules=(Rule(id="r", clauses=(Clause(attribute="plan", op=Operator.IN, values=("pro",)),),
                         serve=Serve(variation="yes")),)),
    )  # fmt: skip
    for plan in ("pro", "free", None):
        attrs = {} if plan is None else {"plan": plan}
        for key in ("off", "nodefault"):
            theirs = core.resolve_string_value(key, "CALLER", EvaluationContext("k", attrs)).value
            mine = evaluate(ours, key, {"key": "k", **attrs}, "CALLER")
            assert mine.value == theirs, (key, plan)
            if mine.value == "CALLER":
                assert mine.variation is None
                assert mine.reason.kind != ReasonKind.ERROR


def test_a_launchdarkly_flag_without_off_variation_and_its_dependents() -> None:
    parent = {"key": "p", "version": 1, "on": False, "salt": "s", "variations": ["a", "b"],
              "fallthrough": {"variation": 0}}  # no offVariation: off serves null  # fmt: skip
    child = {"key": "c", "version": 1, "on": True, "salt": "s", "variations": ["yes", "no"], "offVariation": 1,
             "fallthrough": {"variation": 0}, "prerequisites": [{"key": "p", "variation": 0}]}  # fmt: skip
    peer = _ld_evaluator({"p": parent, "c": child}, {})
    ours = compiled(
        Flag(key="p", on=False, off_default=True, variations=(Variation(key="a", value="a"),
             Variation(key="b", value="b")), off_variation="a", fallthrough=Serve(variation="a")),
        Flag(key="c", on=True, variations=YES_NO, off_variation="no", fallthrough=Serve(variation="yes"),
             prerequisites=(Prerequisite(flag="p", variation="a", require_on=True),)),
    )  # fmt: skip
    context = {"key": "k", "attrs": {}, "kind": "user"}
    assert peer("p", context) is None  # LaunchDarkly's client then answers the caller's default
    assert evaluate(ours, "p", {"key": "k"}, "CALLER").value == "CALLER"
    assert peer("c", context) == evaluate(ours, "c", {"key": "k"}, "CALLER").value == "no"


def test_a_growthbook_feature_with_a_null_default_value() -> None:
    features = {"f": {"defaultValue": None, "rules": [{"condition": {"plan": "pro"}, "force": "yes"}]}}
    peer = _growthbook(features)
    ours = compiled(
        Flag(key="f", on=True, variations=YES_NO, off_variation="no", fallthrough=Serve(default=True),
             rules=(Rule(id="r", clauses=(Clause(attribute="plan", op=Operator.IN, values=("pro",)),),
                         serve=Serve(variation="yes")),))
    )  # fmt: skip
    for plan in ("pro", "free"):
        theirs = peer({"key": "k", "attrs": {"plan": plan}, "kind": "user"})
        assert evaluate(ours, "f", {"key": "k", "plan": plan}, "<default>").value == theirs


# -- the evaluation time ------------------------------------------------------------------------------------------

PAST, FUTURE = "2001-02-03T04:05:06.000Z", "2099-01-01T00:00:00.000Z"


@pytest.mark.parametrize("op", ["DATE_AFTER", "DATE_BEFORE"])
def test_unleash_dates_on_current_time(op: str) -> None:
    ours_op = Operator.AFTER if op == "DATE_AFTER" else Operator.BEFORE
    for date in (PAST, FUTURE):
        feature = {"name": "f", "enabled": True, "strategies": [{"name": "default", "parameters": {}, "constraints": [
            {"contextName": "currentTime", "operator": op, "value": date, "inverted": False}]}]}  # fmt: skip
        engine = _unleash_engine([feature])
        clause = Clause(attribute="currentTime", op=ours_op, values=(date,), now="if_absent")
        flag = Flag(key="f", on=True, variations=YES_NO, off_variation="no", fallthrough=Serve(variation="no"),
                    rules=(Rule(id="r", clauses=(clause,), serve=Serve(variation="yes")),))  # fmt: skip
        ruleset, _ = apply_events(Ruleset(project="p", environment="e"), [(1, created(flag))])
        for given in (None, "2050-06-01T00:00:00.000Z", "1999-01-01T00:00:00.000Z"):
            context = {} if given is None else {"currentTime": given}
            theirs = engine.check_enabled("f", context).is_enabled
            mine = evaluate(ruleset.compiled, "f", {"key": "k", **context}, "x").value == "yes"
            assert mine == theirs, (op, date, given)


def test_flagd_timestamp_is_the_evaluation_time_in_seconds() -> None:
    targeting = {"if": [{">": [{"var": "$flagd.timestamp"}, 1_700_000_000]}, "yes", "no"]}
    doc = {"flags": {"f": {"state": "ENABLED", "defaultVariant": "no", "variants": {"yes": "yes", "no": "no"},
                           "targeting": targeting}}}  # fmt: skip
    peer = _flagd_core(doc)
    clause = Clause(attribute="$flagd.timestamp", op=Operator.GT, values=(1_700_000_000,), now="always")
    flag = Flag(key="f", on=True, variations=YES_NO, off_variation="no", fallthrough=Serve(variation="no"),
                rules=(Rule(id="r", clauses=(clause,), serve=Serve(variation="yes")),))  # fmt: skip
    ruleset, _ = apply_events(Ruleset(project="p", environment="e"), [(1, created(flag))])
    assert peer({"key": "k", "attrs": {}, "kind": "user"}) == evaluate(ruleset.compiled, "f", {"key": "k"}, "x").value
    # The instant given wins over the clock: before 1,700,000,000 s (2023-11-14) the rule does not apply.
    assert evaluate(ruleset.compiled, "f", {"key": "k"}, "x", now=1_600_000_000_000).value == "no"
    assert evaluate(ruleset.compiled, "f", {"key": "k"}, "x", now=1_700_000_001_000).value == "yes"
    # A user attribute of the same name is not the time.
    assert evaluate(ruleset.compiled, "f", {"key": "k", "$flagd.timestamp": 0}, "x").value == "yes"


def created(flag: Flag) -> FlagCreated:
    return FlagCreated(project="p", environment="e", actor="t", at=datetime(2026, 1, 1, tzinfo=UTC), flag=flag)


def test_time_reaches_prerequisites_and_segments_and_time_travel_uses_the_instant() -> None:
    """A flag that reads no time itself but has a timed prerequisite or segment answers by the same time;
    a ruleset built for an instant (time travel) answers as of that instant, whatever the wall clock says."""
    launch = Clause(attribute="currentTime", op=Operator.AFTER, values=("2030-01-01",), now="if_absent")
    segment = Segment(key="launched", rules=(SegmentRule(id="r", clauses=(launch,)),))
    timed = Flag(key="timed", on=True, variations=YES_NO, off_variation="no", fallthrough=Serve(variation="no"),
                 rules=(Rule(id="r", clauses=(Clause(op=Operator.IN_SEGMENT, values=("launched",)),),
                             serve=Serve(variation="yes")),))  # fmt: skip
    child = Flag(key="child", on=True, variations=YES_NO, off_variation="no", fallthrough=Serve(variation="yes"),
                 prerequisites=(Prerequisite(flag="timed", variation="yes"),))  # fmt: skip
    from flagstream.events import SegmentCreated

    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        (1, SegmentCreated(project="p", environment="e", actor="t", at=at, segment=segment)),
        (2, created(timed)),
        (3, created(child)),
    ]  # fmt: skip
    now, _ = apply_events(Ruleset(project="p", environment="e"), events)
    assert [evaluate(now.compiled, k, {"key": "k"}, "x").value for k in ("timed", "child")] == ["no", "no"]
    later_ms = datetime(2031, 1, 1, tzinfo=UTC).timestamp() * 1000
    later, _ = apply_events(Ruleset(project="p", environment="e", clock=lambda: later_ms), events)
    assert [evaluate(later.compiled, k, {"key": "k"}, "x").value for k in ("timed", "child")] == ["yes", "yes"]

    from flagstream.services.history import Versioned, ruleset_of

    found = {("segment", "launched"): Versioned(1, events[0][1]), ("flag", "timed"): Versioned(2, events[1][1]),
             ("flag", "child"): Versioned(3, events[2][1])}  # fmt: skip
    as_of = ruleset_of("p", "e", 3, found, datetime(2031, 1, 1, tzinfo=UTC))
    assert evaluate(as_of.compiled, "child", {"key": "k"}, "x").value == "yes"
    assert evaluate(ruleset_of("p", "e", 3, found).compiled, "child", {"key": "k"}, "x").value == "no"
