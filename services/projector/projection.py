"""The pure part of the projector: raw stream messages in, rows for the read model out. No I/O here.

``fold_batch`` takes the last applied stream sequence and a batch of messages as fetched and returns exactly what
one transaction must write: one row per new event, the final state of every entity the batch touched, the bad
messages, and the new position. Redeliveries (sequence at or below the position) are dropped; a hole in the
sequence stops the fold so the caller can rewind the consumer instead of losing the messages in the hole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ...events import DecodeError, canonical_json, decode_event, entity_of, parse_subject, tag_of
from ...events.catalog import Event

#: How timestamps are stored: fixed width, UTC, so that text order is time order.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(at: datetime) -> str:
    """A datetime as fixed-width UTC text (naive datetimes are taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as delivered: its stream sequence, subject and payload."""

    seq: int
    subject: str
    data: bytes


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    subject: str
    project: str
    environment: str
    kind: str
    key: str
    type: str
    actor: str
    at: str
    comment: str
    revision: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EntityRow:
    project: str
    environment: str
    kind: str
    key: str
    seq: int
    revision: int
    archived: bool
    state: bytes
    updated_at: str
    updated_by: str


@dataclass(frozen=True, slots=True)
class BadRow:
    seq: int
    subject: str
    error: str
    data: bytes


@dataclass(slots=True)
class Batch:
    """What one transaction writes. ``after`` is the position it applies on top of, ``last_seq`` the new one."""

    after: int
    last_seq: int
    events: list[EventRow] = field(default_factory=list)
    entities: dict[tuple[str, str, str, str], EntityRow] = field(default_factory=dict)
    bad: list[BadRow] = field(default_factory=list)
    #: Messages at or below ``after``: already applied, to be acknowledged and ignored.
    duplicates: int = 0
    #: Sequence of the first message left out because of a hole before it (``None``: no hole).
    gap_at: int | None = None

    @property
    def empty(self) -> bool:
        return self.last_seq == self.after


class BadEvent(ValueError):
    """A message that cannot be applied: it is skipped, logged and counted."""


def event_row(message: RawMessage) -> tuple[EventRow, EntityRow]:
    """The rows of one good message; ``BadEvent`` if the message is not a valid event on a matching subject."""
    try:
        address = parse_subject(message.subject)
    except ValueError as exc:
        raise BadEvent(f"bad subject: {exc}") from exc
    try:
        event: Event = decode_event(message.data)
    except DecodeError as exc:
        raise BadEvent(f"undecodable event: {exc}") from exc
    kind, key, state = entity_of(event)
    found = (event.project, event.environment, kind, key)
    expected = (address.project, address.environment, str(address.kind), address.key)
    if found != expected:
        raise BadEvent(f"event is about {'.'.join(found)} but was published on {message.subject}")
    at = format_time(event.at)
    tag = tag_of(event)
    row = EventRow(
        seq=message.seq,
        subject=message.subject,
        project=event.project,
        environment=event.environment,
        kind=kind,
        key=key,
        type=str(tag),
        actor=event.actor,
        at=at,
        comment=event.comment,
        revision=event.version,
        data=bytes(message.data),
    )
    entity = EntityRow(
        project=event.project,
        environment=event.environment,
        kind=kind,
        key=key,
        seq=message.seq,
        revision=event.version,
        archived=state.archived,
        state=canonical_json(state),
        updated_at=at,
        updated_by=event.actor,
    )
    return row, entity


def fold_batch(after: int, messages: Iterable[RawMessage], *, allow_gap: bool = False) -> Batch:
    """Fold messages (in delivery order) on top of position ``after``.

    With ``allow_gap`` the first new message may skip sequences (the consumer was just positioned at
    ``after + 1``, so a hole there is real: those sequences do not exist). Otherwise a hole ends the fold.
    """
    batch = Batch(after=after, last_seq=after)
    for message in sorted(messages, key=lambda m: m.seq):
        if message.seq <= batch.last_seq:
            batch.duplicates += 1
            continue
        if message.seq != batch.last_seq + 1 and not (allow_gap and batch.empty):
            batch.gap_at = message.seq
            break
        try:
            row, entity = event_row(message)
        except BadEvent as exc:
            batch.bad.append(BadRow(seq=message.seq, subject=message.subject, error=str(exc), data=message.data))
        else:
            batch.events.append(row)
            batch.entities[(entity.project, entity.environment, entity.kind, entity.key)] = entity
        batch.last_seq = message.seq
    return batch
