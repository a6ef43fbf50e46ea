"""The event catalogue: one tagged union, explicit stable tags, each event carrying the whole new state.

The tag (``type`` on the wire) is part of the stored format: never rename one. A class can be renamed freely.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType

from .model import Environment, Flag, Key, Segment
from .release import Plan


class Author(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who wrote an event, beyond the ``actor`` name: a person signed in, or an API token.

    ``kind`` is ``person`` (signed in with a session) or ``token`` (an API token, or the operator token).
    ``id`` is stable: a person's subject id (``u_...``), which stays when their name or e-mail changes; a
    token's id (``operator`` for the operator token). ``via`` says how they signed in: ``password``, ``oidc``
    (then ``issuer`` names the provider) or ``token``.
    """

    kind: Literal["person", "token"]
    id: str
    name: str
    email: str = ""
    via: str = ""
    issuer: str = ""


#: An event's ``author`` when it has none (written before authors existed, or by the system itself).
UNSET_AUTHOR = UNSET


class Event(Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
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
    #: One change written to several entities at once (a flag in every environment, a promotion of many
    #: flags) carries one id on each of its events; empty for a change of one entity.
    change: str = ""
    #: Who wrote it (added after the first release: events written before have none, and still decode; an event
    #: without one encodes exactly as before). ``actor`` stays the name to show.
    author: Author | UnsetType = UNSET


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


class FlagDeleted(FlagEvent, frozen=True, kw_only=True, tag="flag.deleted"):
    """The tombstone of an archived flag: its last state with ``deleted`` set. SDKs drop the flag; its history
    stays, and time travel answers for any instant before."""


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


class ScheduledChange(Struct, frozen=True, kw_only=True):
    """What a schedule does when due: one write to one flag or segment, as the admin API would do it."""

    kind: Literal["flag", "segment"] = "flag"
    key: Key
    #: ``patch`` (top-level fields in ``changes``), ``on``/``off`` (flags), ``archive``, ``restore``.
    action: Literal["patch", "on", "off", "archive", "restore"]
    changes: dict[str, Any] = {}


#: A schedule's life: pending -> claimed (by one admin process) -> applied | failed; pending -> cancelled.
ScheduleStatus = Literal["pending", "claimed", "applied", "failed", "cancelled"]


class Schedule(Struct, frozen=True, kw_only=True):
    """A change stored now to apply at ``due``. Its subject is ``flagstream.<p>.<env>.schedule.<id>``."""

    id: Key
    due: datetime
    change: ScheduledChange
    status: ScheduleStatus = "pending"
    #: The admin process that claimed it (the last claim wins the right to apply it).
    claimed_by: str = ""
    #: Stream sequence of the change's event (or of the entity's version if nothing needed to change).
    result_seq: int = 0
    error: str = ""

    @property
    def archived(self) -> bool:
        """Done (applied, failed or cancelled): nothing more will happen to it."""
        return self.status in ("applied", "failed", "cancelled")


class ScheduleEvent(Event, frozen=True, kw_only=True):
    schedule: Schedule


class ScheduleCreated(ScheduleEvent, frozen=True, kw_only=True, tag="schedule.created"):
    pass


class ScheduleCancelled(ScheduleEvent, frozen=True, kw_only=True, tag="schedule.cancelled"):
    pass


class ScheduleClaimed(ScheduleEvent, frozen=True, kw_only=True, tag="schedule.claimed"):
    pass


class ScheduleApplied(ScheduleEvent, frozen=True, kw_only=True, tag="schedule.applied"):
    pass


class ScheduleFailed(ScheduleEvent, frozen=True, kw_only=True, tag="schedule.failed"):
    pass


class PlanEvent(Event, frozen=True, kw_only=True):
    plan: Plan


class PlanCreated(PlanEvent, frozen=True, kw_only=True, tag="plan.created"):
    pass


class PlanClaimed(PlanEvent, frozen=True, kw_only=True, tag="plan.claimed"):
    """Another admin process holds the plan from now on (the one before stopped renewing its lease)."""


class PlanAdvanced(PlanEvent, frozen=True, kw_only=True, tag="plan.advanced"):
    """A step was written to the flag (``plan.step``, at ``plan.step_seq``)."""


class PlanAdvanceRequested(PlanEvent, frozen=True, kw_only=True, tag="plan.advance_requested"):
    pass


class PlanPaused(PlanEvent, frozen=True, kw_only=True, tag="plan.paused"):
    pass


class PlanResumed(PlanEvent, frozen=True, kw_only=True, tag="plan.resumed"):
    pass


class PlanStopping(PlanEvent, frozen=True, kw_only=True, tag="plan.stopping"):
    """A rollback (actor ``guardian``, with the evidence) or an abort (by a person) was decided; the flag's write
    back follows, then ``plan.rolled_back`` or ``plan.aborted``."""


class PlanRolledBack(PlanEvent, frozen=True, kw_only=True, tag="plan.rolled_back"):
    pass


class PlanAborted(PlanEvent, frozen=True, kw_only=True, tag="plan.aborted"):
    pass


class PlanCompleted(PlanEvent, frozen=True, kw_only=True, tag="plan.completed"):
    pass


class PlanFailed(PlanEvent, frozen=True, kw_only=True, tag="plan.failed"):
    pass


AnyEvent = (
    FlagCreated
    | FlagUpdated
    | FlagToggled
    | FlagArchived
    | FlagRestored
    | FlagDeleted
    | SegmentCreated
    | SegmentUpdated
    | SegmentArchived
    | SegmentRestored
    | EnvironmentCreated
    | EnvironmentUpdated
    | ScheduleCreated
    | ScheduleCancelled
    | ScheduleClaimed
    | ScheduleApplied
    | ScheduleFailed
    | PlanCreated
    | PlanClaimed
    | PlanAdvanced
    | PlanAdvanceRequested
    | PlanPaused
    | PlanResumed
    | PlanStopping
    | PlanRolledBack
    | PlanAborted
    | PlanCompleted
    | PlanFailed
)

#: The wire tag of every event class, for docs and tests.
TAGS: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}


def tag_of(event: Event) -> str:
    """The event's wire tag (``flag.toggled``...): its type in the API's records, logs and metrics."""
    return str(type(event).__struct_config__.tag)  # type: ignore[attr-defined]


def entity_of(event: Event) -> tuple[str, str, Flag | Segment | Environment | Schedule | Plan]:
    """(kind, key, state) of the entity an event is about."""
    if isinstance(event, FlagEvent):
        return "flag", event.flag.key, event.flag
    if isinstance(event, SegmentEvent):
        return "segment", event.segment.key, event.segment
    if isinstance(event, EnvironmentEvent):
        return "environment", event.env.key, event.env
    if isinstance(event, ScheduleEvent):
        return "schedule", event.schedule.id, event.schedule
    if isinstance(event, PlanEvent):
        return "plan", event.plan.id, event.plan
    raise TypeError(f"unknown event class {type(event).__name__}")
