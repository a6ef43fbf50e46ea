"""The imported bucketing schemes of the engine (``Rollout.algorithm``): each answers as its original system's
documented formula, computed here independently with mmh3; partial rollouts let the next rule answer."""

from __future__ import annotations

import mmh3
import pytest

from flagstream.engine import compile_flag, compile_segment, evaluate
from flagstream.evaluation import ReasonKind
from flagstream.events import (
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
from flagstream.validation import flag_problems, validate_segment

USERS = [f"user-{i}" for i in range(2000)]


def unleash_normalized(group: str, value: str, normalizer: int = 100, seed: int = 0) -> int:
    """Unleash's ``normalizedValue``: murmurhash3 x86 32 (unsigned) of "group:value", mod normalizer, plus 1."""
    return mmh3.hash(f"{group}:{value}", seed, signed=False) % normalizer + 1


def flagd_bucket(value: str) -> int:
    """flagd's fractional bucket: int(abs(int32 murmur3(value)) / MaxInt32 * 100)."""
    return int(abs(mmh3.hash(value, 0, signed=True)) / (2**31 - 1) * 100)


def flag_with(rollout: Rollout, *, rules: tuple[Rule, ...] = (), names: tuple[str, ...] = ("a", "b", "c")) -> Flag:
    return Flag(
        key="f",
        on=True,
        variations=(*(Variation(key=n, value=n) for n in names), Variation(key="off", value="off")),
        off_variation="off",
        rules=rules,
        fallthrough=Serve(rollout=rollout),
    )


def answers(flag: Flag, attribute: str = "key") -> list[str]:
    compiled = {flag.key: compile_flag(flag, {})}
    assert compiled[flag.key].error is None, compiled[flag.key].problems
    return [evaluate(compiled, flag.key, {"key": "k", attribute: u}, "default").value for u in USERS]


def test_unleash_normalisation_matches_the_published_cross_client_values() -> None:
    # unleash-client-node's test: the same values in the node, java and go clients.
    assert unleash_normalized("gr1", "123") == 73
    assert unleash_normalized("groupX", "999") == 25


def test_unleash_rollout_serves_users_whose_normalized_value_is_at_most_the_percentage() -> None:
    rollout = Rollout(
        variations=(WeightedVariation(variation="a", weight=37_000),),
        bucket_by="userId",
        algorithm="unleash",
        hash_prefix="my-group:",
        partial=True,
    )
    got = answers(flag_with(rollout), "userId")
    expected = ["a" if unleash_normalized("my-group", u) <= 37 else "off" for u in USERS]
    assert got == expected
    assert 0.3 < expected.count("a") / len(USERS) < 0.44


def test_unleash_variants_follow_the_variant_normalisation_with_weights_out_of_1000() -> None:
    weights = [("a", 200), ("b", 300), ("c", 500)]
    rollout = Rollout(
        variations=tuple(WeightedVariation(variation=n, weight=w * 100) for n, w in weights),
        algorithm="unleash_variant",
        hash_prefix="feature-x:",
    )

    def unleash_variant(user: str) -> str:
        target = unleash_normalized("feature-x", user, 1000, 86028157)
        counter = 0
        for name, weight in weights:
            counter += weight
            if counter >= target:
                return name
        raise AssertionError("weights sum to 1000")

    assert answers(flag_with(rollout)) == [unleash_variant(u) for u in USERS]


def test_flagd_fractional_follows_flagds_bucket_and_range_ends() -> None:
    rollout = Rollout(
        variations=(
            WeightedVariation(variation="a", weight=25_000),
            WeightedVariation(variation="b", weight=50_000),
            WeightedVariation(variation="c", weight=25_000),
        ),
        algorithm="flagd",
        hash_prefix="f",
    )

    def flagd(user: str) -> str:
        bucket = flagd_bucket("f" + user)  # default bucketing key: flag key + targeting key
        end = 0
        for name, percentage in (("a", 25), ("b", 50), ("c", 25)):
            end += percentage
            if bucket < end:
                return name
        return "c"

    assert answers(flag_with(rollout)) == [flagd(u) for u in USERS]


def test_a_partial_rollout_in_a_rule_lets_the_next_rule_answer() -> None:
    in_share = Rollout(
        variations=(WeightedVariation(variation="a", weight=10_000),),
        algorithm="unleash",
        hash_prefix="g:",
        partial=True,
    )
    flag = flag_with(
        Rollout(variations=(WeightedVariation(variation="c", weight=100_000),)),
        rules=(
            Rule(id="ten-percent", serve=Serve(rollout=in_share)),
            Rule(
                id="vip",
                clauses=(Clause(attribute="vip", op=Operator.IN, values=(True,)),),
                serve=Serve(variation="b"),
            ),
        ),
    )
    compiled = {"f": compile_flag(flag, {})}
    for user in USERS[:300]:
        detail = evaluate(compiled, "f", {"key": user, "vip": True}, "default")
        if unleash_normalized("g", user) <= 10:
            assert (detail.value, detail.reason.rule_id) == ("a", "ten-percent")
        else:
            assert (detail.value, detail.reason.rule_id) == ("b", "vip")
        plain = evaluate(compiled, "f", {"key": user}, "default")
        assert plain.value == ("a" if unleash_normalized("g", user) <= 10 else "c")
    # the fallthrough's rest serves the off variation
    rest = flag_with(in_share)
    compiled = {"f": compile_flag(rest, {})}
    outside = next(u for u in USERS if unleash_normalized("g", u) > 10)
    detail = evaluate(compiled, "f", {"key": outside}, "default")
    assert (detail.value, detail.reason.kind) == ("off", ReasonKind.FALLTHROUGH)


@pytest.mark.parametrize(
    ("rollout", "path", "message"),
    [
        (Rollout(variations=(WeightedVariation(variation="a", weight=1),), algorithm="md5"), "algorithm", "unknown"),
        (
            Rollout(variations=(WeightedVariation(variation="a", weight=100_000),), hash_prefix="x"),
            "hash_prefix",
            "salt",
        ),
        (Rollout(variations=(WeightedVariation(variation="a", weight=5),)), "variations", "not 100000"),
    ],
)
def test_invalid_schemes_are_refused_with_the_field_named(rollout: Rollout, path: str, message: str) -> None:
    problems = flag_problems(flag_with(rollout))
    assert any(p.path == f"$.fallthrough.rollout.{path}" and message in p.message for p in problems), problems


def test_a_segment_rule_can_hold_an_unleash_percentage() -> None:
    rule = SegmentRule(id="r", weight=25_000, bucket_by="userId", algorithm="unleash", hash_prefix="grp:")
    segment = compile_segment(Segment(key="quarter", rules=(rule,)))
    for user in USERS[:500]:
        assert segment.contains({"user": {"key": "k", "userId": user}}) is (unleash_normalized("grp", user) <= 25)
    assert not segment.contains({"user": {"key": "k"}})  # nothing to bucket by: not in
    bad = Segment(key="s", rules=(SegmentRule(id="r", weight=1, algorithm="flagd"),))
    assert [p.path for p in validate_segment(bad)] == ["$.rules[0].algorithm"]
