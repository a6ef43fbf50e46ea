"""The LaunchDarkly importer against LaunchDarkly's own evaluator: hypothesis generates flag data files (flags with
targets of several kinds, rules of every operator, rollouts and experiments with salts and seeds, prerequisites,
flags without an off variation; segments with included/excluded keys, weighted rules and segments naming
segments), the importer maps them, and every imported flag answers as LaunchDarkly for generated contexts (user,
other kinds, multi-contexts). Then the report: what is approximated or refused, and why."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstream.engine import compile_flag, compile_segments, evaluate
from flagstream.services.importers.launchdarkly import import_launchdarkly
from flagstream.validation import validate_flag, validate_segment
from tests.importers.peer_documents import run_importer

KEYS = ["ada", "bob", "cy", "dee", "eve", "fay"]
KINDS = ["user", "org"]
COUNTRIES = ["NO", "SE", "DK", "no"]
VERSIONS = ["1.0.0", "1.2", "2", "v1.0.0", "2.0.0-rc.1", "10.0.0"]
DATES = ["2020-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00", 1_600_000_000_000, 1_900_000_000_000]

CLAUSES = st.one_of(
    st.fixed_dictionaries({"attribute": st.just("country"), "op": st.just("in"),
                           "values": st.lists(st.sampled_from(COUNTRIES), max_size=3)}),
    st.fixed_dictionaries({"attribute": st.just("key"), "op": st.sampled_from(["in", "startsWith", "endsWith"]),
                           "values": st.lists(st.sampled_from([*KEYS, "a", "e"]), max_size=2)}),
    st.fixed_dictionaries({"attribute": st.just("email"), "op": st.sampled_from(["contains", "matches"]),
                           "values": st.lists(st.sampled_from(["@x.com", "^a", "b.*@", "[0-9]"]), min_size=1,
                                              max_size=2)}),
    st.fixed_dictionaries({"attribute": st.just("age"),
                           "op": st.sampled_from(["lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"]),
                           "values": st.lists(st.sampled_from([18, 30.5, 65, "40"]), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"attribute": st.just("version"),
                           "op": st.sampled_from(["semVerEqual", "semVerLessThan", "semVerGreaterThan"]),
                           "values": st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"attribute": st.just("joined"), "op": st.sampled_from(["before", "after"]),
                           "values": st.lists(st.sampled_from(DATES), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"attribute": st.just("/nested/tier"), "op": st.just("in"),
                           "values": st.lists(st.sampled_from(["gold", "silver"]), min_size=1)}),
    st.fixed_dictionaries({"attribute": st.just("kind"), "op": st.just("in"),
                           "values": st.lists(st.sampled_from(KINDS), min_size=1)}),
    st.fixed_dictionaries({"attribute": st.just("key"), "op": st.just("segmentMatch"),
                           "values": st.lists(st.sampled_from(["s0", "s1", "nope"]), min_size=1, max_size=2)}),
)  # fmt: skip


@st.composite
def clause(draw: st.DrawFn) -> dict[str, Any]:
    c = dict(draw(CLAUSES))
    c["negate"] = draw(st.booleans())
    c["contextKind"] = draw(st.sampled_from(KINDS)) if c["attribute"] != "/nested/tier" else "user"
    return c


@st.composite
def rollout(draw: st.DrawFn, n: int) -> dict[str, Any]:
    cuts = sorted(draw(st.lists(st.integers(0, 100_000), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100_000], strict=True)]
    r: dict[str, Any] = {"variations": [{"variation": i, "weight": w} for i, w in enumerate(weights)],
                         "bucketBy": draw(st.sampled_from(["key", "country", "age", "/nested/tier"])),
                         "contextKind": draw(st.sampled_from(KINDS))}  # fmt: skip
    if draw(st.booleans()):
        r["seed"] = draw(st.integers(-1000, 10**6))
    if draw(st.booleans()):
        r["kind"] = "experiment"
    return r


@st.composite
def serve(draw: st.DrawFn, n: int) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"variation": draw(st.integers(0, n - 1))}
    return {"rollout": draw(rollout(n))}


@st.composite
def data_file(draw: st.DrawFn) -> dict[str, Any]:
    segments = {}
    for i in range(draw(st.integers(0, 2))):
        rules = []
        for j in range(draw(st.integers(0, 2))):
            clauses = [c for c in draw(st.lists(clause(), max_size=2))
                       if c["op"] != "segmentMatch" or all(v < f"s{i}" for v in c["values"])]  # fmt: skip
            r: dict[str, Any] = {"id": f"r{j}", "clauses": clauses}
            if draw(st.booleans()):
                r |= {"weight": draw(st.integers(0, 100_000)), "bucketBy": draw(st.sampled_from(["key", "country"])),
                      "rolloutContextKind": draw(st.sampled_from(KINDS))}  # fmt: skip
            rules.append(r)
        included = draw(st.lists(st.sampled_from(KEYS), max_size=2))
        segments[f"s{i}"] = {"key": f"s{i}", "version": 1, "salt": draw(st.text(max_size=4)), "included": included,
                             "excluded": draw(st.lists(st.sampled_from(KEYS), max_size=2)), "rules": rules}  # fmt: skip
    flags = {}
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(2, 3))
        user_targets, context_targets = [], []
        for v in range(n):
            keys = draw(st.lists(st.sampled_from(KEYS), max_size=2))
            if keys:
                user_targets.append({"variation": v, "values": keys})
        if draw(st.booleans()):
            context_targets = [{"contextKind": "user", "variation": t["variation"], "values": []} for t in user_targets]
            context_targets += [{"contextKind": "org", "variation": draw(st.integers(0, n - 1)),
                                 "values": draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2))}]  # fmt: skip
        flag = {
            "key": f"f{i}", "version": 1, "on": draw(st.booleans()) or i == 0, "salt": draw(st.text(max_size=4)),
            "variations": [f"f{i}-v{v}" for v in range(n)],
            "fallthrough": draw(serve(n)), "targets": user_targets, "contextTargets": context_targets,
            "rules": [{"id": f"r{j}", "clauses": draw(st.lists(clause(), max_size=2)), **draw(serve(n))}
                      for j in range(draw(st.integers(0, 3)))],
            "prerequisites": [{"key": f"f{p}", "variation": draw(st.integers(0, 1))}
                              for p in range(i) if draw(st.booleans())],
        }  # fmt: skip
        if draw(st.integers(0, 3)):
            flag["offVariation"] = draw(st.integers(0, n - 1))
        flags[f"f{i}"] = flag
    return {"flags": flags, "segments": segments}


def contexts() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, key in enumerate(KEYS * 4):
        attrs = {
            "country": COUNTRIES[i % 4],
            "age": [17, 30.5, 65, 70, "40"][i % 5],
            "email": ["ada@x.com", "b1@y.org", "zed@x.com"][i % 3],
            "version": VERSIONS[i % len(VERSIONS)],
            "joined": DATES[i % len(DATES)],
            "nested": {"tier": ["gold", "silver", "bronze"][i % 3]},
        }
        if i % 7 == 3:
            del attrs["country"]
        user = {"kind": "user", "key": key, **attrs}
        org = {"kind": "org", "key": KEYS[(i + 2) % len(KEYS)], **attrs}
        out.append([user, org, {"kind": "multi", "user": {k: v for k, v in user.items() if k != "kind"},
                                "org": {k: v for k, v in org.items() if k != "kind"}}][i % 3])  # fmt: skip
    return out


def ld_context(c: dict[str, Any]) -> dict[str, Any]:
    """The harness's neutral form for ``_ld_evaluator`` (it rebuilds the LaunchDarkly context)."""
    return c


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=data_file())
def test_imported_launchdarkly_flags_answer_as_launchdarkly(doc: dict[str, Any]) -> None:
    from ldclient.context import Context as LDContext
    from ldclient.impl.evaluator import Evaluator
    from ldclient.impl.events.types import EventFactory
    from ldclient.impl.model import FeatureFlag
    from ldclient.impl.model import Segment as LDSegment

    result = import_launchdarkly(json.loads(json.dumps(doc)))
    segments = {s.key: s for s in result.segments}
    for s in result.segments:
        assert validate_segment(s, segments) == [], s
    flags = {f.key: f for f in result.flags}
    for f in result.flags:
        assert validate_flag(f, segments=segments, flags=flags) == [], f
    compiled_segments = compile_segments(segments)
    compiled = {k: compile_flag(f, compiled_segments) for k, f in flags.items()}
    ld_flags = {k: FeatureFlag(v) for k, v in doc["flags"].items()}
    ld_segments = {k: LDSegment(v) for k, v in doc["segments"].items()}
    evaluator = Evaluator(ld_flags.get, ld_segments.get, lambda key: (None, "NOT_CONFIGURED"))
    assert set(flags) | set(result.skipped) == set(doc["flags"])
    for key in flags:
        for c in contexts():
            theirs = evaluator.evaluate(ld_flags[key], LDContext.from_dict(c), EventFactory(False)).detail.value
            mine = evaluate(compiled, key, c, None)
            assert mine.value == theirs, (key, c, json.dumps(doc), mine)


def test_generated_data_files_answer_as_launchdarkly_for_generated_contexts() -> None:
    """The same data files, each flag for generated contexts (new keys, so rollouts and experiments split them;
    attributes of other types; absent ones), as ``make differential`` runs at 100,000 answers."""
    tally = run_importer("launchdarkly", 40, 100)
    assert tally.differences == [], "\n\n".join(tally.differences)
    assert tally.flags >= 60, tally
    assert tally.contexts >= 6_000, tally


def test_the_report_says_what_differs_and_what_is_refused() -> None:
    doc = {
        "flags": {
            "dates": {"key": "dates", "on": True, "variations": [True, False], "offVariation": 1,
                      "fallthrough": {"variation": 1}, "rules": [{"id": "r", "variation": 0, "clauses": [
                          {"attribute": "joined", "op": "after", "values": [1_600_000_000_000]}]}]},
            "lookaround": {"key": "lookaround", "on": True, "variations": [True, False],
                           "fallthrough": {"variation": 1}, "rules": [{"id": "r", "variation": 0, "clauses": [
                               {"attribute": "email", "op": "matches", "values": ["(?=a)"]}]}]},
            "big": {"key": "big", "on": True, "variations": [True, False], "fallthrough": {"variation": 1},
                    "rules": [{"id": "r", "variation": 0, "clauses": [
                        {"attribute": "key", "op": "segmentMatch", "values": ["big-seg"]}]}]},
            "orphan": {"key": "orphan", "on": True, "variations": [1, 2], "fallthrough": {"variation": 0},
                       "prerequisites": [{"key": "elsewhere", "variation": 0}]},
        },
        "segments": {"big-seg": {"key": "big-seg", "unbounded": True, "generation": 3}},
        "flagValues": {"simple": "blue"},
    }  # fmt: skip
    result = import_launchdarkly(doc)
    assert sorted(f.key for f in result.flags) == ["dates", "simple"]
    assert sorted(result.skipped) == ["big", "lookaround", "orphan"]
    by = {(n.subject, n.severity): n.message for n in result.notes}
    assert "read as seconds" in by[("flag dates", "approximated")]
    assert "RE2" in by[("flag lookaround", "unmapped")]
    assert "segment 'big-seg' is not imported" in by[("flag big", "unmapped")]
    assert "big segment" in by[("segment big-seg", "unmapped")]
    assert "elsewhere" in by[("flag orphan", "unmapped")]
    simple = next(f for f in result.flags if f.key == "simple")
    assert evaluate({"simple": compile_flag(simple, {})}, "simple", {"key": "k"}, None).value == "blue"
