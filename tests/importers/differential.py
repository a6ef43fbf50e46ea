"""Differential checks of the bucketing schemes against each peer's own evaluation engine (from PyPI).

For each scheme, hypothesis generates a flag in the peer system's own format (weights, salts, seeds, hash
versions, coverage, bucketing attributes and context kinds), the same flag is written as a Flagstream flag
with that scheme, and both engines answer for many generated contexts; :func:`run_scheme` returns how many
contexts were compared and the differences found. ``tests/importers/test_schemes_differential.py`` runs a
few thousand contexts per scheme in the suite; ``bench/differential.py`` runs 100,000 per scheme.

Not a test module: helpers shared by the test and the long run.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.events import (
    WEIGHT_TOTAL,
    Clause,
    Flag,
    Operator,
    Rollout,
    Rule,
    Segment,
    SegmentRule,
    Serve,
    Variation,
    WeightedVariation,
)
from flagstream.schemes import growthbook_ranges, running_ends

# flagd-core logs every context it cannot bucket; the comparison counts them instead.
logging.getLogger("openfeature.contrib").setLevel(logging.CRITICAL)

Context = dict[str, Any]
Answer = Callable[[Context], Any]


@dataclass
class Tally:
    scheme: str
    flags: int = 0
    contexts: int = 0
    differences: list[str] = field(default_factory=list)


@dataclass
class Case:
    """One generated flag: the peer's answer and ours, for a context in the neutral form below."""

    describe: str
    peer: Answer
    ours: Answer
    #: The contexts the answer is claimed exact for (others: the peer answers at random, said in the report).
    exact: Callable[[Context], bool] = lambda c: True


# -- contexts ------------------------------------------------------------------------------------------------
#
# A neutral context: {"key": str, "attrs": {name: value}, "kind": "user" | "org"}. Keys and values include
# non-ASCII text, numbers (integral floats too), booleans and absent values, where the schemes differ most.

_TEXT = "abcXYZ019-_.:/@é漢🙂"


def _text(rnd: random.Random, n: int | None = None) -> str:
    return "".join(rnd.choice(_TEXT) for _ in range(n if n is not None else rnd.randint(0, 12)))


def _value(rnd: random.Random, strings_only: bool = False) -> Any:
    r = rnd.random()
    if strings_only or r < 0.55:
        return _text(rnd)
    if r < 0.7:
        return rnd.randint(-(10**6), 10**12)
    if r < 0.8:
        return rnd.choice([0, 1.0, 2.5, -3.0, 1e21, 1e-7, 123456789.0, float(rnd.randint(0, 999))])
    if r < 0.9:
        return rnd.choice([True, False])
    return None


def contexts(seed: int, n: int, *, strings_only: bool = False) -> list[Context]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        attrs: dict[str, Any] = {}
        for name in ("a", "b"):
            if rnd.random() < 0.9:
                attrs[name] = _value(rnd, strings_only)
        if rnd.random() < 0.8:
            attrs["nested"] = {"x": _value(rnd, strings_only)}
        key = _text(rnd) + str(i) if rnd.random() < 0.97 else ""
        out.append({"key": key, "attrs": attrs, "kind": "user" if rnd.random() < 0.85 else "org"})
    return out


def ours(flag: Flag, segments: tuple[Segment, ...] = ()) -> Callable[[dict[str, Any]], Any]:
    compiled_segments = {s.key: compile_segment(s) for s in segments}
    compiled = {flag.key: compile_flag(flag, compiled_segments)}
    assert compiled[flag.key].error is None, compiled[flag.key].problems

    def answer(context: dict[str, Any]) -> Any:
        d = evaluate(compiled, flag.key, context, "<default>")
        assert d.reason.kind != "ERROR", d.reason
        return d.value

    return answer


def nominal_weights(parts: list[float]) -> list[int]:
    """Shares of 100,000 summing to exactly 100,000 (largest remainder), for display and validation."""
    total = sum(parts)
    if total <= 0:
        return [WEIGHT_TOTAL] + [0] * (len(parts) - 1)
    raw = [p * WEIGHT_TOTAL / total for p in parts]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: WEIGHT_TOTAL - sum(out)]:
        out[i] += 1
    return out


def _variations(n: int) -> tuple[Variation, ...]:
    return (*(Variation(key=f"v{i}", value=f"v{i}") for i in range(n)), Variation(key="none", value="none"))


def _flag(serve: Serve, n: int, rules: tuple[Rule, ...] = ()) -> Flag:
    return Flag(key="f", on=True, variations=_variations(n), off_variation="none", rules=rules, fallthrough=serve)


# -- LaunchDarkly ----------------------------------------------------------------------------------------------


def _ld_context(c: Context) -> dict[str, Any]:
    return {"kind": c["kind"], "key": c["key"] or "k", **c["attrs"]}


def _ld_evaluator(flags: dict[str, Any], segments: dict[str, Any]) -> Callable[[str, Context], Any]:
    from ldclient.context import Context as LDContext
    from ldclient.impl.evaluator import Evaluator
    from ldclient.impl.events.types import EventFactory
    from ldclient.impl.model import FeatureFlag
    from ldclient.impl.model import Segment as LDSegment

    fl = {k: FeatureFlag(v) for k, v in flags.items()}
    sg = {k: LDSegment(v) for k, v in segments.items()}
    ev = Evaluator(fl.get, sg.get, lambda key: (None, "NOT_CONFIGURED"))
    factory = EventFactory(False)

    def answer(key: str, c: Context) -> Any:
        return ev.evaluate(fl[key], LDContext.from_dict(_ld_context(c)), factory).detail.value

    return answer


_ATTRS = st.sampled_from(["key", "a", "b", "/nested/x", "missing"])


@st.composite
def ld_rollout(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, WEIGHT_TOTAL), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, WEIGHT_TOTAL], strict=True)]
    if draw(st.booleans()) and weights[-1] > 0:  # weights short of 100,000: the rest goes to the last variation
        weights[-1] -= draw(st.integers(1, weights[-1]))
    seed = draw(st.none() | st.integers(-(2**31), 2**31))
    salt = draw(st.text(max_size=8))
    experiment = draw(st.booleans())
    bucket_by = "key" if experiment else draw(_ATTRS)
    kind = draw(st.sampled_from(["user", "org"]))
    rollout = {
        "variations": [{"variation": i, "weight": w} for i, w in enumerate(weights)],
        "bucketBy": bucket_by,
        "contextKind": kind,
        **({"seed": seed} if seed is not None else {}),
        **({"kind": "experiment"} if experiment else {}),
    }
    ld_flag = {"key": "f", "version": 1, "on": True, "salt": salt, "variations": [f"v{i}" for i in range(n)],
               "offVariation": 0, "fallthrough": {"rollout": rollout}, "rules": [], "targets": []}  # fmt: skip
    peer = _ld_evaluator({"f": ld_flag}, {})
    prefix = f"{seed}." if seed is not None else f"f.{salt}."
    r = Rollout(
        variations=tuple(WeightedVariation(variation=f"v{i}", weight=w) for i, w in enumerate(weights)),
        bucket_by=bucket_by,
        context_kind=kind,
        algorithm="launchdarkly",
        hash_prefix=prefix,
        partial=sum(weights) < WEIGHT_TOTAL,
    )
    return Case(json.dumps(ld_flag), lambda c: peer("f", c), _ours_ld(_flag(Serve(rollout=r), n)))


def _ours_ld(flag: Flag, segments: tuple[Segment, ...] = ()) -> Answer:
    answer = ours(flag, segments)
    return lambda c: answer(_ld_context(c))


@st.composite
def ld_segment(draw: st.DrawFn) -> Case:
    weight = draw(st.integers(0, WEIGHT_TOTAL))
    salt = draw(st.text(max_size=8))
    bucket_by = draw(_ATTRS)
    kind = draw(st.sampled_from(["user", "org"]))
    ld_rule = {"id": "r", "clauses": [], "weight": weight, "bucketBy": bucket_by, "rolloutContextKind": kind}
    seg = {"key": "s", "version": 1, "salt": salt, "included": [], "excluded": [], "rules": [ld_rule]}
    ld_flag = {"key": "f", "version": 1, "on": True, "salt": "x", "variations": ["v0", "v1"], "offVariation": 1,
               "fallthrough": {"variation": 1}, "targets": [],
               "rules": [{"id": "r", "variation": 0, "clauses": [
                   {"attribute": "key", "op": "segmentMatch", "values": ["s"], "negate": False}]}]}  # fmt: skip
    peer = _ld_evaluator({"f": ld_flag}, {"s": seg})
    segment = Segment(
        key="s",
        rules=(
            SegmentRule(
                id="r",
                weight=weight,
                bucket_by=bucket_by,
                algorithm="launchdarkly",
                hash_prefix=f"s.{salt}.",
                context_kind=kind,
            ),
        ),
    )
    rule = Rule(id="r", clauses=(Clause(op=Operator.IN_SEGMENT, values=("s",)),), serve=Serve(variation="v0"))
    flag = _flag(Serve(variation="v1"), 2, (rule,))
    return Case(json.dumps(seg), lambda c: peer("f", c), _ours_ld(flag, (segment,)))


# -- Unleash -----------------------------------------------------------------------------------------------------


def _unleash_engine(features: list[dict[str, Any]]) -> Any:
    from yggdrasil_engine.engine import UnleashEngine

    engine = UnleashEngine()
    engine.take_state(json.dumps({"version": 2, "features": features}))
    return engine


def _unleash_context(c: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"properties": {k: v for k, v in c["attrs"].items() if isinstance(v, str)}}
    if c["key"]:
        out["userId"] = c["key"]
    return out


def _ours_unleash(flag: Flag) -> Answer:
    answer = ours(flag)

    def unleash_view(c: Context) -> Any:
        attrs = {k: v for k, v in c["attrs"].items() if isinstance(v, str)}
        if c["key"]:
            attrs["userId"] = c["key"]
        return answer({"key": c["key"] or "k", **attrs})

    return unleash_view


@st.composite
def unleash_rollout(draw: st.DrawFn) -> Case:
    percentage = draw(st.integers(0, 100))
    # yggdrasil (the engine of Unleash's Python, Ruby, .NET... SDKs) quotes the groupId into a rule language:
    # one with '"' or a trailing backslash matches nobody, and a backslash-quote hashes as '"'. The other SDKs and the
    # client spec hash the groupId as it is, and so does the scheme: such groupIds are a stated difference of
    # the Unleash import (docs/migration.md), not compared here.
    group = draw(st.text(min_size=1, max_size=8).filter(lambda g: '"' not in g and "\\" not in g))
    stickiness = draw(st.sampled_from(["userId", "a", "b"]))
    feature = {"name": "f", "enabled": True, "strategies": [{"name": "flexibleRollout", "constraints": [],
               "parameters": {"rollout": str(percentage), "stickiness": stickiness, "groupId": group}}]}  # fmt: skip
    engine = _unleash_engine([feature])
    r = Rollout(variations=(WeightedVariation(variation="v0", weight=percentage * 1000),), bucket_by=stickiness,
                algorithm="unleash", hash_prefix=f"{group}:", partial=True)  # fmt: skip
    flag = _flag(Serve(variation="none"), 1, (Rule(id="r", serve=Serve(rollout=r)),))
    mine = _ours_unleash(flag)
    return Case(
        json.dumps(feature),
        lambda c: "v0" if engine.check_enabled("f", _unleash_context(c)).is_enabled else "none",
        mine,
    )


@st.composite
def unleash_variants(draw: st.DrawFn) -> Case:
    weights = draw(st.lists(st.integers(0, 3000), min_size=1, max_size=4).filter(lambda ws: sum(ws) > 0))
    stickiness = draw(st.sampled_from(["userId", "a"]))
    variants = [{"name": f"v{i}", "weight": w, "stickiness": stickiness, "weightType": "variable"}
                for i, w in enumerate(weights)]  # fmt: skip
    feature = {"name": "f", "enabled": True, "strategies": [{"name": "default", "parameters": {}}],
               "variants": variants}  # fmt: skip
    engine = _unleash_engine([feature])
    ends = running_ends(weights)
    r = Rollout(
        variations=tuple(
            WeightedVariation(variation=f"v{i}", weight=w) for i, w in enumerate(nominal_weights(weights))
        ),
        bucket_by=stickiness,
        algorithm="unleash_variant",
        hash_prefix="f:",
        ranges=tuple(zip((0, *ends[:-1]), ends, strict=True)),
    )
    flag = _flag(Serve(variation="none"), len(weights), (Rule(id="r", serve=Serve(rollout=r)),))
    mine = _ours_unleash(flag)

    def peer(c: Context) -> Any:
        v = engine.check_variant("f", _unleash_context(c)).variant
        return v.name if v.enabled else "none"

    # Without a stickiness value Unleash picks a variant at random on each call (reported as approximated).
    return Case(
        json.dumps(feature), peer, mine, lambda c: bool(c["key"] if stickiness == "userId" else c["attrs"].get("a"))
    )


# -- flagd ---------------------------------------------------------------------------------------------------------


def _flagd_core(doc: dict[str, Any]) -> Callable[[Context], Any]:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(doc)

    def answer(c: Context) -> Any:
        ctx = EvaluationContext(targeting_key=c["key"] or None, attributes=dict(c["attrs"]))
        return core.resolve_string_value("f", "<default>", ctx).value

    return answer


@st.composite
def flagd_fractional(draw: st.DrawFn) -> Case:
    weights = draw(st.lists(st.integers(0, 200_000), min_size=1, max_size=4).filter(lambda ws: sum(ws) > 0))
    by = draw(st.sampled_from([None, "a", "nested.x", "cat"]))
    pairs = [[f"v{i}", w] for i, w in enumerate(weights)]
    if by == "cat":  # flagd hashes the text JSON Logic's cat makes (a missing value is "null")
        fractional = [{"cat": [{"var": "$flagd.flagKey"}, "-", {"var": "a"}]}, *pairs]
    else:
        fractional = pairs if by is None else [{"var": by}, *pairs]
    doc = {"flags": {"f": {"state": "ENABLED", "defaultVariant": "none",
                           "variants": {**{f"v{i}": f"v{i}" for i in range(len(weights))}, "none": "none"},
                           "targeting": {"fractional": fractional}}}}  # fmt: skip
    peer = _flagd_core(doc)
    ends = running_ends(weights)
    r = Rollout(
        variations=tuple(
            WeightedVariation(variation=f"v{i}", weight=w) for i, w in enumerate(nominal_weights(weights))
        ),
        bucket_by="key" if by is None else "a" if by == "cat" else ("/" + by.replace(".", "/") if "." in by else by),
        algorithm={None: "flagd_v2_pair", "cat": "flagd_v2_cat"}.get(by, "flagd_v2"),
        hash_prefix={None: "f", "cat": "f-"}.get(by, ""),
        ranges=tuple(zip((0, *ends[:-1]), ends, strict=True)),
    )
    answer = ours(_flag(Serve(variation="none"), len(weights), (Rule(id="r", serve=Serve(rollout=r)),)))
    return Case(json.dumps(doc), peer, lambda c: answer({"key": c["key"], **c["attrs"]}))


# -- Flagsmith -----------------------------------------------------------------------------------------------------


def _flagsmith(env: dict[str, Any]) -> Callable[[Context], Any]:
    from flag_engine.engine import get_evaluation_result

    def answer(c: Context) -> Any:
        identity = {"identifier": c["key"] or "k", "key": c["key"] or "k", "traits": dict(c["attrs"])}
        return get_evaluation_result({**env, "identity": identity})["flags"]["f"]["value"]

    return answer


@st.composite
def flagsmith_variants(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 4))
    weights = draw(st.lists(st.integers(0, 10_000).map(lambda x: x / 100), min_size=n, max_size=n))
    priorities = draw(st.permutations(range(n)))
    feature_key = str(draw(st.integers(1, 10**9)))
    variants = [{"value": f"v{i}", "weight": weights[i], "priority": priorities[i]} for i in range(n)]
    env = {"environment": {"key": "env", "name": "env"}, "segments": {},
           "features": {"f": {"key": feature_key, "name": "f", "enabled": True, "value": "none",
                              "variants": variants}}}  # fmt: skip
    peer = _flagsmith(env)
    order = sorted(range(n), key=lambda i: priorities[i])
    ranges: list[tuple[float, float]] = []
    start = 0.0
    for i in order:  # as Flagsmith walks them: limit = weight + start, in float
        limit = weights[i] + start
        ranges.append((start, limit))
        start = limit
    keys = [f"v{i}" for i in order]
    if start < 100:
        ranges.append((start, 100.0))
        keys.append("none")
    r = Rollout(
        variations=tuple(
            WeightedVariation(variation=k, weight=w)
            for k, w in zip(keys, nominal_weights([e - s for s, e in ranges]), strict=True)
        ),
        algorithm="flagsmith",
        hash_prefix=f"{feature_key},",
        ranges=tuple(ranges),
        partial=True,
    )
    answer = ours(_flag(Serve(variation="none"), n, (Rule(id="r", serve=Serve(rollout=r)),)))
    return Case(json.dumps(env), peer, lambda c: answer({"key": c["key"] or "k", **c["attrs"]}))


@st.composite
def flagsmith_split(draw: st.DrawFn) -> Case:
    percent = draw(st.integers(0, 100_000)) / 1000
    segment_key = str(draw(st.integers(1, 10**9)))
    prop = draw(st.sampled_from(["", "a"]))
    env = {"environment": {"key": "env", "name": "env"},
           "features": {"f": {"key": "1", "name": "f", "enabled": True, "value": "none"}},
           "segments": {segment_key: {"key": segment_key, "name": "s", "rules": [{"type": "ALL", "conditions": [
               {"property": prop, "operator": "PERCENTAGE_SPLIT", "value": str(percent)}]}],
               "overrides": [{"key": "1", "name": "f", "enabled": True, "value": "v0"}]}}}  # fmt: skip
    peer = _flagsmith(env)
    segment = Segment(key="s", rules=(SegmentRule(id="r", weight=round(percent * 1000), bucket_by=prop or "key",
                                                  algorithm="flagsmith", hash_prefix=f"{segment_key},"),))  # fmt: skip
    rule = Rule(id="r", clauses=(Clause(op=Operator.IN_SEGMENT, values=("s",)),), serve=Serve(variation="v0"))
    compiled_answer = ours(_flag(Serve(variation="none"), 1, (rule,)), (segment,))
    return Case(json.dumps(env), peer, lambda c: compiled_answer({"key": c["key"] or "k", **c["attrs"]}))


# -- GrowthBook ----------------------------------------------------------------------------------------------------


def _growthbook(features: dict[str, Any]) -> Callable[[Context], Any]:
    from growthbook import GrowthBook

    def answer(c: Context) -> Any:
        attributes = {"id": c["key"], **c["attrs"]}
        return GrowthBook(attributes=attributes, features=features).get_feature_value("f", "<default>")

    return answer


_GB_ATTRS = st.sampled_from(["id", "a", "b"])


@st.composite
def growthbook_force(draw: st.DrawFn) -> Case:
    coverage = draw(st.none() | st.integers(0, 10_000).map(lambda x: x / 10_000))
    version = draw(st.sampled_from([1, 2]))
    seed = draw(st.none() | st.text(max_size=8))
    attr = draw(_GB_ATTRS)
    rule = {"force": "v0", "hashAttribute": attr, "hashVersion": version}
    rule |= ({"seed": seed} if seed is not None else {}) | ({"coverage": coverage} if coverage is not None else {})
    features = {"f": {"defaultValue": "none", "rules": [rule]}}
    peer = _growthbook(features)
    if coverage is None:
        serve = Serve(variation="v0")
    else:
        serve = Serve(
            rollout=Rollout(
                variations=(WeightedVariation(variation="v0", weight=round(coverage * WEIGHT_TOTAL)),),
                bucket_by=attr if attr != "id" else "key",
                algorithm="growthbook",
                hash_prefix=seed or "f",
                hash_version=version,
                ranges=((0.0, coverage),),
                partial=True,
            )
        )
    answer = ours(_flag(Serve(variation="none"), 1, (Rule(id="r", serve=serve),)))
    return Case(json.dumps(features), peer, lambda c: answer({"key": c["key"], **c["attrs"]}))


@st.composite
def growthbook_experiment(draw: st.DrawFn) -> Case:
    n = draw(st.integers(2, 4))
    raw = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    weights = [w / sum(raw) for w in raw] if sum(raw) and draw(st.booleans()) else None
    coverage = draw(st.none() | st.integers(0, 10_000).map(lambda x: x / 10_000))
    version = draw(st.sampled_from([1, 2]))
    seed = draw(st.none() | st.text(max_size=8))
    attr = draw(_GB_ATTRS)
    rule = {"key": "exp", "variations": [f"v{i}" for i in range(n)], "hashAttribute": attr, "hashVersion": version,
            **({"weights": weights} if weights is not None else {}), **({"seed": seed} if seed is not None else {}),
            **({"coverage": coverage} if coverage is not None else {})}  # fmt: skip
    features = {"f": {"defaultValue": "none", "rules": [rule]}}
    peer = _growthbook(features)
    ranges = growthbook_ranges(n, coverage, weights)
    r = Rollout(
        variations=tuple(
            WeightedVariation(variation=f"v{i}", weight=w)
            for i, w in enumerate(nominal_weights([e - s for s, e in ranges]))
        ),
        bucket_by=attr if attr != "id" else "key",
        algorithm="growthbook",
        hash_prefix=seed or "exp",
        hash_version=version,
        ranges=ranges,
        partial=True,
    )
    answer = ours(_flag(Serve(variation="none"), n, (Rule(id="r", serve=Serve(rollout=r)),)))
    return Case(json.dumps(features), peer, lambda c: answer({"key": c["key"], **c["attrs"]}))


#: scheme name -> (flag strategy, contexts with string values only)
SCHEMES: dict[str, tuple[st.SearchStrategy[Case], bool]] = {
    "launchdarkly": (ld_rollout(), False),
    "launchdarkly-segment": (ld_segment(), False),
    "unleash": (unleash_rollout(), True),
    "unleash-variant": (unleash_variants(), True),
    "flagd-v2": (flagd_fractional(), False),
    "flagsmith": (flagsmith_variants(), False),
    "flagsmith-split": (flagsmith_split(), False),
    "growthbook-force": (growthbook_force(), False),
    "growthbook-experiment": (growthbook_experiment(), False),
}


def run_scheme(scheme: str, flags: int, contexts_per_flag: int, *, keep: int = 5) -> Tally:
    """Generate ``flags`` flags of ``scheme`` and compare both engines on ``contexts_per_flag`` contexts each."""
    strategy, strings_only = SCHEMES[scheme]
    tally = Tally(scheme)

    @settings(max_examples=flags, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy, seed=st.integers(0, 2**32))
    def check(case: Case, seed: int) -> None:
        tally.flags += 1
        for c in contexts(seed, contexts_per_flag, strings_only=strings_only):
            if not case.exact(c):
                continue
            tally.contexts += 1
            theirs, mine = case.peer(c), case.ours(c)
            if theirs != mine and len(tally.differences) < keep:
                tally.differences.append(f"{case.describe}\n  context {c!r}: peer {theirs!r}, flagstream {mine!r}")

    check()
    return tally
