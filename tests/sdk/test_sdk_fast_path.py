"""The typed accessors' fast path: the same answers as the general path for every kind of flag and context,
and evaluation counts that add up exactly (fast path, general path, across flag changes and clients)."""

from __future__ import annotations

import collections
import itertools
import os

import pytest

from flagstream import FlagstreamClient, TestData
from flagstream import cache as cache_module
from flagstream.events import (
    Clause,
    Flag,
    Prerequisite,
    Rollout,
    Rule,
    Segment,
    Serve,
    Target,
    Variation,
    WeightedVariation,
)

BOOL = (Variation(key="on", value=True), Variation(key="off", value=False))
STRINGS = (Variation(key="blue", value="blue"), Variation(key="green", value="green"))
HALF = Rollout(
    variations=(WeightedVariation(variation="on", weight=50_000), WeightedVariation(variation="off", weight=50_000))
)
THIRDS = Rollout(
    variations=(
        WeightedVariation(variation="blue", weight=33_000),
        WeightedVariation(variation="green", weight=67_000),
    ),
    bucket_by="plan",
)
THREE_WAY = Rollout(  # three variations: the bucket compared twice
    variations=(
        WeightedVariation(variation="blue", weight=30_000),
        WeightedVariation(variation="green", weight=30_000),
        WeightedVariation(variation="red", weight=40_000),
    )
)
CA = Clause(attribute="state", op="in", values=("CA",))
CA_OR_NY = Clause(attribute="state", op="in", values=("CA", "NY"))
NOT_IOS = Clause(attribute="os", op="in", values=("iOS",), negate=True)
ORG = Clause(context_kind="organization", attribute="tier", op="in", values=("gold",))

FLAGS = [
    Flag(key="always-on", on=True),
    Flag(key="off", on=False),
    Flag(key="off-default", on=False, off_default=True),  # serves the caller's default: the general path only
    Flag(key="archived", on=True, archived=True),
    Flag(
        key="strings",
        kind="string",
        on=True,
        variations=STRINGS,
        off_variation="blue",
        fallthrough=Serve(variation="green"),
    ),
    Flag(key="rollout", on=True, fallthrough=Serve(rollout=HALF)),
    Flag(
        key="rules",
        on=True,
        rules=(
            Rule(id="ca", clauses=(CA, NOT_IOS), serve=Serve(rollout=HALF)),
            Rule(id="ny", clauses=(CA_OR_NY,), serve=Serve(variation="on")),
            Rule(id="org", clauses=(ORG,), serve=Serve(variation="on")),
        ),
        fallthrough=Serve(variation="off"),
    ),
    Flag(key="targets", on=True, targets=(Target(variation="off", values=("user-1", "user-3")),)),
    Flag(
        key="segment",
        on=True,
        rules=(Rule(id="beta", clauses=(Clause(op="in_segment", values=("beta",)),), serve=Serve(variation="off")),),
    ),
    Flag(key="needs-rules", on=True, prerequisites=(Prerequisite(flag="rules", variation="on"),)),
    Flag(
        key="by-plan",
        kind="string",
        on=True,
        variations=STRINGS,
        off_variation="blue",
        fallthrough=Serve(rollout=THIRDS),
    ),
    # The shapes of fast()'s other generated lines: a rollout of three (a bucket compared twice), a partial
    # rollout (the rest falls through), user and organization targets, a clause that is not a string `in`
    # (a list value read element by element), and a rule on the organization kind only.
    Flag(
        key="shapes",
        kind="string",
        on=True,
        variations=(*STRINGS, Variation(key="red", value="red")),
        off_variation="blue",
        targets=(
            Target(variation="red", values=("user-3",)),
            Target(context_kind="organization", variation="green", values=("o2",)),
        ),
        rules=(
            Rule(
                id="part",
                clauses=(CA,),
                serve=Serve(
                    rollout=Rollout(variations=(WeightedVariation(variation="red", weight=40_000),), partial=True)
                ),
            ),
            Rule(
                id="starts",
                clauses=(Clause(attribute="os", op="starts_with", values=("iO",)),),
                serve=Serve(variation="green"),
            ),
            Rule(id="org", clauses=(ORG,), serve=Serve(variation="red")),
        ),
        fallthrough=Serve(rollout=THREE_WAY),
    ),
]

# Flags made only of what the compiled accessors evaluate themselves (``CompiledFlag.plan``): user targets,
# string `in` clauses (one value, several, negated), rollouts by the user's key of two, three and five
# variations (the last one past the generated code's chain of comparisons), partial or not.
COLOURS = ("blue", "green", "red", "white", "black")
FIVE = tuple(WeightedVariation(variation=v, weight=20_000) for v in COLOURS)
PLANNED = [
    Flag(
        key="planned",
        on=True,
        targets=(Target(variation="on", values=("user-1", "user-13")),),
        rules=(
            Rule(id="ca", clauses=(CA, NOT_IOS), serve=Serve(rollout=HALF)),
            Rule(
                id="part",
                clauses=(CA_OR_NY,),
                serve=Serve(
                    rollout=Rollout(variations=(WeightedVariation(variation="on", weight=30_000),), partial=True)
                ),
            ),
            Rule(
                id="ny",
                clauses=(Clause(attribute="state", op="not_in", values=("CA", "TX")),),
                serve=Serve(variation="off"),
            ),
        ),
        fallthrough=Serve(rollout=HALF),
    ),
    Flag(
        key="planned-strings",
        kind="string",
        on=True,
        variations=tuple(Variation(key=c, value=c) for c in COLOURS),
        off_variation="blue",
        targets=(Target(variation="red", values=("user-3",)),),
        rules=(
            Rule(
                id="ios",
                clauses=(Clause(attribute="os", op="equals", values=("iOS",)),),
                serve=Serve(rollout=Rollout(variations=FIVE)),
            ),
        ),
        fallthrough=Serve(rollout=THREE_WAY),
    ),
]
FLAGS += PLANNED

CONTEXTS = [
    {"key": "user-1", "state": "CA", "os": "Android"},
    {"key": "user-2", "state": "CA", "os": "iOS"},
    {"key": "user-3", "state": "NY", "plan": "pro"},
    {"key": "user-4", "state": ["CA", "TX"], "plan": 7},
    {"key": "user-5", "state": ("NY",), "os": None},
    {"key": "user-12", "state": "CA", "os": ["Android", "iOS 17"]},
    {"key": "user-13", "state": "TX", "os": "iOS"},
    {"key": "user-6", "state": {"not": "hashable"}},
    {"kind": "user", "key": "user-7", "state": "CA"},
    {"kind": "multi", "user": {"key": "user-8", "state": "CA"}, "organization": {"key": "o", "tier": "gold"}},
    {"kind": "organization", "key": "o2", "tier": "gold"},
    {"key": 42, "state": "CA"},
    {"state": "CA"},
    {"kind": 3, "key": "x"},
    collections.OrderedDict(key="user-9", state="CA"),
    collections.defaultdict(str, key="user-10", state="NY"),
    collections.defaultdict(str, state="NY"),  # no key: must stay without one
    None,
    "user-11",
    ["key"],
    42,
]


@pytest.fixture(autouse=True, params=["compiled", "python"])
def accessors(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the compiled accessors (``flagstream._accel``) and with the pure-Python ones."""
    if request.param == "python":
        monkeypatch.setattr(cache_module, "_ACCEL", None)
    elif cache_module._ACCEL is None:
        if os.environ.get("FLAGSTREAM_PURE_PYTHON", "") not in ("", "0"):
            pytest.skip("FLAGSTREAM_PURE_PYTHON is set: the compiled accessors are off")
        pytest.fail("flagstream._accel is not compiled: `make` builds it (pip install -e . with a C compiler)")
    return str(request.param)


def test_the_client_has_the_accessors_asked_for(accessors: str) -> None:
    client = FlagstreamClient.from_test_data(data())
    compiled = type(client.bool_variation.__self__).__name__ == "Accessors"
    assert compiled is (accessors == "compiled")
    assert (type(client.string_variation.__self__).__name__ == "Accessors") is compiled
    for flag in PLANNED:  # these are evaluated from their plan by the compiled accessors
        assert client._flags[flag.key].plan is not None
    for key in ("rules", "shapes", "by-plan", "needs-rules", "segment"):  # these are not (their ``fast`` is)
        assert client._flags[key].plan is None
    # An exposure hook (an observer) puts every accessor on the general path; removing it gives them back.
    remove = client._add_observer(lambda key, context, detail: None)
    assert not hasattr(client.bool_variation, "__self__")  # the general path's function (see cache._general)
    remove()
    assert (type(client.bool_variation.__self__).__name__ == "Accessors") is compiled


def data() -> TestData:
    td = TestData()
    td.update_segment(Segment(key="beta", included=("user-2", "user-5")))
    for flag in FLAGS:
        td.update(flag)
    return td


def test_the_fast_path_answers_as_the_general_path_for_every_flag_and_context() -> None:
    client = FlagstreamClient.from_test_data(data())
    keys = [f.key for f in FLAGS] + ["missing"]
    for key, context in itertools.product(keys, CONTEXTS):
        before = dict(context) if isinstance(context, dict) else context
        for value, detail, default in (
            (client.bool_variation(key, context, None), client.bool_variation_detail(key, context, None), None),
            (client.string_variation(key, context, "d"), client.string_variation_detail(key, context, "d"), "d"),
        ):
            assert value == detail.value, (key, context, detail)
            assert type(value) is type(detail.value), (key, context)
            if detail.variation is None:
                assert value == default
        assert (dict(context) if isinstance(context, dict) else context) == before  # never changed by evaluating
    # The rules really were exercised: some contexts got each answer.
    assert {client.bool_variation("rules", c, None) for c in CONTEXTS[:4]} == {True, False}
    assert {client.bool_variation("planned", c, None) for c in CONTEXTS[:7]} == {True, False}
    pairs = (("CA", "iOS"), ("CA", "Android"), ("NY", "Web"))
    many = [{"key": f"u{i}", "state": s, "os": o} for i in range(60) for s, o in pairs]
    assert {client.string_variation("planned-strings", c, "d") for c in many} == set(COLOURS)
    assert {client.bool_variation_detail("planned", c, None).reason.rule_id for c in many} == {"ca", "part", "ny", None}
    for c in many:
        for key, accessor in (("planned", client.bool_variation), ("planned-strings", client.string_variation)):
            detail = client.variation_detail(key, c)
            assert accessor(key, c, None) == detail.value, (key, c, detail)
    assert {client.string_variation("by-plan", {"key": f"u{i}", "plan": f"p{i}"}, "d") for i in range(40)} == {
        "blue",
        "green",
    }
    # The partial rollout serves red below bucket 40,000 and lets the rest fall through to the three-way split
    # (the same salt: those land at 40,000 or above, green or red); without the rule all three are served.
    for state, values, rules in (("CA", {"red", "green"}, {"part", None}), ("TX", {"red", "green", "blue"}, {None})):
        served = [client.string_variation_detail("shapes", {"key": f"u{i}", "state": state}, "d") for i in range(60)]
        assert {d.value for d in served} == values
        assert {d.reason.rule_id for d in served} == rules


def test_the_fast_map_follows_lazily_compiled_flags_and_live_changes() -> None:
    """The accessors read a plain dict of the compiled flags (a dict subclass's ``[]`` costs a method call):
    a flag compiled on first use replaces its lazy stand-in there too, and a change reaches it."""
    from datetime import UTC, datetime

    from flagstream.cache import RulesetCache
    from flagstream.engine import CompiledFlag
    from flagstream.events import FlagCreated
    from flagstream.ruleset import LazyFlag, Ruleset

    def created(flag: Flag) -> FlagCreated:
        return FlagCreated(project="p", environment="e", actor="t", at=datetime(2026, 1, 1, tzinfo=UTC), flag=flag)

    cache = RulesetCache(Ruleset(project="p", environment="e"))
    client = FlagstreamClient.from_test_data(TestData())
    client._cache._views.remove(client)
    cache.attach(client)
    cache.apply(
        [(1, created(Flag(key="f", on=True, rules=(Rule(id="ca", clauses=(CA,), serve=Serve(variation="off")),))))]
    )
    assert type(client._flags) is dict
    assert type(client._flags["f"]) is LazyFlag
    assert client.bool_variation("f", {"key": "u", "state": "CA"}, True) is False
    assert type(client._flags["f"]) is CompiledFlag
    assert client._flags["f"] is cache.ruleset.compiled["f"]
    cache.apply([(2, created(Flag(key="f", on=True)))])  # now on for everyone
    assert client.bool_variation("f", {"key": "u", "state": "CA"}, False) is True
    assert cache.evaluation_totals() == {("f", "off"): 1, ("f", "on"): 1}


def test_counts_from_many_threads_add_up_exactly() -> None:
    """Each fast evaluation takes its value from the outcome's counter in one C step: no increment is lost
    between threads."""
    import threading

    client = FlagstreamClient.from_test_data(data())
    contexts = [{"key": f"user-{i}", "state": "CA" if i % 2 else "NY", "os": "iOS"} for i in range(100)]

    def evaluate() -> None:
        for _ in range(20):
            for context in contexts:
                client.bool_variation("rollout", context, False)
                client.bool_variation("always-on", context, False)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals = client._cache.evaluation_totals()
    assert totals[("always-on", "on")] == 8_000
    assert totals[("rollout", "on")] + totals[("rollout", "off")] == 8_000
    assert 0 < totals[("rollout", "on")] < 8_000


def test_counts_add_up_over_both_paths_a_change_and_a_second_client(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    td = data()
    client = FlagstreamClient.from_test_data(td)
    other = FlagstreamClient.from_test_data(td)  # the same flags: its evaluations are its own
    expected: collections.Counter[tuple[str, str | None]] = collections.Counter()
    for i in range(50):
        context = {"key": f"user-{i}", "state": "CA" if i % 2 else "NY", "os": "iOS"}
        for key in ("always-on", "rules", "rollout", "off"):
            detail = client.bool_variation_detail(key, context, False)  # the general path
            assert client.bool_variation(key, context, False) is detail.value  # the fast path
            expected[key, detail.variation] += 2
        expected["strings", "green"] += 1
        client.string_variation("strings", context, "d")
        expected["always-on", None] += 1
        client.bool_variation("always-on", {"key": [i]}, False)  # an unusable context: the default, an error
        expected["strings", None] += 1
        client.bool_variation("strings", context, False)  # wrong type
        expected["missing", None] += 1
        client.bool_variation("missing", context, False)
    other.bool_variation("always-on", {"key": "u"}, False)
    assert client._cache.evaluation_totals() == dict(expected)

    # A change replaces the compiled flags: what was counted on the old ones stays counted.
    td.flag("always-on").on(False)
    assert client.bool_variation("always-on", {"key": "u"}, True) is False
    expected["always-on", "off"] += 1
    assert client._cache.evaluation_totals() == dict(expected)
    monkeypatch.setattr(cache_module, "RETIRE_AFTER", -1.0)  # fold the replaced flags' counts now
    assert client._cache.evaluation_totals() == dict(expected)
    assert other._cache.evaluation_totals() == {("always-on", "on"): 1}


def test_an_exposure_hook_sees_fast_accessor_evaluations_and_closing_it_restores_them() -> None:
    client = FlagstreamClient.from_test_data(data())
    seen = []
    recorder = client.on_exposure(seen.append)
    assert client.bool_variation("rules", {"key": "user-1", "state": "NY"}, False) is True
    assert client.string_variation("strings", {"key": "user-1"}, "d") == "green"
    recorder.close()
    assert [(e.flag_key, e.variation, e.context_key) for e in seen] == [
        ("rules", "on", "user-1"),
        ("strings", "green", "user-1"),
    ]
    assert client.bool_variation("rules", {"key": "user-1", "state": "NY"}, False) is True
    assert len(seen) == 2
    assert client._cache.evaluation_totals() == {("rules", "on"): 2, ("strings", "green"): 1}
