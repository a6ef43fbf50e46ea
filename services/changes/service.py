"""The application layer: read the current state, decide, validate, append exactly one event.

Every write goes through ``_write``: idempotency look-up, ``If-Match`` check, the pure decision, semantic
validation, then an append guarded by ``Nats-Expected-Last-Subject-Sequence``. Reads go straight to JetStream
(direct get for one entity, a LAST_PER_SUBJECT consumer for a list): the service keeps no state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...events import Author, Event, entity_of, subject
from ...events.subjects import PREFIX
from ...validation import segment_references, validate_flag, validate_segment
from . import decide
from .decide import ENVIRONMENT, FLAG, SEGMENT, Context, Kind
from .errors import Conflict, InvalidInput, NotFound
from .store import EventStore, Stored, WrongLastSequence

#: Attempts of a toggle/archive/restore without If-Match when another writer keeps winning the race.
RACE_ATTEMPTS = 5


@dataclass(frozen=True)
class WriteRequest:
    """What a client says about a write besides its content."""

    actor: str
    comment: str = ""
    #: Expected version (stream sequence); a different current version is a conflict.
    if_match: int | None = None
    #: Client-chosen key: a retried write with the same key lands once.
    idempotency_key: str | None = None
    #: Who writes (the person signed in, or the API token), recorded on the event beside ``actor``.
    author: Author | None = None


@dataclass(frozen=True)
class Outcome:
    stored: Stored
    #: The entity came into existence with this write (HTTP 201).
    created: bool = False
    #: An event was appended (False: the state already was so, nothing was written).
    changed: bool = True


@dataclass(frozen=True)
class ListFilter:
    #: True: archived only; False: active only; None: all.
    archived: bool | None = False
    tag: str | None = None
    q: str | None = None

    def keep(self, state: Any) -> bool:
        if self.archived is not None and getattr(state, "archived", False) != self.archived:
            return False
        if self.tag is not None and self.tag not in getattr(state, "tags", ()):
            return False
        if self.q:
            needle = self.q.casefold()
            return needle in state.key.casefold() or needle in getattr(state, "name", "").casefold()
        return True


def entity_subject(kind: Kind, project: str, environment: str, key: str) -> str:
    return subject(project, environment, kind.kind, environment if kind is ENVIRONMENT else key)


def list_filter(kind: Kind, project: str, environment: str) -> str:
    if kind is ENVIRONMENT:
        return f"{PREFIX}.{project}.*.{kind.kind}.*"
    return f"{PREFIX}.{project}.{environment}.{kind.kind}.*"


class AdminService:
    def __init__(self, store: EventStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.clock = clock

    # -- reads -------------------------------------------------------------------------------------------

    async def get(self, kind: Kind, project: str, environment: str, key: str) -> Stored:
        if kind is not ENVIRONMENT:
            await self._require_environment(project, environment)
        found = await self.store.last(entity_subject(kind, project, environment, key))
        if found is None:
            raise NotFound(_missing(kind, project, environment, key))
        return found

    async def list(self, kind: Kind, project: str, environment: str, where: ListFilter | None = None) -> list[Stored]:
        if kind is not ENVIRONMENT:
            await self._require_environment(project, environment)
        where = where or ListFilter(archived=None)
        latest = await self.store.latest(list_filter(kind, project, environment))
        items = [s for s in latest.values() if where.keep(decide.state_of(kind, s))]
        return sorted(items, key=lambda s: decide.state_of(kind, s).key)

    # -- writes ------------------------------------------------------------------------------------------

    async def create(self, kind: Kind, project: str, environment: str, state: Any, req: WriteRequest) -> Outcome:
        if kind is ENVIRONMENT:
            environment = state.key
        else:
            await self._require_environment(project, environment)
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, state.key, req, lambda cur: decide.create(kind, cur, state, ctx), created=True
        )

    async def replace(
        self, kind: Kind, project: str, environment: str, key: str, state: Any, req: WriteRequest
    ) -> Outcome:
        await self._require_environment(project, environment)
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, key, req, lambda cur: decide.replace(kind, cur, state, ctx)
        )

    async def patch(
        self, kind: Kind, project: str, environment: str, key: str, changes: Mapping[str, Any], req: WriteRequest
    ) -> Outcome:
        await self._require_environment(project, environment)
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, key, req, lambda cur: decide.patch(kind, cur, key, changes, ctx)
        )

    async def merge_patch(
        self, kind: Kind, project: str, environment: str, key: str, patch: Mapping[str, Any], req: WriteRequest
    ) -> Outcome:
        """Apply a JSON Merge Patch (RFC 7386) to the current state, as read for this very write: validated as a
        whole entity, appended against the version it was applied to (a concurrent change is a 409, never lost)."""
        await self._require_environment(project, environment)
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, key, req, lambda cur: decide.merge(kind, cur, key, patch, ctx)
        )

    async def toggle(self, project: str, environment: str, key: str, on: bool, req: WriteRequest) -> Outcome:
        await self._require_environment(project, environment)
        ctx = self._context(project, environment, req)
        return await self._write(
            FLAG, project, environment, key, req, lambda cur: decide.toggle(FLAG, cur, key, on, ctx), retry=True
        )

    async def archive(
        self, kind: Kind, project: str, environment: str, key: str, archived: bool, req: WriteRequest
    ) -> Outcome:
        await self._require_environment(project, environment)
        ctx = self._context(project, environment, req)
        used_by: list[str] = []
        if archived:
            flags = await self.store.latest(list_filter(FLAG, project, environment))
            used_by = decide.dependents(kind, key, (s.event.flag for s in flags.values()))  # type: ignore[attr-defined]
        return await self._write(
            kind,
            project,
            environment,
            key,
            req,
            lambda cur: decide.archive(kind, cur, key, archived, ctx, used_by),
            retry=True,
        )

    async def _write(
        self,
        kind: Kind,
        project: str,
        environment: str,
        key: str,
        req: WriteRequest,
        decision: Callable[[Stored | None], Event | None],
        *,
        created: bool = False,
        retry: bool = False,
    ) -> Outcome:
        subj = entity_subject(kind, project, environment, key)
        msg_id = f"{subj}:{req.idempotency_key}" if req.idempotency_key else None
        if msg_id is not None:
            seq = await self.store.find_msg_id(subj, msg_id)
            if seq is not None:  # the same write already landed: answer as the first time
                return Outcome(await self.store.at(seq), created=created)
        attempts = RACE_ATTEMPTS if retry and req.if_match is None else 1
        for attempt in range(1, attempts + 1):
            current = await self.store.last(subj)
            current_seq = current.seq if current is not None else 0
            if req.if_match is not None and req.if_match != current_seq:
                raise Conflict(
                    f"{kind.label} {key!r} is at version {current_seq}, not {req.if_match}: read it again and retry",
                    current,
                )
            if current is None and not created:
                raise NotFound(_missing(kind, project, environment, key))
            try:
                event = decision(current)
            except Conflict as exc:
                exc.current = current
                raise
            if event is None:
                assert current is not None
                return Outcome(current, changed=False)
            if type(event) in (kind.created, kind.updated):  # toggles and archiving keep the structure
                await self._validate(kind, project, environment, event)
            try:
                appended = await self.store.append(subj, event, expected_seq=current_seq, msg_id=msg_id)
            except WrongLastSequence:
                if msg_id is not None:  # a concurrent request with the same key may be the one that won
                    seq = await self.store.find_msg_id(subj, msg_id)
                    if seq is not None:
                        return Outcome(await self.store.at(seq), created=created)
                if attempt < attempts:
                    continue
                latest = await self.store.last(subj)
                what = "already exists" if created else "was changed by someone else meanwhile"
                raise Conflict(f"{kind.label} {key!r} {what}: read it again and retry", latest) from None
            if appended.duplicate:  # a concurrent retry with the same key won: answer with its result
                return Outcome(await self.store.at(appended.seq), created=created)
            return Outcome(Stored(appended.seq, event), created=created)
        raise AssertionError("unreachable")

    async def _validate(self, kind: Kind, project: str, environment: str, event: Event) -> None:
        if kind is FLAG:
            _, key, state = entity_of(event)
            flags = await self.store.latest(list_filter(FLAG, project, environment))
            segments = await self.store.latest(list_filter(SEGMENT, project, environment))
            problems = validate_flag(
                state,  # type: ignore[arg-type]
                segments={s.event.segment.key: s.event.segment for s in segments.values()},  # type: ignore[attr-defined]
                flags={f.event.flag.key: f.event.flag for f in flags.values() if f.event.flag.key != key},  # type: ignore[attr-defined]
            )
        elif kind is SEGMENT:
            segment = entity_of(event)[2]
            others = None
            if segment_references(segment):  # type: ignore[arg-type]
                found = await self.store.latest(list_filter(SEGMENT, project, environment))
                others = {s.event.segment.key: s.event.segment for s in found.values()}  # type: ignore[attr-defined]
            problems = validate_segment(segment, others)  # type: ignore[arg-type]
        else:
            problems = []
        if problems:
            raise InvalidInput(f"invalid {kind.label}: {problems[0].message} at {problems[0].path}", problems)

    async def _require_environment(self, project: str, environment: str) -> None:
        if await self.store.last(entity_subject(ENVIRONMENT, project, environment, environment)) is None:
            raise NotFound(_missing(ENVIRONMENT, project, environment, environment))

    def _context(self, project: str, environment: str, req: WriteRequest) -> Context:
        return Context(project, environment, req.actor, self.clock(), req.comment, req.author)


def _missing(kind: Kind, project: str, environment: str, key: str) -> str:
    if kind is ENVIRONMENT:
        return f"environment {key!r} not found in project {project!r}"
    return f"{kind.label} {key!r} not found in environment {environment!r}"
