"""What the admin API answers 422 with: every invalid flag or segment is reported with the JSON path of the
fault; valid ones have no problem."""

from __future__ import annotations

from typing import Any

import pytest

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
    WeightedVariation,
)
from flagstream.validation import Problem, validate_flag, validate_segment

SEGMENTS = {"beta": Segment(key="beta"), "old": Segment(key="old", archived=True)}


def rule(*clauses: Clause, serve: Serve | None = None, id: str = "r") -> Rule:
    return Rule(id=id, clauses=clauses, serve=serve or Serve(variation="on"))


def paths(flag: Flag, flags: dict[str, Flag] | None = None) -> list[str]:
    return [p.path for p in validate_flag(flag, segments=SEGMENTS, flags=flags or {})]


def weights(*w: int) -> Serve:
    names = ["on", "off", "on2"]
    return Serve(
        rollout=Rollout(variations=tuple(WeightedVariation(variation=names[i], weight=x) for i, x in enumerate(w)))
    )


def test_a_valid_flag_has_no_problem() -> None:
    flag = Flag(
        key="f",
        on=True,
        targets=(Target(variation="on", values=("u1",)),),
        rules=(
            rule(Clause(attribute="state", op=Operator.IN, values=("CA",)), serve=weights(10_000, 90_000)),
            rule(Clause(op=Operator.IN_SEGMENT, values=("beta",)), id="seg"),
            rule(Clause(attribute="v", op=Operator.SEMVER_GTE, values=("1.2.0-rc.1",)), id="v"),
            rule(Clause(attribute="d", op=Operator.AFTER, values=("2024-01-01T00:00:00Z", 1_700_000_000)), id="d"),
            rule(Clause(attribute="email", op=Operator.MATCHES, values=(r"@(corp|staff)\.com$",)), id="re"),
        ),
        prerequisites=(Prerequisite(flag="g", variation="on"),),
    )
    assert validate_flag(flag, segments=SEGMENTS, flags={"g": Flag(key="g")}) == []


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("off variation", {"off_variation": "nope"}, "$.off_variation"),
    ("fallthrough variation", {"fallthrough": Serve(variation="nope")}, "$.fallthrough.variation"),
    ("fallthrough both", {"fallthrough": Serve(variation="on", rollout=weights(100_000).rollout)}, "$.fallthrough"),
    ("weights sum", {"fallthrough": weights(10_000, 80_000)}, "$.fallthrough.rollout.variations"),
    ("rollout variation", {"fallthrough": weights(50_000, 0, 50_000)}, "$.fallthrough.rollout.variations[2].variation"),
    ("target variation", {"targets": (Target(variation="nope", values=("u",)),)}, "$.targets[0].variation"),
    (
        "key targeted twice",
        {"targets": (Target(variation="on", values=("u",)), Target(variation="off", values=("x", "u")))},
        "$.targets[1].values[1]",
    ),
    ("rule serve", {"rules": (rule(serve=Serve(variation="nope")),)}, "$.rules[0].serve.variation"),
    ("rule weights", {"rules": (rule(serve=weights(1, 2)),)}, "$.rules[0].serve.rollout.variations"),
    ("duplicate rule id", {"rules": (rule(), rule())}, "$.rules[1].id"),
    ("unknown operator", {"rules": (rule(Clause(op="between", values=(1,))),)}, "$.rules[0].clauses[0].op"),  # type: ignore[arg-type]
    (
        "bad regex",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.MATCHES, values=("ok", "(unclosed")),
                ),
            )
        },
        "$.rules[0].clauses[0].values[1]",
    ),
    (
        "lookaround regex",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.MATCHES, values=("^(?!admin)",)),
                ),
            )
        },
        "$.rules[0].clauses[0].values[0]",
    ),
    (
        "huge repeat",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.MATCHES, values=("a{99999999999}",)),
                ),
            )
        },
        "$.rules[0].clauses[0].values[0]",
    ),
    (
        "long regex",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.MATCHES, values=("a" * 501,)),
                ),
            )
        },
        "$.rules[0].clauses[0].values[0]",
    ),
    (
        "bad semver",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.SEMVER_LT, values=("1.x",)),
                ),
            )
        },
        "$.rules[0].clauses[0].values[0]",
    ),
    (
        "bad date",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.BEFORE, values=("soon",)),
                ),
            )
        },
        "$.rules[0].clauses[0].values[0]",
    ),
    (
        "number as text",
        {
            "rules": (
                rule(
                    Clause(attribute="a", op=Operator.LT, values=("5",)),
                ),
            )
        },
        "$.rules[0].clauses[0].values[0]",
    ),
    ("no values", {"rules": (rule(Clause(attribute="a", op=Operator.IN)),)}, "$.rules[0].clauses[0].values"),
    (
        "equals many",
        {"rules": (rule(Clause(attribute="a", op=Operator.EQUALS, values=(1, 2))),)},
        "$.rules[0].clauses[0].values",
    ),
    (
        "empty attribute",
        {"rules": (rule(Clause(attribute="", op=Operator.EXISTS)),)},
        "$.rules[0].clauses[0].attribute",
    ),
    (
        "kind multi",
        {"rules": (rule(Clause(op=Operator.EXISTS, context_kind="multi")),)},
        "$.rules[0].clauses[0].context_kind",
    ),
    (
        "missing segment",
        {"rules": (rule(), rule(Clause(op=Operator.IN_SEGMENT, values=("beta", "gone")), id="s"))},
        "$.rules[1].clauses[0].values[1]",
    ),
    (
        "archived segment",
        {"rules": (rule(Clause(op=Operator.IN_SEGMENT, values=("old",))),)},
        "$.rules[0].clauses[0].values[0]",
    ),
    ("self prerequisite", {"prerequisites": (Prerequisite(flag="f", variation="on"),)}, "$.prerequisites[0].flag"),
    (
        "missing prerequisite",
        {"prerequisites": (Prerequisite(flag="nope", variation="on"),)},
        "$.prerequisites[0].flag",
    ),
    (
        "prerequisite variation",
        {"prerequisites": (Prerequisite(flag="g", variation="maybe"),)},
        "$.prerequisites[0].variation",
    ),
]


@pytest.mark.parametrize(("kw", "path"), [(kw, path) for _, kw, path in BAD], ids=[name for name, _, _ in BAD])
def test_invalid_flag_is_reported_at_its_json_path(kw: dict[str, Any], path: str) -> None:
    flag = Flag(key="f", on=True, **kw)
    assert path in paths(flag, {"g": Flag(key="g")})


def test_prerequisite_cycle_is_named() -> None:
    flags = {
        "a": Flag(key="a", prerequisites=(Prerequisite(flag="b", variation="on"),)),
        "b": Flag(key="b", prerequisites=(Prerequisite(flag="c", variation="on"),)),
        "c": Flag(key="c"),
    }
    # c now wants a: a -> b -> c -> a
    updated_c = Flag(key="c", prerequisites=(Prerequisite(flag="a", variation="on"),))
    problems = validate_flag(updated_c, segments={}, flags=flags)
    assert problems == [Problem("$.prerequisites[0].flag", "prerequisite cycle: c -> a -> b -> c")]
    # without the cycle, the same chain is fine
    assert validate_flag(flags["a"], segments={}, flags=flags) == []


def test_segment_validation() -> None:
    good = Segment(
        key="s", rules=(SegmentRule(id="r", clauses=(Clause(attribute="a", op=Operator.IN, values=("x",)),)),)
    )
    assert validate_segment(good) == []
    bad = Segment(
        key="s",
        rules=(
            SegmentRule(id="r", clauses=(Clause(op=Operator.IN_SEGMENT, values=("s",)),)),
            SegmentRule(id="r", clauses=(Clause(attribute="a", op=Operator.MATCHES, values=(r"(x)\1",)),)),
        ),
    )
    assert [p.path for p in validate_segment(bad)] == [
        "$.rules[0].clauses[0].values[0]",  # a segment that contains itself: a cycle
        "$.rules[1].id",
        "$.rules[1].clauses[0].values[0]",
    ]


def test_segments_may_name_segments_but_not_in_a_cycle() -> None:
    def naming(key: str, *others: str) -> Segment:
        clauses = tuple(Clause(op=Operator.IN_SEGMENT, values=(o,)) for o in others)
        return Segment(
            key=key, included=(f"in-{key}",), rules=(SegmentRule(id="r", clauses=clauses),) if clauses else ()
        )

    segments = {"a": naming("a", "b"), "b": naming("b", "c"), "c": naming("c")}
    assert validate_segment(segments["a"], segments) == []
    assert validate_segment(naming("a", "nope"), segments) == [
        Problem("$.rules[0].clauses[0].values[0]", "unknown segment 'nope'")
    ]
    closing = naming("c", "a")  # c now names a: a -> b -> c -> a
    assert validate_segment(closing, segments) == [
        Problem("$.rules[0].clauses[0].values[0]", "segment cycle: c -> a -> b -> c")
    ]
    # Evaluated: a contains what b contains, b what c contains; a cycle (written past validation) contains nobody.
    from flagstream.engine import compile_segments

    compiled = compile_segments(segments)
    assert compiled["a"].contains({"user": {"key": "in-c"}})
    assert not compiled["a"].contains({"user": {"key": "someone"}})
    looped = compile_segments({**segments, "c": closing})
    assert not any(looped[k].contains({"user": {"key": f"in-{k}"}}) for k in "abc")


def test_the_options_of_imported_flags_are_checked() -> None:
    """``Clause.cast``, ``Rollout.fallback_by`` and ``SegmentRule.ranges`` (docs/migration.md) are refused where they
    mean nothing, with the path of the fault."""
    bad = [
        (rule(Clause(attribute="a", op=Operator.IN, values=("x",), cast="perl")), "$.rules[0].clauses[0].cast"),
        (rule(Clause(attribute="a", op=Operator.EXISTS, cast="js")), "$.rules[0].clauses[0].cast"),
        (rule(Clause(attribute="a", op=Operator.LT, values=(1,), cast="python")), "$.rules[0].clauses[0].values"),
        (rule(Clause(attribute="a", op=Operator.GT, values=(True,), cast="js")), "$.rules[0].clauses[0].values"),
        (rule(Clause(attribute="a", op=Operator.EQUALS, values=("x", "y"), cast="js")), "$.rules[0].clauses[0].values"),
        (rule(Clause(attribute="a", op=Operator.MATCHES, values=("x",), cast="jsonlogic")),
         "$.rules[0].clauses[0].values"),
        (rule(Clause(attribute="a", op=Operator.LT, values=("18",), cast="jsonlogic")), "$.rules[0].clauses[0].values"),
        (rule(Clause(attribute="a", op=Operator.CONTAINS, values=(1,), cast="jsonlogic")),
         "$.rules[0].clauses[0].values"),
    ]  # fmt: skip
    for r, path in bad:
        assert path in paths(Flag(key="f", on=True, rules=(r,))), r
    fallback = Serve(rollout=Rollout(variations=(WeightedVariation(variation="on", weight=100_000),), fallback_by="d"))
    assert "$.rules[0].serve.rollout.fallback_by" in paths(Flag(key="f", on=True, rules=(rule(serve=fallback),)))
    ranged = SegmentRule(id="r", weight=500, algorithm="unleash", hash_prefix="p", ranges=((0.0, 0.5),))
    assert [p.path for p in validate_segment(Segment(key="s", rules=(ranged,)))] == ["$.rules[0].ranges"]
    inverted = SegmentRule(id="r", weight=500, algorithm="growthbook", hash_prefix="p", ranges=((0.5, 0.2),))
    assert [p.path for p in validate_segment(Segment(key="s", rules=(inverted,)))] == ["$.rules[0].ranges[0]"]
    fine = [
        rule(Clause(attribute="a", op=Operator.LT, values=("5",), cast="python")),
        rule(Clause(attribute="a", op=Operator.IN, values=("x", 1, True), cast="js", negate=True), id="r2"),
        rule(Clause(attribute="a", op=Operator.SEMVER_GT, values=("1.2",), semver="growthbook", cast="js"), id="r3"),
        rule(Clause(attribute="a", op=Operator.EQUALS, values=("18",), cast="jsonlogic"), id="r4"),
        rule(Clause(attribute="a", op=Operator.SEMVER_GT, values=("1",), semver="flagd", cast="jsonlogic"), id="r5"),
    ]
    assert paths(Flag(key="f", on=True, rules=tuple(fine))) == []
