"""Response bodies. An entity is answered with its state and the facts of the event that made it so.

``version`` is the stream sequence of that event (the ETag, what ``If-Match`` compares); ``revision`` is the
entity's own counter (1 when created, +1 per change).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct

from ...events import Author, Environment, Flag, Segment, entity_of, tag_of
from ...validation import Problem
from ..changes import Stored


class Record(Struct, kw_only=True):
    key: str
    version: int
    revision: int
    actor: str
    at: datetime
    comment: str
    #: Tag of the event that produced this state, e.g. ``flag.toggled``.
    event: str
    #: Who wrote it: a person (stable id, name, e-mail, how they signed in) or a token; null for older events.
    author: Author | None = None


class FlagRecord(Record, kw_only=True):
    flag: Flag


class SegmentRecord(Record, kw_only=True):
    segment: Segment


class EnvironmentRecord(Record, kw_only=True):
    environment: Environment


class FlagList(Struct, kw_only=True):
    items: list[FlagRecord]


class SegmentList(Struct, kw_only=True):
    items: list[SegmentRecord]


class EnvironmentList(Struct, kw_only=True):
    items: list[EnvironmentRecord]


class ErrorBody(Struct, kw_only=True, omit_defaults=True):
    error: str
    problems: list[Problem] = []
    #: On a conflict: the current version, and the current state as a record.
    version: int | None = None
    current: Any = None


class Health(Struct, kw_only=True):
    status: str
    detail: str = ""


_RECORDS: dict[str, tuple[type[Record], str]] = {
    "flag": (FlagRecord, "flag"),
    "segment": (SegmentRecord, "segment"),
    "environment": (EnvironmentRecord, "environment"),
}


def record(stored: Stored) -> Record:
    """The response record of a stored event."""
    event = stored.event
    kind, key, state = entity_of(event)
    cls, attr = _RECORDS[kind]
    return cls(
        key=key,
        version=stored.seq,
        revision=event.version,
        actor=event.actor,
        at=event.at,
        comment=event.comment,
        event=tag_of(event),
        author=event.author or None,
        **{attr: state},
    )
