"""Rollouts: golden bucket values (a change to hashing cannot pass unnoticed), stickiness, monotonic rollouts,
weight accuracy over 100,000 keys, independence between flags, bucketing by any attribute of any kind."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstream.bucketing import bucket, bucket_text
from flagstream.engine import compile_flag, evaluate
from flagstream.evaluation import ReasonKind
from flagstream.events import Flag, Rollout, Rule, Serve, Variation, WeightedVariation

GOLDEN = [
    # (salt, bucketing text, bucket) = mmh3.hash(f"{salt}.{text}", signed=False) % 100_000
    ("new-checkout", "user-1", 8746),
    ("new-checkout", "user-2", 27883),
    ("other-flag", "user-1", 75773),
    ("salt", "42", 99002),
    ("s", "é🙂", 26836),
    ("new-checkout", "", 35260),
]


def rollout_flag(key: str, weights: list[int], *, salt: str = "", bucket_by: str = "key", kind: str = "user") -> Flag:
    names = [f"v{i}" for i in range(len(weights))]
    return Flag(
        key=key,
        on=True,
        salt=salt,
        variations=tuple(Variation(key=n, value=i) for i, n in enumerate(names)),
        off_variation="v0",
        fallthrough=Serve(
            rollout=Rollout(
                variations=tuple(WeightedVariation(variation=n, weight=w) for n, w in zip(names, weights, strict=True)),
                bucket_by=bucket_by,
                context_kind=kind,
            )
        ),
    )


def served(flag: Flag, keys: list[str]) -> list[int]:
    flags = {flag.key: compile_flag(flag, {})}
    return [evaluate(flags, flag.key, {"key": k}, -1).value for k in keys]


def random_keys(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    return [f"{rnd.getrandbits(128):032x}" for _ in range(n)]


def test_golden_buckets() -> None:
    assert [bucket(salt, text) for salt, text, _ in GOLDEN] == [b for _, _, b in GOLDEN]


def test_golden_values_through_evaluation() -> None:
    # user-1 is in bucket 8,746 of new-checkout: inside a 10% rollout (< 10,000), outside 8.746% (8,746).
    assert served(rollout_flag("new-checkout", [10_000, 90_000]), ["user-1", "user-2"]) == [0, 1]
    assert served(rollout_flag("new-checkout", [8_746, 91_254]), ["user-1"]) == [1]
    assert served(rollout_flag("new-checkout", [8_747, 91_253]), ["user-1"]) == [0]
    # the salt replaces the flag key: a copied flag that keeps the salt keeps its users' buckets
    assert served(rollout_flag("copy", [8_747, 91_253], salt="new-checkout"), ["user-1"]) == [0]


def test_bucket_text_of_values() -> None:
    assert [bucket_text(v) for v in ("a", 42, 42.0, -3)] == ["a", "42", "42", "-3"]
    assert [bucket_text(v) for v in (None, True, 4.5, float("inf"), [1], {"a": 1}, 10**5000)] == [None] * 7


def test_bucket_by_attribute_of_another_kind() -> None:
    flag = rollout_flag("org-rollout", [50_000, 50_000], bucket_by="plan_id", kind="organization")
    flags = {flag.key: compile_flag(flag, {})}
    users = [
        {"kind": "multi", "user": {"key": f"u{i}"}, "organization": {"key": "acme", "plan_id": 7}} for i in range(50)
    ]
    results = {evaluate(flags, flag.key, u, -1).value for u in users}
    assert len(results) == 1  # everyone in the same organization plan gets the same variation
    assert results == {1 if bucket("org-rollout", "7") >= 50_000 else 0}


def test_unbucketable_context_skips_rollout_rule_and_fallthrough_serves_off() -> None:
    flag = rollout_flag("f", [50_000, 50_000], bucket_by="team")
    d = evaluate({"f": compile_flag(flag, {})}, "f", {"key": "u"}, -1)
    assert (d.variation, d.reason.kind, d.reason.in_rollout) == ("v0", ReasonKind.FALLTHROUGH, False)


@given(st.text(max_size=40), st.integers(1, 99_999))
@settings(max_examples=200, deadline=None)
def test_determinism(key: str, first: int) -> None:
    flag = rollout_flag("det", [first, 100_000 - first])
    assert served(flag, [key]) == served(flag, [key])


def test_sticky_across_a_fresh_process() -> None:
    keys = random_keys(2_000, seed=5)
    flag = rollout_flag("sticky", [33_333, 33_333, 33_334])
    here = served(flag, keys)
    code = textwrap.dedent(
        """
        import json, sys
        from flagstream.engine import compile_flag, evaluate
        from flagstream.events import Flag
        import msgspec
        flag = msgspec.json.decode(sys.argv[1].encode(), type=Flag)
        keys = json.loads(sys.stdin.read())
        flags = {flag.key: compile_flag(flag, {})}
        print(json.dumps([evaluate(flags, flag.key, {"key": k}, -1).value for k in keys]))
        """
    )
    import msgspec

    out = subprocess.run(
        [sys.executable, "-c", code, msgspec.json.encode(flag).decode()],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert json.loads(out.stdout) == here


@given(st.integers(0, 100_000), st.integers(0, 100_000), st.lists(st.text(max_size=20), min_size=1, max_size=50))
@settings(max_examples=100, deadline=None)
def test_raising_a_rollout_keeps_everyone_already_in(a: int, b: int, keys: list[str]) -> None:
    low, high = sorted((a, b))
    before = served(rollout_flag("mono", [low, 100_000 - low]), keys)
    after = served(rollout_flag("mono", [high, 100_000 - high]), keys)
    assert all(y == 0 for x, y in zip(before, after, strict=True) if x == 0)


def test_weights_are_served_within_half_a_point_over_100k_keys() -> None:
    keys = random_keys(100_000)
    weights = [10_000, 25_000, 500, 64_500]
    counts = [0] * len(weights)
    for v in served(rollout_flag("dist", weights), keys):
        counts[v] += 1
    for count, weight in zip(counts, weights, strict=True):
        assert abs(count / 1_000 - weight / 1_000) <= 0.5, (counts, weights)


@given(st.lists(st.integers(0, 20), min_size=2, max_size=5).filter(lambda w: sum(w) > 0))
@settings(max_examples=5, deadline=None)
def test_any_weights_are_served_within_half_a_point(raw: list[int]) -> None:
    total = sum(raw)
    weights = [r * 100_000 // total for r in raw]
    weights[-1] += 100_000 - sum(weights)
    counts = [0] * len(weights)
    for v in served(rollout_flag("anyw", weights), random_keys(100_000, seed=sum(raw))):
        counts[v] += 1
    for count, weight in zip(counts, weights, strict=True):
        assert abs(count / 1_000 - weight / 1_000) <= 0.5, (counts, weights)


def test_two_flags_with_the_same_percentage_bucket_independently() -> None:
    keys = random_keys(100_000, seed=2)
    a = served(rollout_flag("flag-a", [50_000, 50_000]), keys)
    b = served(rollout_flag("flag-b", [50_000, 50_000]), keys)
    both = sum(1 for x, y in zip(a, b, strict=True) if x == 0 and y == 0)
    assert abs(both / 1_000 - 25.0) <= 0.5  # independent: P(a and b) = P(a) * P(b)
    assert a != b


def test_percentage_rule_does_not_apply_to_a_context_it_cannot_bucket() -> None:
    half = Rollout(variations=(WeightedVariation(variation="v1", weight=100_000),), bucket_by="team")
    flag = Flag(
        key="f",
        on=True,
        variations=(Variation(key="v0", value=0), Variation(key="v1", value=1), Variation(key="v2", value=2)),
        off_variation="v0",
        fallthrough=Serve(variation="v0"),
        rules=(Rule(id="by-team", serve=Serve(rollout=half)), Rule(id="next", serve=Serve(variation="v2"))),
    )
    flags = {"f": compile_flag(flag, {})}
    assert evaluate(flags, "f", {"key": "u", "team": "red"}, -1).reason.rule_id == "by-team"
    for team in (None, True, 1.5, ["red"]):
        d = evaluate(flags, "f", {"key": "u", "team": team}, -1)
        assert (d.value, d.reason.rule_id) == (2, "next")
    assert evaluate(flags, "f", {"key": "u", "team": 7}, -1).reason.rule_id == "by-team"


def test_a_rollout_buckets_by_a_nested_attribute_as_clauses_read_it() -> None:
    """``bucket_by="/user/name"`` (flagd's ``{"var": "user.name"}``) buckets by the nested value; it used to be
    read flat, found missing, and the rule silently skipped."""
    flag = rollout_flag("nested", [50_000, 50_000], bucket_by="/user/name")
    compiled = {"nested": compile_flag(flag, {})}
    got = [evaluate(compiled, "nested", {"key": "same", "user": {"name": f"n{i}"}}, None) for i in range(400)]
    assert all(d.reason.in_rollout for d in got)
    assert [d.variation for d in got] == [("v0", "v1")[bucket("nested", f"n{i}") >= 50_000] for i in range(400)]
    missing = evaluate(compiled, "nested", {"key": "same", "user": "not an object"}, None)
    assert missing.reason.kind == ReasonKind.FALLTHROUGH
    assert not missing.reason.in_rollout
