"""The application layer: read the current state, decide, validate, append exactly one event.

Every write goes through ``_write``: idempotency look-up, ``If-Match`` check, the pure decision, semantic
validation, then an append guarded by ``Nats-Expected-Last-Subject-Sequence``. Reads go straight to JetStream
(direct get for one entity, a LAST_PER_SUBJECT consumer for a list): the service keeps no state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import msgspec

from ...events import Author, Event, FlagCreated, FlagUpdated, entity_of, subject
from ...events.subjects import PREFIX
from ...validation import Problem, segment_references, validate_flag, validate_segment
from . import decide, flags
from .decide import ENVIRONMENT, FLAG, SEGMENT, Context, Kind
from .errors import Conflict, InvalidInput, NotFound, NotPermitted
from .flags import ProjectFlag, Write
from .merge_patch import apply_merge_patch
from .store import MAX_BATCH, Append, DuplicateBatch, EventStore, Stored, WrongLastSequence

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
    #: Whether the caller may write to an environment of the write's project (None: to every one). A change that
    #: would change what another environment serves (a flag's variations are written to every environment) is
    #: refused, whatever the route.
    may_write: Callable[[str], bool] | None = None
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
        if found is None or (kind is FLAG and found.event.flag.deleted):  # type: ignore[attr-defined]
            raise NotFound(_missing(kind, project, environment, key))
        return found

    async def list(self, kind: Kind, project: str, environment: str, where: ListFilter | None = None) -> list[Stored]:
        if kind is not ENVIRONMENT:
            await self._require_environment(project, environment)
        where = where or ListFilter(archived=None)
        latest = await self.store.latest(list_filter(kind, project, environment))
        items = [
            s
            for s in latest.values()
            if where.keep(state := decide.state_of(kind, s)) and not getattr(state, "deleted", False)
        ]
        return sorted(items, key=lambda s: decide.state_of(kind, s).key)

    # -- writes ------------------------------------------------------------------------------------------

    async def create(
        self, kind: Kind, project: str, environment: str, state: Any, req: WriteRequest, *, copy_from: str = ""
    ) -> Outcome:
        if kind is ENVIRONMENT:
            return await self._create_environment(project, state, req, copy_from)
        else:
            await self._require_environment(project, environment)
        if kind is FLAG:  # once for the whole project: present (off) in every environment
            return self._in(environment, await self.write_flag(
                project, state.key, req, lambda pf, ctx: flags.create(pf, environment, state, ctx), created=True
            ))  # fmt: skip
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, state.key, req, lambda cur: decide.create(kind, cur, state, ctx), created=True
        )

    async def replace(
        self, kind: Kind, project: str, environment: str, key: str, state: Any, req: WriteRequest
    ) -> Outcome:
        await self._require_environment(project, environment)
        if kind is FLAG:
            return self._in(environment, await self.write_flag(
                project, key, req, lambda pf, ctx: flags.replace_in(pf, environment, state, ctx), version_in=environment
            ))  # fmt: skip
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, key, req, lambda cur: decide.replace(kind, cur, state, ctx)
        )

    async def patch(
        self, kind: Kind, project: str, environment: str, key: str, changes: Mapping[str, Any], req: WriteRequest
    ) -> Outcome:
        await self._require_environment(project, environment)
        if kind is FLAG:

            def patched(pf: ProjectFlag, ctx: Context) -> list[Write]:
                merged = msgspec.structs.replace(pf.require(environment), **changes)
                return flags.replace_in(pf, environment, merged, ctx)

            return self._in(environment, await self.write_flag(project, key, req, patched, version_in=environment))
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
        if kind is FLAG:  # project-wide fields in the patch are written to every environment, as one change

            def merged(pf: ProjectFlag, ctx: Context) -> list[Write]:
                new = apply_merge_patch(pf.require(environment), patch)
                if new.key != key:
                    raise InvalidInput(
                        f"key in the body ({new.key!r}) differs from the key in the URL ({key!r})",
                        [Problem("$.key", "cannot change")],
                    )
                return flags.replace_in(pf, environment, new, ctx)

            return self._in(environment, await self.write_flag(project, key, req, merged, version_in=environment))
        ctx = self._context(project, environment, req)
        return await self._write(
            kind, project, environment, key, req, lambda cur: decide.merge(kind, cur, key, patch, ctx)
        )

    async def toggle(self, project: str, environment: str, key: str, on: bool, req: WriteRequest) -> Outcome:
        await self._require_environment(project, environment)
        return self._in(environment, await self.write_flag(
            project, key, req, lambda pf, ctx: flags.toggle(pf, environment, on, ctx), version_in=environment,
            retry=True,
        ))  # fmt: skip

    async def archive(
        self, kind: Kind, project: str, environment: str, key: str, archived: bool, req: WriteRequest
    ) -> Outcome:
        await self._require_environment(project, environment)
        if kind is FLAG:  # a flag is archived (restored) in every environment at once
            return self._in(environment, await self.archive_flag(project, key, archived, req, environment))
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

    async def _create_environment(self, project: str, env: Any, req: WriteRequest, copy_from: str) -> Outcome:
        """A new environment with every flag of the project in it: off (``blank``), or with the configuration of
        ``copy_from`` (and that environment's segments, which its rules may use). One atomic batch per 1,000
        events, the environment's own event in the first: a project of at most 999 flags and segments gets its
        environment all at once or not at all."""
        subj = entity_subject(ENVIRONMENT, project, env.key, env.key)
        msg_id = f"{subj}:{req.idempotency_key}" if req.idempotency_key else None
        if msg_id is not None and (seq := await self.store.find_msg_id(subj, msg_id)) is not None:
            return Outcome(await self.store.at(seq), created=True)
        if req.if_match not in (None, 0):
            raise Conflict(f"environment {env.key!r} does not exist: If-Match can only be 0", None)
        if await self.store.last(subj) is not None:
            raise Conflict(f"env {env.key!r} already exists", await self.store.last(subj))
        try:
            existing = await self.project_flags(project)
        except NotFound:  # the project's first environment
            existing = []
        source_segments: list[Any] = []
        if copy_from:
            await self._require_environment(project, copy_from)
            found = await self.store.latest(list_filter(SEGMENT, project, copy_from))
            source_segments = [s.event.segment for s in found.values() if not s.event.segment.archived]  # type: ignore[attr-defined]
        ctx = Context(project, env.key, req.actor, self.clock(), req.comment, uuid.uuid4().hex, req.author)
        events: list[tuple[str, Event]] = [(subj, decide.create(ENVIRONMENT, None, env, ctx))]
        for segment in sorted(source_segments, key=lambda s: s.key):
            events.append(
                (subject(project, env.key, "segment", segment.key), decide.create(SEGMENT, None, segment, ctx))
            )
        for pf in existing:
            definition = pf.require()
            source = pf.flag(copy_from) if copy_from else None
            flag = (
                flags.blank(definition)
                if source is None
                else msgspec.structs.replace(definition, **flags.configuration_of(source))
            )
            if definition.archived:
                flag = msgspec.structs.replace(flag, archived=True)
            events.append(
                (subject(project, env.key, "flag", pf.key), decide.make_event(FlagCreated, FLAG, flag, ctx, 1))
            )
        if len(events) == 1:
            events = [(subj, msgspec.structs.replace(events[0][1], change=""))]
        seqs: list[int] = []
        for start in range(0, len(events), MAX_BATCH):
            chunk = events[start : start + MAX_BATCH]
            batch = [Append(s, e, 0, msg_id if s == subj else None) for s, e in chunk]
            try:
                seqs += await self.store.append_all(batch)
            except (WrongLastSequence, DuplicateBatch):
                if start == 0:
                    if msg_id is not None and (seq := await self.store.find_msg_id(subj, msg_id)) is not None:
                        return Outcome(await self.store.at(seq), created=True)
                    raise Conflict(f"env {env.key!r} already exists", await self.store.last(subj)) from None
                raise
        return Outcome(Stored(seqs[0], events[0][1]), created=True)

    # -- flags across the environments of a project ------------------------------------------------------

    async def environment_keys(self, project: str) -> tuple[str, ...]:
        """Every environment of the project, by key (NotFound: a project without any)."""
        latest = await self.store.latest(list_filter(ENVIRONMENT, project, ""))
        keys = tuple(sorted(s.event.env.key for s in latest.values()))  # type: ignore[attr-defined]
        if not keys:
            raise NotFound(f"project {project!r} not found (it has no environment)")
        return keys

    async def project_flag(self, project: str, key: str) -> ProjectFlag:
        """The flag ``key`` in every environment of the project (direct gets, one per environment)."""
        environments = await self.environment_keys(project)
        found = await asyncio.gather(*(self.store.last(subject(project, env, "flag", key)) for env in environments))
        return ProjectFlag(project, key, environments, {e: s for e, s in zip(environments, found, strict=True) if s})

    async def project_flags(self, project: str) -> list[ProjectFlag]:
        """Every flag of the project with its state in each environment (one LAST_PER_SUBJECT read), by key."""
        environments = await self.environment_keys(project)
        latest = await self.store.latest(f"{PREFIX}.{project}.*.flag.*")
        by_key: dict[str, dict[str, Stored]] = {}
        for stored in latest.values():
            event = stored.event
            by_key.setdefault(event.flag.key, {})[event.environment] = stored  # type: ignore[attr-defined]
        found = [ProjectFlag(project, key, environments, states) for key, states in sorted(by_key.items())]
        return [pf for pf in found if pf.exists]

    async def archive_flag(
        self, project: str, key: str, archived: bool, req: WriteRequest, version_in: str | None = None
    ) -> tuple[ProjectFlag, bool]:
        async def decision(pf: ProjectFlag, ctx: Context) -> list[Write]:
            if version_in is not None:
                pf.require(version_in)
            used_by: dict[str, list[str]] = {}
            if archived:
                every = await self._flags_by_environment(project)
                used_by = flags.dependents_by_environment(key, every)
            return flags.archive(pf, archived, ctx, used_by)

        return await self.write_flag(project, key, req, decision, version_in=version_in, retry=True)

    async def write_flag(
        self,
        project: str,
        key: str,
        req: WriteRequest,
        decision: Callable[[ProjectFlag, Context], Any],
        *,
        version_in: str | None = None,
        created: bool = False,
        retry: bool = False,
    ) -> tuple[ProjectFlag, bool]:
        """One change to flag ``key``: read it in every environment, decide the events (``decision``, which may
        be async), check them, append them as one atomic batch. Returns the flag after the change, and whether
        anything was written. ``If-Match`` is compared with the flag's version in ``version_in``, or with its
        project-wide version (``ProjectFlag.version``)."""
        attempts = RACE_ATTEMPTS if retry and req.if_match is None else 1
        for attempt in range(1, attempts + 1):
            pf = await self.project_flag(project, key)
            if req.idempotency_key and (landed := await self._landed(pf, req.idempotency_key)):
                # The same write already landed: answer as the first time (its events where it wrote).
                return ProjectFlag(project, key, pf.environments, {**pf.states, **landed}), True
            current = pf.states.get(version_in).seq if version_in and version_in in pf.states else 0
            version = current if version_in else pf.version
            if req.if_match is not None and req.if_match != version:
                where = f" in {version_in}" if version_in else ""
                message = f"flag {key!r} is at version {version}{where}, not {req.if_match}: read it again and retry"
                raise self._conflict(message, pf, version_in)
            ctx = Context(project, version_in or "", req.actor, self.clock(), req.comment, uuid.uuid4().hex, req.author)
            writes = decision(pf, ctx)
            if asyncio.iscoroutine(writes):
                writes = await writes
            if not writes:
                return pf, False
            if len(writes) == 1:  # one entity: no change id
                writes = [replace(writes[0], event=msgspec.structs.replace(writes[0].event, change=""))]
            allowed = [e for e in pf.environments if req.may_write is None or req.may_write(e)]
            denied = flags.outside_scope(pf, writes, allowed)
            if denied:
                raise NotPermitted(
                    f"this change to flag {key!r} changes it in {', '.join(denied)} too (variations, kind, archiving "
                    "and deletion are the same in every environment): it needs the right to act on every "
                    "environment of the project"
                )
            await self._validate_flags(project, writes)
            subjects = [subject(project, w.environment, "flag", key) for w in writes]
            batch = [
                Append(subj, w.event, w.expected_seq, f"{subj}:{req.idempotency_key}" if req.idempotency_key else None)
                for subj, w in zip(subjects, writes, strict=True)
            ]
            try:
                seqs = await self.store.append_all(batch)
            except DuplicateBatch:  # a concurrent request with the same key won
                landed = await self._landed(pf, req.idempotency_key or "")
                return ProjectFlag(project, key, pf.environments, {**pf.states, **landed}), True
            except WrongLastSequence:
                if req.idempotency_key and (landed := await self._landed(pf, req.idempotency_key)):
                    # a concurrent request with the same key was the one that won
                    return ProjectFlag(project, key, pf.environments, {**pf.states, **landed}), True
                if attempt < attempts:
                    continue
                what = "already exists" if created else "was changed by someone else meanwhile"
                latest = await self.project_flag(project, key)
                raise self._conflict(f"flag {key!r} {what}: read it again and retry", latest, version_in) from None
            states = dict(pf.states)
            for w, seq in zip(writes, seqs, strict=True):
                states[w.environment] = Stored(seq, w.event)
            return ProjectFlag(project, key, pf.environments, states), True
        raise AssertionError("unreachable")

    async def promote(
        self,
        project: str,
        source: str,
        target: str,
        keys: list[str] | None,
        req: WriteRequest,
        *,
        dry_run: bool = False,
        expected: Mapping[str, int] | None = None,
    ) -> tuple[list[ProjectFlag], list[Write], bool]:
        """Copy flags' configurations from ``source`` to ``target`` (``keys``: None for every active flag): the
        flags as they were, the events (what changes), and whether they were written. All or none: one atomic
        batch, refused whole if any flag would not be valid in ``target`` or moved since ``expected``."""
        if not dry_run and req.may_write is not None and not req.may_write(target):
            raise NotPermitted(f"promoting to {target} needs the right to write there")
        for env in (source, target):
            await self._require_environment(project, env)
        every = {pf.key: pf for pf in await self.project_flags(project)}
        if keys is None:
            chosen = [pf for pf in every.values() if not pf.require().archived]
        else:
            unknown = [k for k in keys if k not in every]
            if unknown:
                raise NotFound(f"no such flag in project {project!r}: {', '.join(unknown)}")
            chosen = [every[k] for k in dict.fromkeys(keys)]
        ctx = Context(project, target, req.actor, self.clock(), req.comment, uuid.uuid4().hex, req.author)
        writes = flags.promote(chosen, source, target, ctx, expected)
        if len(writes) == 1:
            writes = [replace(writes[0], event=msgspec.structs.replace(writes[0].event, change=""))]
        await self._validate_flags(project, writes)
        if dry_run or not writes:
            return chosen, writes, False
        batch = [
            Append(subject(project, w.environment, "flag", w.event.flag.key), w.event, w.expected_seq)  # type: ignore[attr-defined]
            for w in writes
        ]
        try:
            await self.store.append_all(batch)
        except WrongLastSequence:
            raise Conflict(
                f"a flag being promoted changed in {target} meanwhile: preview again; nothing was promoted",
                version=None,
            ) from None
        return chosen, writes, True

    async def _landed(self, pf: ProjectFlag, idempotency_key: str) -> dict[str, Stored]:
        """The events a write with this Idempotency-Key stored (within the look-back), by environment."""
        out = {}
        for env in pf.environments:
            subj = subject(pf.project, env, "flag", pf.key)
            seq = await self.store.find_msg_id(subj, f"{subj}:{idempotency_key}")
            if seq is not None:
                out[env] = await self.store.at(seq)
        return out

    async def _flags_by_environment(self, project: str) -> dict[str, list[Any]]:
        latest = await self.store.latest(f"{PREFIX}.{project}.*.flag.*")
        out: dict[str, list[Any]] = {}
        for stored in latest.values():
            flag = stored.event.flag  # type: ignore[attr-defined]
            if not flag.deleted:
                out.setdefault(stored.event.environment, []).append(flag)
        return out

    async def _validate_flags(self, project: str, writes: list[Write]) -> None:
        """Each flag written (created or updated: toggles and archiving keep the structure) checked against its
        environment's segments and other flags."""
        checked = [w for w in writes if type(w.event) in (FlagCreated, FlagUpdated)]
        if not checked:
            return
        every = await self._flags_by_environment(project)
        segments = await self.store.latest(f"{PREFIX}.{project}.*.segment.*")
        for w in checked:
            _, key, state = entity_of(w.event)
            env_segments = {
                s.event.segment.key: s.event.segment  # type: ignore[attr-defined]
                for s in segments.values()
                if s.event.environment == w.environment
            }
            others = {f.key: f for f in every.get(w.environment, []) if f.key != key}
            problems = validate_flag(state, segments=env_segments, flags=others)  # type: ignore[arg-type]
            if problems:
                message = f"invalid flag {key!r} in {w.environment}: {problems[0].message} at {problems[0].path}"
                raise InvalidInput(message, problems)

    @staticmethod
    def _conflict(message: str, pf: ProjectFlag, version_in: str | None) -> Conflict:
        if version_in:
            return Conflict(message, pf.states.get(version_in))
        return Conflict(message, version=pf.version)

    @staticmethod
    def _in(environment: str, result: tuple[ProjectFlag, bool]) -> Outcome:
        """The outcome of a flag write as one environment sees it (the routes of an environment)."""
        pf, changed = result
        stored = pf.states.get(environment)
        if stored is None:
            raise NotFound(f"flag {pf.key!r} not found in environment {environment!r}")
        return Outcome(stored, created=changed and type(stored.event) is FlagCreated, changed=changed)

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
        return Context(project, environment, req.actor, self.clock(), req.comment, author=req.author)


def _missing(kind: Kind, project: str, environment: str, key: str) -> str:
    if kind is ENVIRONMENT:
        return f"environment {key!r} not found in project {project!r}"
    return f"{kind.label} {key!r} not found in environment {environment!r}"
