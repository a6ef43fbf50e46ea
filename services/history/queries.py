"""History questions asked of a read model: the audit log with field-level diffs, an instant resolved to a stream
sequence, entity and environment states as of it. What the admin API, the CLI (through it) and any later view
(a flag's history across environments) share; the HTTP bodies stay in ``admin/history.py``.

Each function takes a ``ReadModel`` that has applied the log as of the question (``HistorySource.applied``) and
does indexed look-ups only; the folding, diffing and hashing they hand on are the pure functions of
``timetravel.py`` and ``diff.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...events import entity_of
from ..changes import InvalidInput, NotFound
from ..projector import EventRecord, ReadModel
from ..targeting import flag_change_lines
from .diff import Change, diff
from .timetravel import EntityId, Versioned, states

#: An instant as asked: a time (the last event at or before it), a stream sequence, or None (now).
Instant = datetime | int | None


async def resolve(model: ReadModel, instant: Instant) -> tuple[int, datetime | None]:
    """An instant as (stream sequence, time): a time becomes the last sequence at or before it; a sequence must be
    in the log (``InvalidInput`` beyond the read model's position, which is the log's as of the question)."""
    last = await model.last_seq()
    if instant is None:
        record = await model.event(last) if last else None
        return last, record.at if record else None
    if isinstance(instant, datetime):
        return await model.seq_at(instant), instant
    if instant > last:
        raise InvalidInput(f"sequence {instant} is beyond the last one in the event log ({last})")
    record = await model.event(instant)
    return instant, record.at if record else None


async def states_at(model: ReadModel, project: str, environment: str, seq: int) -> dict[EntityId, Versioned]:
    """Every flag and segment of the environment as of stream sequence ``seq``, with the event that set it."""
    return states((r.seq, r.event()) for r in await model.states_as_of(project, environment, seq))


async def entity_at(
    model: ReadModel, project: str, environment: str, kind: str, key: str, seq: int
) -> Versioned | None:
    """One entity as of ``seq``; ``None`` if it did not exist yet, ``NotFound`` if it never existed."""
    found = await model.as_of(project, environment, kind, key, seq)
    if found is not None:
        return Versioned(found.seq, found.event())
    if await model.as_of(project, environment, kind, key, 2**62) is None:
        raise NotFound(f"{kind} {key!r} not found in environment {environment!r}")
    return None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event of the audit log with the entity's previous version and what changed against it."""

    record: EventRecord
    #: Stream sequence of the entity's previous event (0: this event created it).
    previous: int
    changes: list[Change]
    #: The changes for people: a flag's in sentences (``Rule 1 (ca): rollout on 10% -> 25%``), the others'
    #: field by field.
    lines: list[str]


async def audit(
    model: ReadModel,
    project: str,
    environment: str | None,
    kind: str | None = None,
    key: str | None = None,
    **filters: Any,
) -> list[AuditEntry]:
    """Events of an environment (None: of every environment of the project), of one kind or one entity, newest
    first, each with its field-level diff. ``filters``: those of ``ReadModel.events`` (``limit``, ``before_seq``,
    ``since``, ``until``, ``actor``, ``environments``)."""
    out = []
    for record in await model.events(project, environment, kind, key, **filters):
        previous = await model.previous(record.project, record.environment, record.kind, record.key, record.seq)
        old_state = entity_of(previous.event())[2] if previous else None
        new_state = entity_of(record.event())[2]
        changes = diff(old_state, new_state)
        said = flag_change_lines(old_state, new_state) if record.kind == "flag" else [c.text for c in changes]
        out.append(AuditEntry(record, previous.seq if previous else 0, changes, said))
    return out
