"""Pure decisions: (current state, command) -> the one event to append, or None when nothing changes.

No I/O and no HTTP here: the service reads the current state, calls these, and appends what they return.
Flags, segments and environments share the same life cycle, described by a ``Kind``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ...events import (
    Author,
    EntityKind,
    Environment,
    EnvironmentCreated,
    EnvironmentUpdated,
    Event,
    Flag,
    FlagArchived,
    FlagCreated,
    FlagRestored,
    FlagToggled,
    FlagUpdated,
    Operator,
    Segment,
    SegmentArchived,
    SegmentCreated,
    SegmentRestored,
    SegmentUpdated,
)
from ...validation import Problem
from .errors import Conflict, InvalidInput, NotFound
from .merge_patch import apply_merge_patch
from .store import Stored

State = Flag | Segment | Environment


@dataclass(frozen=True)
class Kind:
    """How one kind of entity is stored: its state type, the event attribute holding it, its event classes."""

    kind: EntityKind
    state_type: type[Any]
    attr: str
    created: type[Event]
    updated: type[Event]
    archived: type[Event] | None = None
    restored: type[Event] | None = None
    toggled: type[Event] | None = None

    @property
    def label(self) -> str:
        return str(self.kind)


FLAG = Kind(EntityKind.FLAG, Flag, "flag", FlagCreated, FlagUpdated, FlagArchived, FlagRestored, FlagToggled)
SEGMENT = Kind(EntityKind.SEGMENT, Segment, "segment", SegmentCreated, SegmentUpdated, SegmentArchived, SegmentRestored)
ENVIRONMENT = Kind(EntityKind.ENVIRONMENT, Environment, "env", EnvironmentCreated, EnvironmentUpdated)


@dataclass(frozen=True)
class Context:
    """Who writes, where, when and why: the envelope of the event to build."""

    project: str
    environment: str
    actor: str
    at: datetime
    comment: str = ""
    #: Shared by the events of one change to several entities (``Event.change``); empty for one entity.
    change: str = ""
    author: Author | None = None


def state_of(kind: Kind, stored: Stored) -> Any:
    return getattr(stored.event, kind.attr)


def make_event(cls: type[Event], kind: Kind, state: Any, ctx: Context, revision: int) -> Event:
    fields = {
        "project": ctx.project,
        "environment": ctx.environment,
        "actor": ctx.actor,
        "at": ctx.at,
        "comment": ctx.comment,
        "change": ctx.change,
        "version": revision,
        kind.attr: state,
    }
    if ctx.author is not None:
        fields["author"] = ctx.author
    return cls(**fields)


def _existing(kind: Kind, current: Stored | None, key: str) -> Any:
    if current is None:
        raise NotFound(f"{kind.label} {key!r} not found")
    return state_of(kind, current)


def _writable(kind: Kind, current: Stored | None, key: str) -> Any:
    state = _existing(kind, current, key)
    if getattr(state, "archived", False):
        raise Conflict(f"{kind.label} {key!r} is archived: restore it before changing it")
    return state


def create(kind: Kind, current: Stored | None, state: Any, ctx: Context) -> Event:
    if current is not None:
        raise Conflict(f"{kind.label} {state.key!r} already exists")
    if getattr(state, "archived", False):
        raise InvalidInput("a new entity cannot be archived", [Problem("$.archived", "must be false on create")])
    return make_event(kind.created, kind, state, ctx, 1)


def replace(kind: Kind, current: Stored | None, state: Any, ctx: Context) -> Event | None:
    """The whole new state; ``archived`` changes only through archive/restore."""
    old = _writable(kind, current, state.key)
    assert current is not None
    if getattr(state, "archived", False) != getattr(old, "archived", False):
        raise InvalidInput(
            "archived cannot be changed by an update", [Problem("$.archived", "use the archive or restore action")]
        )
    if state == old:
        return None
    return make_event(kind.updated, kind, state, ctx, current.event.version + 1)


def patch(kind: Kind, current: Stored | None, key: str, changes: Mapping[str, Any], ctx: Context) -> Event | None:
    """Top-level fields in ``changes`` replace the current ones; the others stay."""
    old = _writable(kind, current, key)
    return replace(kind, current, msgspec.structs.replace(old, **changes), ctx)


def merge(kind: Kind, current: Stored | None, key: str, patch: Any, ctx: Context) -> Event | None:
    """The JSON Merge Patch ``patch`` (RFC 7386) applied to the current state, read as a whole; its key stays."""
    old = _writable(kind, current, key)
    new = apply_merge_patch(old, patch)
    if new.key != key:
        sent = new.key
        raise InvalidInput(
            f"key in the body ({sent!r}) differs from the key in the URL ({key!r})", [Problem("$.key", "cannot change")]
        )
    return replace(kind, current, new, ctx)


def toggle(kind: Kind, current: Stored | None, key: str, on: bool, ctx: Context) -> Event | None:
    assert kind.toggled is not None
    old = _writable(kind, current, key)
    assert current is not None
    if old.on == on:
        return None
    return make_event(kind.toggled, kind, msgspec.structs.replace(old, on=on), ctx, current.event.version + 1)


def dependents(kind: Kind, key: str, flags: Iterable[Flag]) -> list[str]:
    """Keys of the active flags that refer to the flag (as a prerequisite) or segment (in a clause) ``key``."""
    found = []
    for flag in flags:
        if flag.archived or (kind is FLAG and flag.key == key):
            continue
        if kind is FLAG:
            uses = any(p.flag == key for p in flag.prerequisites)
        else:
            uses = any(c.op == Operator.IN_SEGMENT and key in c.values for rule in flag.rules for c in rule.clauses)
        if uses:
            found.append(flag.key)
    return sorted(found)


def archive(
    kind: Kind, current: Stored | None, key: str, archived: bool, ctx: Context, used_by: Sequence[str] = ()
) -> Event | None:
    """Archive (``archived=True``) or restore; nothing to do if it already is so.

    An entity still used by active flags (``used_by``) cannot be archived: they would refer to nothing.
    """
    cls = kind.archived if archived else kind.restored
    assert cls is not None
    old = _existing(kind, current, key)
    assert current is not None
    if old.archived == archived:
        return None
    if archived and used_by:
        what = "a prerequisite of" if kind is FLAG else "used by"
        raise Conflict(f"{kind.label} {key!r} is {what} {', '.join(map(repr, used_by))}: change those flags first")
    return make_event(cls, kind, msgspec.structs.replace(old, archived=archived), ctx, current.event.version + 1)
