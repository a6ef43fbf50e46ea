"""Evaluation never raises, whatever the context holds: property tests over arbitrary contexts against a flag
that uses every operator, targets, a segment, a prerequisite and rollouts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.evaluation import ErrorKind, EvaluationDetail
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
from flagstream.validation import validate_flag

VALUES: dict[Operator, tuple[Any, ...]] = {
    Operator.IN: ("a", 1, True),
    Operator.NOT_IN: ("b",),
    Operator.EQUALS: ({"x": [1]},),
    Operator.STARTS_WITH: ("a",),
    Operator.ENDS_WITH: ("z",),
    Operator.CONTAINS: ("m",),
    Operator.MATCHES: (r"^\w+$",),
    Operator.LT: (10,),
    Operator.LTE: (10.5,),
    Operator.GT: (-1,),
    Operator.GTE: (0,),
    Operator.SEMVER_EQ: ("1.0.0",),
    Operator.SEMVER_LT: ("2.0.0-rc.1",),
    Operator.SEMVER_LTE: ("2.0.0",),
    Operator.SEMVER_GT: ("0.1.0",),
    Operator.SEMVER_GTE: ("1.0.0",),
    Operator.BEFORE: ("2030-01-01",),
    Operator.AFTER: (0,),
    Operator.EXISTS: (),
    Operator.IN_SEGMENT: ("seg",),
    Operator.IN_CIDR: ("10.0.0.0/8", "2001:db8::/32", "192.168.1.1"),
    Operator.MODULO: (3, 1),
}
HALF = Rollout(
    variations=(WeightedVariation(variation="on", weight=50_000), WeightedVariation(variation="off", weight=50_000))
)


def every_operator_flags() -> dict:
    segment = Segment(
        key="seg",
        included=("a",),
        rules=(SegmentRule(id="s", clauses=(Clause(attribute="x", op=Operator.GT, values=(0,)),), weight=50_000),),
    )
    segments = {"seg": compile_segment(segment)}
    rules = tuple(
        Rule(
            id=f"r{i}",
            clauses=(Clause(attribute=attr, op=op, values=VALUES[op], negate=negate, case_insensitive=ci),),
            serve=Serve(rollout=HALF) if i % 3 == 0 else Serve(variation="on"),
        )
        for i, (op, attr, negate, ci) in enumerate(
            (op, attr, negate, ci)
            for op in Operator
            for attr, negate, ci in (("x", False, False), ("/y/z", True, True))
        )
    )
    gate = Flag(key="gate", on=True, fallthrough=Serve(rollout=Rollout(variations=HALF.variations, bucket_by="x")))
    flag = Flag(
        key="all",
        on=True,
        targets=(Target(variation="on", values=("t1",)), Target(variation="off", values=("t2",), context_kind="org")),
        prerequisites=(Prerequisite(flag="gate", variation="on"),),
        rules=rules,
        fallthrough=Serve(rollout=Rollout(variations=HALF.variations, bucket_by="x", context_kind="org")),
    )
    compiled = {f.key: compile_flag(f, segments) for f in (gate, flag)}
    assert not compiled["all"].malformed, compiled["all"].problems
    return compiled


FLAGS = every_operator_flags()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1.0.0", "2.0.0-rc.2", "v1", "2024-05-01", "2024-13-45T99:00", "a", "t1", "ab" * 200]),
    st.binary(max_size=5),
    st.integers(300, 5000).map(lambda n: -(10**n) if n % 2 else 10**n),  # too large for a float or for str()
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
attrs = st.dictionaries(st.sampled_from(["key", "x", "y", "kind", "z", "/y/z"]), json_like, max_size=5)
contexts = st.one_of(
    json_like,
    attrs,
    attrs.map(lambda a: {**a, "key": f"k{len(a)}"}),
    st.builds(lambda u, o: {"kind": "multi", "user": u, "org": o}, attrs, attrs),
    st.builds(
        lambda u, o: {"kind": "multi", "user": {**u, "key": "k"}, "org": {**o, "key": "t2"}},
        attrs,
        attrs,
    ),
)


@given(contexts)
@settings(max_examples=500, deadline=None)
def test_evaluation_never_raises(context: Any) -> None:
    for key in ("all", "gate", "missing"):
        d = evaluate(FLAGS, key, context, "default", 1)
        assert isinstance(d, EvaluationDetail)
        assert d.reason.error_kind is not ErrorKind.EXCEPTION, (context, d)
        if d.reason.error_kind is not None:
            assert d.value == "default"


class Hostile(dict):
    def get(self, *a: Any, **k: Any) -> Any:
        raise RuntimeError("boom")


def test_hostile_mapping_gives_an_error_detail() -> None:
    d = evaluate(FLAGS, "all", Hostile(key="u"), "default")
    assert (d.value, d.reason.error_kind) == ("default", ErrorKind.MALFORMED_CONTEXT)
    d = evaluate(FLAGS, "all", {"kind": "multi", "user": Hostile(key="u")}, "default")
    assert d.value == "default"
    assert d.reason.error_kind is not None


def test_flags_mapping_that_is_not_a_mapping() -> None:
    d = evaluate(None, "all", {"key": "u"}, "default")  # type: ignore[arg-type]
    assert (d.value, d.reason.error_kind) == ("default", ErrorKind.EXCEPTION)


any_values = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.integers(-5, 5),
        st.floats(allow_nan=True),
        st.booleans(),
        st.none(),
        st.sampled_from(["1.0.0", "2024-01-01", "(a+)+", "[", "seg", "gate", "on"]),
    ),
    max_size=3,
).map(tuple)
clauses = st.builds(
    Clause,
    attribute=st.sampled_from(["key", "x", "/y/z", "", "kind"]),
    op=st.sampled_from(list(Operator)),
    values=any_values,
    negate=st.booleans(),
    case_insensitive=st.booleans(),
    context_kind=st.sampled_from(["user", "org", "multi", ""]),
)
serves = st.one_of(
    st.builds(Serve, variation=st.sampled_from(["on", "off", "nope"])),
    st.builds(
        lambda w, by, kind: Serve(
            rollout=Rollout(
                variations=(
                    WeightedVariation(variation="on", weight=w),
                    WeightedVariation(variation="off", weight=100_000 - w),
                ),
                bucket_by=by,
                context_kind=kind,
            )
        ),
        st.integers(0, 100_000),
        st.sampled_from(["key", "x", "missing"]),
        st.sampled_from(["user", "org"]),
    ),
)
arbitrary_flags = st.builds(
    lambda rules, targets, prereq, ft, on: Flag(
        key="any",
        on=on,
        rules=tuple(Rule(id=f"r{i}", clauses=c, serve=s) for i, (c, s) in enumerate(rules)),
        targets=targets,
        prerequisites=(Prerequisite(flag=prereq, variation="on"),) if prereq else (),
        fallthrough=ft,
    ),
    st.lists(st.tuples(st.lists(clauses, max_size=3).map(tuple), serves), max_size=4),
    st.lists(
        st.builds(
            Target,
            variation=st.sampled_from(["on", "off"]),
            values=st.lists(st.text(max_size=3), max_size=3).map(tuple),
            context_kind=st.sampled_from(["user", "org"]),
        ),
        max_size=2,
    ).map(tuple),
    st.sampled_from([None, "gate", "any", "missing"]),
    serves,
    st.booleans(),
)


@given(arbitrary_flags, contexts)
@settings(max_examples=400, deadline=None)
def test_arbitrary_flags_compile_and_evaluate_without_raising(flag: Flag, context: Any) -> None:
    compiled = {**FLAGS, "any": compile_flag(flag, {})}
    d = evaluate(compiled, "any", context, "default", 2)
    assert isinstance(d, EvaluationDetail)
    assert d.reason.error_kind is not ErrorKind.EXCEPTION, (flag, context, d)
    if compiled["any"].problems:
        assert d.reason.error_kind in (ErrorKind.MALFORMED_FLAG, ErrorKind.MALFORMED_CONTEXT)


@given(arbitrary_flags)
@settings(max_examples=300, deadline=None)
def test_validation_never_raises(flag: Flag) -> None:
    problems = validate_flag(flag, segments={"seg": Segment(key="seg")}, flags={"gate": Flag(key="gate")})
    assert all(p.path.startswith("$") and p.message for p in problems)
    assert bool(problems) or not compile_flag(flag, {}).malformed
