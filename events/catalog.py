"""The event catalogue: one tagged union, explicit stable tags, each event carrying the whole new state.

The tag (``type`` on the wire) is part of the stored format: never rename one. A class can be renamed freely.
"""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

from .model import Environment, Flag, Key, Segment


class Event(Struct, frozen=True, kw_only=True, tag_field="type"):
    """Envelope fields common to every event.

    ``version`` is the per-entity revision (1 for the creating event, then +1 per change); the stream
    sequence of the event, known only once it is stored, is the concurrency token (the API's ETag).
    """

    project: Key
    environment: Key
    actor: str
    at: datetime
    comment: str = ""
    version: int = 1


class FlagEvent(Event, frozen=True, kw_only=True):
    flag: Flag


class FlagCreated(FlagEvent, frozen=True, kw_only=True, tag="flag.created"):
    pass


class FlagUpdated(FlagEvent, frozen=True, kw_only=True, tag="flag.updated"):
    pass


class FlagToggled(FlagEvent, frozen=True, kw_only=True, tag="flag.toggled"):
    pass


class FlagArchived(FlagEvent, frozen=True, kw_only=True, tag="flag.archived"):
    pass


class FlagRestored(FlagEvent, frozen=True, kw_only=True, tag="flag.restored"):
    pass


class SegmentEvent(Event, frozen=True, kw_only=True):
    segment: Segment


class SegmentCreated(SegmentEvent, frozen=True, kw_only=True, tag="segment.created"):
    pass


class SegmentUpdated(SegmentEvent, frozen=True, kw_only=True, tag="segment.updated"):
    pass


class SegmentArchived(SegmentEvent, frozen=True, kw_only=True, tag="segment.archived"):
    pass


class SegmentRestored(SegmentEvent, frozen=True, kw_only=True, tag="segment.restored"):
    pass


class EnvironmentEvent(Event, frozen=True, kw_only=True):
    env: Environment


class EnvironmentCreated(EnvironmentEvent, frozen=True, kw_only=True, tag="environment.created"):
    pass


class EnvironmentUpdated(EnvironmentEvent, frozen=True, kw_only=True, tag="environment.updated"):
    pass


AnyEvent = (
    FlagCreated
    | FlagUpdated
    | FlagToggled
    | FlagArchived
    | FlagRestored
    | SegmentCreated
    | SegmentUpdated
    | SegmentArchived
    | SegmentRestored
    | EnvironmentCreated
    | EnvironmentUpdated
)

#: The wire tag of every event class, for docs and tests.
TAGS: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}


def entity_of(event: Event) -> tuple[str, str, Flag | Segment | Environment]:
    """(kind, key, state) of the entity an event is about."""
    if isinstance(event, FlagEvent):
        return "flag", event.flag.key, event.flag
    if isinstance(event, SegmentEvent):
        return "segment", event.segment.key, event.segment
    if isinstance(event, EnvironmentEvent):
        return "environment", event.env.key, event.env
    raise TypeError(f"unknown event class {type(event).__name__}")
