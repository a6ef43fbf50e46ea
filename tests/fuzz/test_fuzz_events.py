"""Hypothesis fuzzing of the event decoder and of the SDK fold.

- ``decode_event`` on arbitrary bytes, on arbitrary JSON and on mutated valid events: it returns an event or
  raises ``DecodeError``, never anything else (a consumer's ``except DecodeError`` must be enough).
- ``apply_events`` on arbitrary valid events (flags with dangling references included) never raises; the result
  depends only on the last event per subject (what a cold-starting client loads), not on how the history is
  cut into batches nor on replays of an overlapping range.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstream.events import (
    DecodeError,
    Event,
    Flag,
    FlagArchived,
    FlagCreated,
    FlagToggled,
    FlagUpdated,
    Segment,
    SegmentCreated,
    SegmentUpdated,
    decode_event,
    encode_event,
)
from flagstream.ruleset import Ruleset, apply_events

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = st.sampled_from(["a", "b", "c", "d-1", "e_2"])
VARIATION_KEYS = st.sampled_from(["on", "off", "x", "missing"])
OPERATORS = st.sampled_from(
    ["in", "equals", "starts_with", "matches", "lt", "semver_gt", "before", "exists", "in_segment"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _clause() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"attribute": st.sampled_from(["key", "country", "version", "age"]), "op": OPERATORS},
        optional={
            "values": st.lists(JSON_VALUES | st.sampled_from(["1.2.3", "[", "(a|b", "a", "b"]), max_size=3),
            "negate": st.booleans(),
            "case_insensitive": st.booleans(),
        },
    )


def _serve() -> st.SearchStrategy[dict[str, Any]]:
    rollout = st.fixed_dictionaries(
        {
            "variations": st.lists(
                st.fixed_dictionaries({"variation": VARIATION_KEYS, "weight": st.integers(0, 100_000)}), max_size=3
            )
        }
    )
    return st.one_of(
        st.fixed_dictionaries({"variation": VARIATION_KEYS}),
        st.fixed_dictionaries({"rollout": rollout}),
        st.just({}),
        st.fixed_dictionaries({"variation": VARIATION_KEYS, "rollout": rollout}),
    )


FLAGS: st.SearchStrategy[Flag] = st.builds(
    lambda d: msgspec.convert(d, Flag),
    st.fixed_dictionaries(
        {"key": KEYS},
        optional={
            "on": st.booleans(),
            "name": st.text(max_size=10),
            "variations": st.lists(st.fixed_dictionaries({"key": VARIATION_KEYS, "value": JSON_VALUES}), max_size=3),
            "off_variation": VARIATION_KEYS,
            "fallthrough": _serve(),
            "targets": st.lists(
                st.fixed_dictionaries({"variation": VARIATION_KEYS, "values": st.lists(st.text(max_size=4))}),
                max_size=2,
            ),
            "rules": st.lists(
                st.fixed_dictionaries(
                    {"id": st.sampled_from(["r1", "r2"]), "serve": _serve()},
                    optional={"clauses": st.lists(_clause(), max_size=3)},
                ),
                max_size=3,
            ),
            "prerequisites": st.lists(st.fixed_dictionaries({"flag": KEYS, "variation": VARIATION_KEYS}), max_size=2),
            "archived": st.booleans(),
        },
    ),
)
SEGMENTS: st.SearchStrategy[Segment] = st.builds(
    lambda d: msgspec.convert(d, Segment),
    st.fixed_dictionaries(
        {"key": KEYS},
        optional={
            "included": st.lists(st.text(max_size=4), max_size=3),
            "excluded": st.lists(st.text(max_size=4), max_size=3),
            "rules": st.lists(
                st.fixed_dictionaries(
                    {"id": st.sampled_from(["s1", "s2"])},
                    optional={"clauses": st.lists(_clause(), max_size=2), "weight": st.integers(0, 100_000)},
                ),
                max_size=2,
            ),
        },
    ),
)
ENVS = st.sampled_from(["production", "production", "production", "staging"])


@st.composite
def events(draw: st.DrawFn) -> Event:
    env = draw(ENVS)
    common = {"project": "default", "environment": env, "actor": "fuzz", "at": NOW}
    if draw(st.booleans()):
        cls = draw(st.sampled_from([FlagCreated, FlagUpdated, FlagToggled, FlagArchived]))
        return cls(**common, flag=draw(FLAGS))
    cls = draw(st.sampled_from([SegmentCreated, SegmentUpdated]))
    return cls(**common, segment=draw(SEGMENTS))


def decodes_or_decode_error(data: bytes) -> None:
    try:
        decode_event(data)
    except DecodeError:
        pass


INVALID_UTF8 = (
    b'{"type": "flag.created", "project": "default", "environment": "production", "actor": "\x80",'
    b' "at": "2026-01-01T00:00:00Z", "flag": {"key": "a"}}'
)


def test_invalid_utf8_in_a_string_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_event(INVALID_UTF8)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    decodes_or_decode_error(data)


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_only_raises_decode_error(value: Any) -> None:
    decodes_or_decode_error(msgspec.json.encode(value))


def _mutate_json(value: Any, path: list[int], replacement: Any) -> Any:
    """Replace one node of a JSON document (chosen by ``path``) with ``replacement``."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    k, child = items[path[0] % len(items)]
    mutated = _mutate_json(child, path[1:], replacement)
    if isinstance(value, dict):
        return {**value, k: mutated}
    return [mutated if i == k else v for i, v in enumerate(value)]


@FUZZ
@given(events(), st.lists(st.integers(0, 50), max_size=6), JSON_VALUES | st.sampled_from(["flag.created", -1, ""]))
def test_mutated_valid_events_only_raise_decode_error(event: Event, path: list[int], replacement: Any) -> None:
    document = msgspec.json.decode(encode_event(event))
    decodes_or_decode_error(msgspec.json.encode(_mutate_json(document, path, replacement)))


@FUZZ
@given(events(), st.integers(0, 10_000), st.binary(min_size=1, max_size=4))
def test_corrupted_bytes_of_valid_events_only_raise_decode_error(event: Event, at: int, junk: bytes) -> None:
    data = encode_event(event)
    position = at % len(data)
    decodes_or_decode_error(data[:position] + junk + data[position + len(junk) :])
    decodes_or_decode_error(data[:position])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), max_size=25), st.lists(st.integers(1, 24), max_size=4), st.integers(0, 25))
def test_fold_never_raises_and_depends_only_on_the_last_event_per_subject(
    history: list[Event], cuts: list[int], replay_from: int
) -> None:
    empty = Ruleset(project="default", environment="production")
    numbered = [(seq, e) for seq, e in enumerate(history, start=1)]

    whole, _ = apply_events(empty, numbered)

    # In batches (as the client folds a live backlog), with an overlapping range replayed after each.
    ruleset = empty
    bounds = [0, *sorted({c for c in cuts if c < len(numbered)}), len(numbered)]
    for start, end in itertools.pairwise(bounds):
        ruleset, _ = apply_events(ruleset, numbered[start:end])
        ruleset, changed = apply_events(ruleset, numbered[min(replay_from, end) : end])
        assert not changed, "a replay changes nothing"

    # Cold start: only the last event of every subject, in stream order.
    last: dict[tuple[str, str, str], tuple[int, Event]] = {}
    for seq, event in numbered:
        kind = "flag" if hasattr(event, "flag") else "segment"
        key = event.flag.key if kind == "flag" else event.segment.key  # type: ignore[attr-defined]
        last[(event.environment, kind, key)] = (seq, event)
    cold, _ = apply_events(empty, sorted(last.values(), key=lambda item: item[0]))

    assert ruleset.state_hash() == whole.state_hash() == cold.state_hash()
    assert ruleset.seq == whole.seq == len(numbered)
    assert set(whole.compiled) == set(whole.flags)
    expected = {k: e.flag for (env, kind, k), (_, e) in last.items() if env == "production" and kind == "flag"}  # type: ignore[attr-defined]
    assert dict(whole.flags) == expected
