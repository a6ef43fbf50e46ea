"""The pure fold of a fetched batch: redeliveries dropped, holes stop the fold, bad messages become rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flagstream.events import Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.services.projector.projection import RawMessage, fold_batch, format_time, parse_time

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(seq: int, key: str = "f", *, on: bool = False, version: int = 1) -> RawMessage:
    cls = FlagCreated if version == 1 else FlagToggled
    event = cls(project="p", environment="e", actor="a", at=AT, flag=Flag(key=key, on=on), version=version)
    return RawMessage(seq, subject("p", "e", "flag", key), encode_event(event))


def test_redeliveries_are_dropped_and_the_last_state_per_entity_wins() -> None:
    batch = fold_batch(
        2, [message(1), message(2), message(3, on=True, version=2), message(4, "g"), message(5, on=False, version=3)]
    )
    assert (batch.after, batch.last_seq, batch.duplicates, batch.gap_at) == (2, 5, 2, None)
    assert [e.seq for e in batch.events] == [3, 4, 5]
    entity = batch.entities[("p", "e", "flag", "f")]
    assert (entity.seq, entity.revision) == (5, 3)
    assert b'"on":false' in entity.state


def test_a_hole_stops_the_fold_unless_the_consumer_was_just_positioned() -> None:
    batch = fold_batch(10, [message(11), message(13), message(14)])
    assert (batch.last_seq, batch.gap_at, [e.seq for e in batch.events]) == (11, 13, [11])

    first_is_late = fold_batch(10, [message(13), message(14)], allow_gap=True)
    assert (first_is_late.last_seq, first_is_late.gap_at) == (14, None)
    later_hole = fold_batch(10, [message(13), message(15)], allow_gap=True)
    assert (later_hole.last_seq, later_hole.gap_at) == (13, 15)


def test_bad_messages_advance_the_position_and_say_why() -> None:
    flag_on_a_bad_subject = message(2).data
    messages = [
        RawMessage(1, "flagstream.p.e.flag.f", b"{not json"),
        RawMessage(2, "flagstream.p.e.gizmo.f", flag_on_a_bad_subject),
        message(3),
    ]
    batch = fold_batch(0, messages)
    assert batch.last_seq == 3
    assert [(b.seq, b.error.split(":")[0]) for b in batch.bad] == [
        (1, "undecodable event"),
        (2, "bad subject"),
    ]
    assert [e.seq for e in batch.events] == [3]


def test_times_are_stored_as_sortable_utc_text() -> None:
    oslo = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 3, 1, 14, 0, tzinfo=oslo)) == "2026-03-01T12:00:00.000000Z"
    assert format_time(datetime(2026, 3, 1, 12, 0)) == "2026-03-01T12:00:00.000000Z"  # naive: taken as UTC
    assert parse_time(format_time(AT)) == AT
