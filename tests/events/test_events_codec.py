"""The wire format is a contract with every SDK ever deployed: these tests pin it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import msgspec
import pytest

from flagstream.events import (
    KEY_PATTERN,
    TAGS,
    DecodeError,
    Environment,
    EnvironmentCreated,
    Flag,
    FlagCreated,
    FlagToggled,
    Segment,
    SegmentUpdated,
    decode_event,
    encode_event,
    parse_subject,
    state_hash,
    subject,
)

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_every_tag_is_stable() -> None:
    assert sorted(TAGS) == [
        "environment.created",
        "environment.updated",
        "flag.archived",
        "flag.created",
        "flag.deleted",
        "flag.restored",
        "flag.toggled",
        "flag.updated",
        "plan.aborted",
        "plan.advance_requested",
        "plan.advanced",
        "plan.claimed",
        "plan.completed",
        "plan.created",
        "plan.failed",
        "plan.paused",
        "plan.resumed",
        "plan.rolled_back",
        "plan.stopping",
        "request.applied",
        "request.approved",
        "request.cancelled",
        "request.commented",
        "request.edited",
        "request.failed",
        "request.opened",
        "request.rejected",
        "schedule.applied",
        "schedule.cancelled",
        "schedule.claimed",
        "schedule.created",
        "schedule.failed",
        "segment.archived",
        "segment.created",
        "segment.restored",
        "segment.updated",
    ]


def test_golden_flag_event_json() -> None:
    event = FlagToggled(
        project="default", environment="production", actor="ada", at=AT, comment="launch", version=3,
        flag=Flag(key="new-checkout", on=True),
    )  # fmt: skip
    assert json.loads(encode_event(event)) == {
        "type": "flag.toggled",
        "project": "default",
        "environment": "production",
        "actor": "ada",
        "at": "2026-01-02T03:04:05.678000Z",
        "comment": "launch",
        "version": 3,
        "change": "",
        "flag": {
            "key": "new-checkout",
            "name": "",
            "description": "",
            "kind": "boolean",
            "tags": [],
            "client_side": False,
            "on": True,
            "variations": [
                {"key": "on", "value": True, "name": "", "description": ""},
                {"key": "off", "value": False, "name": "", "description": ""},
            ],
            "off_variation": "off",
            "fallthrough": {"variation": "on", "rollout": None, "default": False},
            "targets": [],
            "rules": [],
            "prerequisites": [],
            "salt": "",
            "archived": False,
            "maintainer": "",
            "lifecycle": "temporary",
            "remove_by": None,
            "deleted": False,
            "off_default": False,
        },
    }


@pytest.mark.parametrize(
    "event",
    [
        FlagCreated(project="p", environment="e", actor="a", at=AT, flag=Flag(key="f", tags=("x", "y"))),
        SegmentUpdated(project="p", environment="e", actor="a", at=AT, segment=Segment(key="s", included=("u1",))),
        EnvironmentCreated(project="p", environment="e", actor="a", at=AT, env=Environment(key="e", production=True)),
    ],
)
def test_round_trip(event: msgspec.Struct) -> None:
    assert decode_event(encode_event(event)) == event


def test_an_old_sdk_reads_a_newer_event_with_unknown_fields() -> None:
    data = json.loads(encode_event(FlagCreated(project="p", environment="e", actor="a", at=AT, flag=Flag(key="f"))))
    data["added_in_a_later_release"] = {"anything": 1}
    data["flag"]["new_field"] = [1, 2, 3]
    assert decode_event(json.dumps(data).encode()).flag.key == "f"


def test_a_minimal_old_payload_decodes_with_defaults() -> None:
    raw = (
        b'{"type":"flag.created","project":"p","environment":"e","actor":"a",'
        b'"at":"2026-01-01T00:00:00Z","flag":{"key":"f"}}'
    )
    event = decode_event(raw)
    assert event.version == 1
    assert event.flag.on is False
    assert [v.key for v in event.flag.variations] == ["on", "off"]
    # written before client-side keys existed: not available to browsers (docs/clientside.md)
    assert event.flag.client_side is False


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type":"flag.exploded","project":"p","environment":"e","actor":"a","at":"2026-01-01T00:00:00Z"}',
        b'{"type":"flag.created","project":"p","environment":"e","actor":"a","at":"yesterday","flag":{"key":"f"}}',
        b'{"type":"flag.created","project":"p","environment":"e","actor":"a","at":"2026-01-01T00:00:00Z","flag":{"key":"a.b"}}',
        b'{"type":"flag.created","project":"p","environment":"e","actor":"a","at":"2026-01-01T00:00:00Z"}',
    ],
)
def test_bad_payloads_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(raw)


def test_subjects_round_trip_and_reject_foreign_ones() -> None:
    s = subject("shop", "production", "flag", "new-checkout")
    assert s == "flagstream.shop.production.flag.new-checkout"
    assert parse_subject(s) == ("shop", "production", "flag", "new-checkout")
    for bad in ["other.shop.production.flag.x", "flagstream.shop.production.flag", "flagstream.a.b.widget.x"]:
        with pytest.raises(ValueError, match=r"flagstream|widget"):
            parse_subject(bad)


def test_state_hash_is_order_independent_and_content_sensitive() -> None:
    a = ("flagstream.p.e.flag.a", Flag(key="a"))
    b = ("flagstream.p.e.flag.b", Flag(key="b", on=True))
    assert state_hash([a, b]) == state_hash([b, a])
    assert state_hash([a, b]) != state_hash([a, ("flagstream.p.e.flag.b", Flag(key="b", on=False))])


KEY_CANDIDATES = [
    "f",
    "new-checkout",
    "A_b-9",
    "on",
    "x" * 64,
    "x" * 65,
    "",
    "a.b",
    "a b",
    "a\n",  # the pattern's `$` also matches before a final newline: accepted since the first release
    "\n",
    "a\n\n",
    "é",
    "١٢",  # Arabic-Indic digits: not ASCII digits
    "ａ",  # fullwidth letter
    "a\x00",
]


@pytest.mark.parametrize("key", KEY_CANDIDATES)
def test_a_key_is_checked_exactly_as_the_pattern_says_however_often_it_is_seen(key: str) -> None:
    """The key check remembers keys it accepted; it accepts and refuses exactly what the plain pattern does."""
    plain = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN, min_length=1, max_length=64)]
    raw = b'{"type":"flag.created","project":"p","environment":"e","actor":"a","at":"2026-01-01T00:00:00Z","flag":%s}'
    flag = msgspec.json.encode({"key": key, "variations": [{"key": key, "value": True}], "off_variation": key})
    try:
        expected: str | None = None
        msgspec.json.decode(msgspec.json.encode(key), type=plain)
    except msgspec.ValidationError as exc:
        expected = f"{exc} - at `$.flag.key`"
    for _ in range(3):  # first seen, then remembered (or not)
        if expected is None:
            event = decode_event(raw % flag)
            assert (event.flag.key, event.flag.variations[0].key, event.flag.off_variation) == (key, key, key)
        else:
            with pytest.raises(DecodeError) as caught:
                decode_event(raw % flag)
            assert str(caught.value) == expected
