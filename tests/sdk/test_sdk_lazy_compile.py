"""Flags are compiled on their first evaluation, not when their event arrives (a 10,000-flag cold start
compiles nothing): the answers are the same as with eager compilation, and each flag is compiled once."""

from __future__ import annotations

from datetime import UTC, datetime

from flagstream.engine import CompiledFlag, compile_flag, compile_segment, evaluate
from flagstream.events import Clause, Flag, FlagCreated, FlagUpdated, Operator, Rule, Segment, SegmentCreated, Serve
from flagstream.ruleset import Ruleset, apply_events

AT = datetime(2026, 1, 1, tzinfo=UTC)


def created(flag: Flag) -> FlagCreated:
    return FlagCreated(project="p", environment="e", actor="t", at=AT, flag=flag)


def beta_flag(country: str = "NO") -> Flag:
    clause = Clause(attribute="country", op=Operator.IN, values=(country,))
    member = Clause(attribute="key", op=Operator.IN_SEGMENT, values=("beta",))
    return Flag(
        key="checkout",
        on=True,
        rules=(
            Rule(id="country", clauses=(clause,), serve=Serve(variation="on")),
            Rule(id="beta", clauses=(member,), serve=Serve(variation="on")),
        ),
        fallthrough=Serve(variation="off"),
    )


def test_a_flag_is_compiled_on_first_use_and_answers_as_if_compiled_eagerly() -> None:
    segment = Segment(key="beta", included=("ann",))
    events = [
        (1, SegmentCreated(project="p", environment="e", actor="t", at=AT, segment=segment)),
        (2, created(beta_flag())),
    ]
    ruleset, _ = apply_events(Ruleset(project="p", environment="e"), events)
    assert not isinstance(ruleset.compiled["checkout"], CompiledFlag)  # nothing compiled by the fold

    eager = {"checkout": compile_flag(beta_flag(), {"beta": compile_segment(segment)})}
    for context in ({"key": "bob", "country": "NO"}, {"key": "ann"}, {"key": "eve", "country": "SE"}, "bad"):
        lazy = evaluate(ruleset.compiled, "checkout", context, None, 2)
        assert lazy == evaluate(eager, "checkout", context, None, 2), context
    assert isinstance(ruleset.compiled["checkout"], CompiledFlag)  # replaced by its compiled form


def test_a_snapshot_evaluated_late_never_overwrites_a_newer_state() -> None:
    older, _ = apply_events(Ruleset(project="p", environment="e"), [(1, created(beta_flag("NO")))])
    update = FlagUpdated(project="p", environment="e", actor="t", at=AT, flag=beta_flag("SE"))
    newer, _ = apply_events(older, [(2, update)])

    # A reader still holding the older snapshot evaluates first: it gets the old answer...
    assert evaluate(older.compiled, "checkout", {"key": "x", "country": "NO"}, None, 1).variation == "on"
    # ...and the newer snapshot still answers with the new state.
    assert evaluate(newer.compiled, "checkout", {"key": "x", "country": "NO"}, None, 2).variation == "off"
    assert evaluate(newer.compiled, "checkout", {"key": "x", "country": "SE"}, None, 2).variation == "on"
