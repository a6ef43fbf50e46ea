"""The operators and semantics imported flags need, each against its home system's own engine: semver in each
system's dialect (LaunchDarkly, Flagsmith, flagd), Flagsmith's MODULO and REGEX on numbers and booleans,
LaunchDarkly's ``kind`` clauses and off prerequisites, CIDR ranges (Unleash's remoteAddress), segments naming
segments. Values are generated with hypothesis, valid and invalid forms mixed, and both engines answer."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstream.engine import compile_flag, compile_segments, evaluate
from flagstream.events import Clause, Flag, Operator, Prerequisite, Rule, Segment, SegmentRule, Serve, Variation
from tests.importers.differential import _flagd_core, _ld_evaluator, _unleash_engine

EXAMPLES = settings(max_examples=60, deadline=None)

# -- values -----------------------------------------------------------------------------------------------------

_NUM = st.sampled_from(["0", "1", "2", "10", "01", "99"])
_PRE = st.sampled_from(["", "-beta", "-beta.1", "-rc.11", "-0", "-01", "-alpha.beta", "-x-y"])
_BUILD = st.sampled_from(["", "+b", "+build.5", "+01"])
_PREFIX = st.sampled_from(["", "", "", "v", "V", " "])


@st.composite
def version_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_NUM, min_size=1, max_size=4))
    return draw(_PREFIX) + ".".join(parts) + draw(_PRE) + draw(_BUILD)


VERSIONS = version_text() | st.sampled_from(["", "abc", "1..2", "1.2.3.", "latest"])
#: Always among the values compared: the forms the dialects disagree on.
EDGES = ["v1.0.0", "V1.0.0", "1", "1.2", "1.0.0", "2.0.0-rc.1", "01.0.0", "1.0.0-01", 1, 1.5]
ATTRIBUTE = VERSIONS | st.integers(0, 3) | st.floats(0, 3).map(lambda f: round(f, 1)) | st.booleans() | st.none()


def ours(flag: Flag, segments: tuple[Segment, ...] = (), flags: tuple[Flag, ...] = ()) -> Any:
    compiled_segments = compile_segments({s.key: s for s in segments})
    compiled = {f.key: compile_flag(f, compiled_segments) for f in (flag, *flags)}
    assert all(c.error is None for c in compiled.values()), [c.problems for c in compiled.values()]
    return lambda ctx: evaluate(compiled, flag.key, ctx, "default").value


def rule_flag(*clauses: Clause, key: str = "f") -> Flag:
    return Flag(
        key=key,
        on=True,
        variations=(Variation(key="yes", value="yes"), Variation(key="no", value="no")),
        off_variation="no",
        rules=(Rule(id="r", clauses=clauses, serve=Serve(variation="yes")),),
        fallthrough=Serve(variation="no"),
    )


def ld_rule_flag(clause: dict[str, Any]) -> dict[str, Any]:
    """A LaunchDarkly flag serving "yes" to contexts matching ``clause``, "no" to the others."""
    return {"key": "f", "version": 1, "on": True, "salt": "s", "variations": ["yes", "no"], "offVariation": 1,
            "fallthrough": {"variation": 1}, "rules": [{"id": "r", "variation": 0, "clauses": [clause]}]}  # fmt: skip


# -- semver dialects ----------------------------------------------------------------------------------------------

_LD_SEMVER = {"semVerEqual": Operator.SEMVER_EQ, "semVerLessThan": Operator.SEMVER_LT,
              "semVerGreaterThan": Operator.SEMVER_GT}  # fmt: skip


@EXAMPLES
@given(op=st.sampled_from(sorted(_LD_SEMVER)), wanted=version_text(), values=st.lists(ATTRIBUTE, min_size=20))
def test_launchdarkly_semver(op: str, wanted: str, values: list[Any]) -> None:
    from flagstream.semver import parse_semver

    if parse_semver(wanted, "launchdarkly") is None:
        return  # the importer refuses a clause value LaunchDarkly cannot read (it matches nothing there)
    clause = {"attribute": "v", "op": op, "values": [wanted], "negate": False}
    ld_flag = ld_rule_flag(clause)
    peer = _ld_evaluator({"f": ld_flag}, {})
    mine = ours(rule_flag(Clause(attribute="v", op=_LD_SEMVER[op], values=(wanted,), semver="launchdarkly")))
    for v in [*values, *EDGES, wanted, "v" + wanted]:
        c = {"key": "k", "attrs": {"v": v}, "kind": "user"}
        assert peer("f", c) == mine({"key": "k", "v": v}), (op, wanted, v)


_FS_SEMVER = {"EQUAL": Operator.SEMVER_EQ, "LESS_THAN": Operator.SEMVER_LT, "LESS_THAN_INCLUSIVE": Operator.SEMVER_LTE,
              "GREATER_THAN": Operator.SEMVER_GT, "GREATER_THAN_INCLUSIVE": Operator.SEMVER_GTE}  # fmt: skip


def _flagsmith_condition(condition: dict[str, Any]) -> Any:
    from flag_engine.engine import get_evaluation_result

    env = {"environment": {"key": "env", "name": "env"},
           "features": {"f": {"key": "1", "name": "f", "enabled": True, "value": "no"}},
           "segments": {"9": {"key": "9", "name": "s", "rules": [{"type": "ALL", "conditions": [condition]}],
                              "overrides": [{"key": "1", "name": "f", "enabled": True, "value": "yes"}]}}}  # fmt: skip

    def answer(traits: dict[str, Any]) -> Any:
        identity = {"identifier": "k", "key": "k", "traits": traits}
        return get_evaluation_result({**env, "identity": identity})["flags"]["f"]["value"]

    return answer


@EXAMPLES
@given(op=st.sampled_from(sorted(_FS_SEMVER)), wanted=version_text(), values=st.lists(VERSIONS, min_size=20))
def test_flagsmith_semver_is_strict(op: str, wanted: str, values: list[str]) -> None:
    from flagstream.semver import parse_semver

    if parse_semver(wanted, "strict") is None:
        return  # refused by the importer
    peer = _flagsmith_condition({"property": "v", "operator": op, "value": f"{wanted}:semver"})
    clause = Clause(attribute="v", op=_FS_SEMVER[op], values=(wanted,), semver="strict", numeric_strings=True)
    mine = ours(rule_flag(clause))
    for v in [*values, *EDGES, wanted, "v" + wanted]:
        assert peer({"v": v}) == mine({"key": "k", "v": v}), (op, wanted, v)


_FLAGD_SEMVER = {"=": Operator.SEMVER_EQ, "<": Operator.SEMVER_LT, "<=": Operator.SEMVER_LTE, ">": Operator.SEMVER_GT,
                 ">=": Operator.SEMVER_GTE}  # fmt: skip


@EXAMPLES
@given(op=st.sampled_from(sorted(_FLAGD_SEMVER)), wanted=version_text(), values=st.lists(ATTRIBUTE, min_size=20))
def test_flagd_semver_coerces_partial_versions(op: str, wanted: str, values: list[Any]) -> None:
    from flagstream.semver import parse_semver

    if parse_semver(wanted, "flagd") is None:
        return  # refused by the importer
    doc = {"flags": {"f": {"state": "ENABLED", "defaultVariant": "no", "variants": {"yes": "yes", "no": "no"},
                           "targeting": {"if": [{"sem_ver": [{"var": "v"}, op, wanted]}, "yes", "no"]}}}}  # fmt: skip
    peer = _flagd_core(doc)
    mine = ours(rule_flag(Clause(attribute="v", op=_FLAGD_SEMVER[op], values=(wanted,), semver="flagd")))
    for v in [*values, *EDGES, wanted, "V" + wanted]:
        if v is None:
            continue  # flagd-core logs and answers the flag's default: the importer's concern (absent attribute)
        c = {"key": "k", "attrs": {"v": v}, "kind": "user"}
        assert peer(c) == mine({"key": "k", "v": v}), (op, wanted, v)


def test_the_bugs_of_the_issue_semver_leniency_and_strictness() -> None:
    from flagstream.semver import parse_semver

    assert parse_semver("v1.2.3", "launchdarkly") is None  # LaunchDarkly refuses a leading v
    assert parse_semver("v1.2.3") is not None  # Flagstream's own reading is unchanged
    assert parse_semver("2", "strict") is None
    for text in ("1", "1.2", "V1.0.0"):  # flagd coerces these
        assert parse_semver(text, "flagd") is not None
    assert parse_semver("1", "flagd") == parse_semver("1.0.0", "strict")


# -- Flagsmith MODULO and REGEX -------------------------------------------------------------------------------------

TRAITS = (
    st.integers(-50, 50)
    | st.floats(-50, 50, allow_nan=False).map(lambda f: round(f, 2))
    | st.booleans()
    | (st.text(alphabet="0123456789.-aTrue", max_size=6))
)


@EXAMPLES
@given(divisor=st.integers(1, 7), remainder=st.integers(-2, 6), values=st.lists(TRAITS, min_size=30))
def test_flagsmith_modulo(divisor: int, remainder: int, values: list[Any]) -> None:
    peer = _flagsmith_condition({"property": "n", "operator": "MODULO", "value": f"{divisor}|{remainder}"})
    # Flagsmith reads a trait that looks like a number as that number: "7" is 7 (numeric_strings).
    clause = Clause(attribute="n", op=Operator.MODULO, values=(float(divisor), float(remainder)), numeric_strings=True)
    mine = ours(rule_flag(clause))
    for v in values:
        assert peer({"n": v}) == mine({"key": "k", "n": v}), (divisor, remainder, v)


@EXAMPLES
@given(pattern=st.sampled_from(["[0-9]+", "True", "Fal", "1\\.5", "-?\\d+$", "a|T", "\\d\\.\\d"]),
       values=st.lists(TRAITS, min_size=30))  # fmt: skip
def test_flagsmith_regex_reads_numbers_and_booleans_as_python_text(pattern: str, values: list[Any]) -> None:
    peer = _flagsmith_condition({"property": "n", "operator": "REGEX", "value": pattern})
    # Flagsmith matches at the start (re.match): the importer anchors the pattern.
    clause = Clause(
        attribute="n", op=Operator.MATCHES, values=(f"^(?:{pattern})",), stringify="python", numeric_strings=True
    )
    mine = ours(rule_flag(clause))
    for v in values:
        assert peer({"n": v}) == mine({"key": "k", "n": v}), (pattern, v)


def test_js_text_of_numbers_and_booleans() -> None:
    clause = Clause(attribute="n", op=Operator.IN, values=("x",))
    mine = ours(
        rule_flag(Clause(attribute="n", op=Operator.MATCHES, values=("^(true|1|1e\\+21|0\\.5)$",), stringify="js"))
    )
    assert [mine({"key": "k", "n": v}) for v in (True, 1.0, 1e21, 0.5, False, 2, "true")] == (
        ["yes", "yes", "yes", "yes", "no", "no", "yes"]
    )
    assert ours(rule_flag(clause))({"key": "k", "n": 1}) == "no"


# -- LaunchDarkly: kind clauses, off prerequisites ----------------------------------------------------------------

CONTEXTS = [
    {"kind": "user", "key": "u"},
    {"kind": "org", "key": "o"},
    {"kind": "device", "key": "d"},
    {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o"}},
    {"kind": "multi", "device": {"key": "d"}, "org": {"key": "o"}},
]


@EXAMPLES
@given(
    op=st.sampled_from(["in", "startsWith", "matches"]),
    values=st.lists(st.sampled_from(["user", "org", "dev", "u.*r"]), min_size=1, max_size=2),
    negate=st.booleans(),
)
def test_launchdarkly_kind_clauses(op: str, values: list[str], negate: bool) -> None:
    clause = {"attribute": "kind", "op": op, "values": values, "negate": negate}
    ld_flag = ld_rule_flag(clause)
    from ldclient.context import Context as LDContext
    from ldclient.impl.evaluator import Evaluator
    from ldclient.impl.events.types import EventFactory
    from ldclient.impl.model import FeatureFlag

    flag = FeatureFlag(ld_flag)
    evaluator = Evaluator(lambda k: None, lambda k: None, lambda k: (None, "NOT_CONFIGURED"))
    ours_op = {"in": Operator.IN, "startsWith": Operator.STARTS_WITH, "matches": Operator.MATCHES}[op]
    mine = ours(rule_flag(Clause(attribute="kind", op=ours_op, values=tuple(values), negate=negate)))
    for c in CONTEXTS:
        theirs = evaluator.evaluate(flag, LDContext.from_dict(c), EventFactory(False)).detail.value
        assert theirs == mine(c), (op, values, negate, c)


def test_an_off_launchdarkly_prerequisite_fails_whatever_it_serves() -> None:
    parent = {"key": "p", "version": 1, "on": False, "salt": "s", "variations": ["a", "b"], "offVariation": 0,
              "fallthrough": {"variation": 0}}  # fmt: skip
    child = {"key": "f", "version": 1, "on": True, "salt": "s", "variations": ["yes", "no"], "offVariation": 1,
             "fallthrough": {"variation": 0}, "prerequisites": [{"key": "p", "variation": 0}]}  # fmt: skip
    peer = _ld_evaluator({"f": child, "p": parent}, {})
    p = Flag(key="p", on=False, variations=(Variation(key="a", value="a"), Variation(key="b", value="b")),
             off_variation="a", fallthrough=Serve(variation="a"))  # fmt: skip
    f = Flag(key="f", on=True, variations=(Variation(key="yes", value="yes"), Variation(key="no", value="no")),
             off_variation="no", fallthrough=Serve(variation="yes"),
             prerequisites=(Prerequisite(flag="p", variation="a", require_on=True),))  # fmt: skip
    c = {"key": "k", "attrs": {}, "kind": "user"}
    assert peer("f", c) == "no"
    assert ours(f, flags=(p,))({"key": "k"}) == "no"
    # Flagstream's own prerequisites (require_on false) are unchanged: the off variation is what it serves.
    own = Flag(key="f", on=True, variations=f.variations, off_variation="no", fallthrough=Serve(variation="yes"),
               prerequisites=(Prerequisite(flag="p", variation="a"),))  # fmt: skip
    assert ours(own, flags=(p,))({"key": "k"}) == "yes"


# -- CIDR (Unleash remoteAddress) -----------------------------------------------------------------------------------

RANGES = ["10.0.0.0/8", "192.168.1.1", "172.16.0.0/12", "2001:db8::/32", "::1", "0.0.0.0/0"]
ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["10.1.2.3", "192.168.1.1", "192.168.1.2", "2001:db8::5", "::1", "not an ip", "", "10.0.0"]),
)


@EXAMPLES
@given(ranges=st.lists(st.sampled_from(RANGES[:-1]), min_size=1, max_size=3, unique=True),
       addresses=st.lists(ADDRESSES, min_size=20))  # fmt: skip
def test_cidr_ranges_as_unleash_remote_address(ranges: list[str], addresses: list[str]) -> None:
    feature = {"name": "f", "enabled": True,
               "strategies": [{"name": "remoteAddress", "parameters": {"IPs": ", ".join(ranges)}}]}  # fmt: skip
    engine = _unleash_engine([feature])
    mine = ours(rule_flag(Clause(attribute="remoteAddress", op=Operator.IN_CIDR, values=tuple(ranges))))
    for a in addresses:
        theirs = engine.check_enabled("f", {"remoteAddress": a}).is_enabled
        assert theirs == (mine({"key": "k", "remoteAddress": a}) == "yes"), (ranges, a, json.dumps(feature))


# -- segments naming segments ---------------------------------------------------------------------------------------


def test_launchdarkly_segments_naming_segments() -> None:
    inner = {"key": "inner", "version": 1, "salt": "x", "included": ["a"], "excluded": [], "rules": []}
    names_inner = {"attribute": "key", "op": "segmentMatch", "values": ["inner"], "negate": False}
    outer = {"key": "outer", "version": 1, "salt": "x", "included": ["b"], "excluded": [],
             "rules": [{"id": "r", "clauses": [names_inner]}]}  # fmt: skip
    ld_flag = {"key": "f", "version": 1, "on": True, "salt": "s", "variations": ["yes", "no"], "offVariation": 1,
               "fallthrough": {"variation": 1}, "rules": [{"id": "r", "variation": 0, "clauses": [
                   {"attribute": "key", "op": "segmentMatch", "values": ["outer"], "negate": False}]}]}  # fmt: skip
    peer = _ld_evaluator({"f": ld_flag}, {"inner": inner, "outer": outer})
    segments = (
        Segment(key="inner", included=("a",)),
        Segment(key="outer", included=("b",),
                rules=(SegmentRule(id="r", clauses=(Clause(op=Operator.IN_SEGMENT, values=("inner",)),)),)),
    )  # fmt: skip
    mine = ours(rule_flag(Clause(op=Operator.IN_SEGMENT, values=("outer",))), segments)
    for key in ("a", "b", "c"):
        assert peer("f", {"key": key, "attrs": {}, "kind": "user"}) == mine({"key": key}), key
    assert mine({"key": "a"}) == "yes"
