"""The read model: SQLite (through aiosqlite) holding the current state of every entity, every event, the last
applied stream sequence and the bad events. The only module of the projector that talks to SQLite.

Journal and durability: WAL with ``synchronous=NORMAL``. In WAL mode NORMAL never corrupts the database and
never loses a commit when the *process* dies (SIGKILL included); only an OS crash or power loss can roll back
the last transactions. That is safe here because the position is written in the same transaction as the rows:
a rolled-back commit rolls back its position too, and on start the projector rewinds its durable consumer to
position + 1, so the lost events are folded again, once. FULL would buy nothing but an fsync per batch.

The admin service reads audit history through the query methods (``open(path, readonly=True)``); WAL lets it
read while the projector writes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite
import msgspec

from ...events import Environment, Flag, Segment, canonical_json, decode_event, state_hash, subject
from ...events.catalog import AnyEvent, Schedule
from ...events.release import Plan
from .projection import Batch, format_time, parse_time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    project     TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    kind        TEXT    NOT NULL,  -- flag | segment | environment
    key         TEXT    NOT NULL,
    seq         INTEGER NOT NULL,  -- stream sequence of the last event (the API's version / ETag)
    revision    INTEGER NOT NULL,  -- per-entity revision carried by the event
    archived    INTEGER NOT NULL,
    state       BLOB    NOT NULL,  -- canonical JSON of the whole state (events.canonical_json)
    updated_at  TEXT    NOT NULL,  -- the event's ``at``, fixed-width UTC text
    updated_by  TEXT    NOT NULL,
    PRIMARY KEY (project, environment, kind, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,  -- stream sequence: each one at most once
    subject     TEXT    NOT NULL,
    project     TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    comment     TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    event       BLOB    NOT NULL      -- the event JSON exactly as stored in the stream
);
CREATE INDEX IF NOT EXISTS events_by_entity ON events (project, environment, kind, key, seq);
CREATE INDEX IF NOT EXISTS events_by_environment ON events (project, environment, seq);
CREATE INDEX IF NOT EXISTS events_by_key ON events (project, kind, key, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);

CREATE TABLE IF NOT EXISTS position (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO position (id, last_seq) VALUES (1, 0);

CREATE TABLE IF NOT EXISTS bad_events (
    seq     INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    error   TEXT NOT NULL,
    data    BLOB NOT NULL
);
"""

_EVENT_COLUMNS = "seq, subject, project, environment, kind, key, type, actor, at, comment, revision, event"
_ENTITY_COLUMNS = "project, environment, kind, key, seq, revision, archived, state, updated_at, updated_by"
_STATE_TYPES: dict[str, type[Flag] | type[Segment] | type[Environment] | type[Schedule] | type[Plan]] = {
    "flag": Flag,
    "segment": Segment,
    "environment": Environment,
    "schedule": Schedule,
    "plan": Plan,
}


class PositionConflict(RuntimeError):
    """The position moved under a batch (another writer on the same file): nothing was written."""


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """The current state of one entity."""

    project: str
    environment: str
    kind: str
    key: str
    seq: int
    revision: int
    archived: bool
    state: bytes  # canonical JSON
    updated_at: datetime
    updated_by: str

    @property
    def subject(self) -> str:
        return subject(self.project, self.environment, self.kind, self.key)

    def decoded(self) -> Flag | Segment | Environment | Schedule | Plan:
        """The state as its domain type."""
        return msgspec.json.decode(self.state, type=_STATE_TYPES[self.kind])


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of the log, as indexed."""

    seq: int
    subject: str
    project: str
    environment: str
    kind: str
    key: str
    type: str
    actor: str
    at: datetime
    comment: str
    revision: int
    data: bytes  # the event JSON as stored in the stream

    def event(self) -> AnyEvent:  # type: ignore[valid-type]
        return decode_event(self.data)


@dataclass(frozen=True, slots=True)
class BadEventRecord:
    seq: int
    subject: str
    error: str
    data: bytes


def _entity(row: Iterable[Any]) -> EntityRecord:
    project, environment, kind, key, seq, revision, archived, state, updated_at, updated_by = row
    return EntityRecord(
        project, environment, kind, key, seq, revision, bool(archived), bytes(state), parse_time(updated_at), updated_by
    )


def _event(row: Iterable[Any]) -> EventRecord:
    seq, subj, project, environment, kind, key, type_, actor, at, comment, revision, data = row
    return EventRecord(
        seq, subj, project, environment, kind, key, type_, actor, parse_time(at), comment, revision, bytes(data)
    )


class ReadModel:
    """The projector's SQLite file. Open with ``await ReadModel.open(path)``; close with ``await close()``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    async def open(cls, path: Path | str, *, readonly: bool = False) -> Self:
        """Open (creating the file and schema unless ``readonly``)."""
        path = Path(path)
        if readonly:
            conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
                await conn.executescript(_SCHEMA)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path)

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- writing: one batch, one transaction ---------------------------------------------------------------

    async def apply(self, batch: Batch) -> None:
        """Write a folded batch and its new position atomically. ``PositionConflict`` if the position is not
        ``batch.after`` any more (then nothing is written)."""
        if batch.empty:
            return
        conn = self._conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute("SELECT last_seq FROM position WHERE id = 1") as cur:
                row = await cur.fetchone()
            current = row[0] if row else 0
            if current != batch.after:
                raise PositionConflict(f"position is {current}, batch expected {batch.after}")
            await conn.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (e.seq, e.subject, e.project, e.environment, e.kind, e.key, e.type, e.actor, e.at, e.comment,
                     e.revision, e.data)
                    for e in batch.events
                ],
            )  # fmt: skip
            await conn.executemany(
                f"INSERT INTO entities ({_ENTITY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project, environment, kind, key) DO UPDATE SET seq = excluded.seq, "
                "revision = excluded.revision, archived = excluded.archived, state = excluded.state, "
                "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                [
                    (e.project, e.environment, e.kind, e.key, e.seq, e.revision, int(e.archived), e.state,
                     e.updated_at, e.updated_by)
                    for e in batch.entities.values()
                ],
            )  # fmt: skip
            await conn.executemany(
                "INSERT INTO bad_events (seq, subject, error, data) VALUES (?, ?, ?, ?)",
                [(b.seq, b.subject, b.error, b.data) for b in batch.bad],
            )
            await conn.execute("UPDATE position SET last_seq = ? WHERE id = 1", (batch.last_seq,))
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise

    # --- queries ------------------------------------------------------------------------------------------

    async def last_seq(self) -> int:
        """The last stream sequence applied (0: nothing yet)."""
        async with self._conn.execute("SELECT last_seq FROM position WHERE id = 1") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def get(self, project: str, environment: str, kind: str, key: str) -> EntityRecord | None:
        async with self._conn.execute(
            f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE project = ? AND environment = ? AND kind = ? AND key = ?",
            (project, environment, kind, key),
        ) as cur:
            row = await cur.fetchone()
        return _entity(row) if row else None

    async def list(
        self, project: str, environment: str, kind: str, *, include_archived: bool = True
    ) -> list[EntityRecord]:
        """Entities of one kind in one environment, by key."""
        sql = f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE project = ? AND environment = ? AND kind = ?"
        if not include_archived:
            sql += " AND archived = 0"
        async with self._conn.execute(sql + " ORDER BY key", (project, environment, kind)) as cur:
            return [_entity(row) for row in await cur.fetchall()]

    async def environments(self, project: str) -> list[EntityRecord]:
        """The environments of a project (their entity rows), by key."""
        sql = f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE project = ? AND kind = 'environment' ORDER BY key"
        async with self._conn.execute(sql, (project,)) as cur:
            return [_entity(row) for row in await cur.fetchall()]

    async def events(
        self,
        project: str,
        environment: str | None,
        kind: str | None = None,
        key: str | None = None,
        *,
        limit: int = 100,
        before_seq: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        environments: tuple[str, ...] | None = None,
    ) -> list[EventRecord]:
        """Events of an environment (None: of every environment of the project; ``environments`` limits them to
        these), optionally of one kind or one entity, newest first. Page with ``before_seq`` = the smallest
        ``seq`` of the previous page; ``since`` (inclusive) and ``until`` (exclusive) bound the events' ``at``;
        ``actor`` keeps one author's events."""
        if key is not None and kind is None:
            raise ValueError("key needs kind")
        clauses = ["project = ?"]
        params: list[Any] = [project]
        if environment is not None:
            clauses.append("environment = ?")
            params.append(environment)
        if environments is not None:
            clauses.append(f"environment IN ({', '.join('?' for _ in environments) or 'NULL'})")
            params.extend(environments)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(before_seq)
        if since is not None:
            clauses.append("at >= ?")
            params.append(format_time(since))
        if until is not None:
            clauses.append("at < ?")
            params.append(format_time(until))
        if actor is not None:
            clauses.append("actor = ?")
            params.append(actor)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?"
        async with self._conn.execute(sql, (*params, limit)) as cur:
            return [_event(row) for row in await cur.fetchall()]

    async def as_of(self, project: str, environment: str, kind: str, key: str, seq: int) -> EventRecord | None:
        """The event that set this entity's state as of stream sequence ``seq`` (time travel); ``None`` if the
        entity did not exist yet. Its ``event()`` carries the whole state."""
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE project = ? AND environment = ? AND kind = ? AND key = ? "
            "AND seq <= ? ORDER BY seq DESC LIMIT 1"
        )
        async with self._conn.execute(sql, (project, environment, kind, key, seq)) as cur:
            row = await cur.fetchone()
        return _event(row) if row else None

    async def seq_at(self, at: datetime) -> int:
        """The last stream sequence whose event happened at or before ``at`` (0: none). Events share a second
        often, never a sequence: ``at`` has microseconds and ties are broken by sequence."""
        sql = "SELECT seq FROM events WHERE at <= ? ORDER BY at DESC, seq DESC LIMIT 1"
        async with self._conn.execute(sql, (format_time(at),)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def states_as_of(
        self, project: str, environment: str, seq: int, kinds: tuple[str, ...] = ("flag", "segment")
    ) -> list[EventRecord]:
        """For every entity of these kinds in the environment, the event that set its state as of stream
        sequence ``seq`` (entities created later are absent), by kind and key. One indexed look-up per entity
        (entities are never deleted, so the entities table lists every one that ever existed)."""
        marks = ", ".join("?" for _ in kinds)
        cols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLUMNS.split(","))
        sql = (
            f"SELECT {cols} FROM entities n JOIN events e ON e.seq = (CASE WHEN n.seq <= ? THEN n.seq ELSE "
            "(SELECT max(x.seq) FROM events x WHERE x.project = n.project AND x.environment = n.environment "
            "AND x.kind = n.kind AND x.key = n.key AND x.seq <= ?) END) "
            f"WHERE n.project = ? AND n.environment = ? AND n.kind IN ({marks}) ORDER BY n.kind, n.key"
        )
        async with self._conn.execute(sql, (seq, seq, project, environment, *kinds)) as cur:
            return [_event(row) for row in await cur.fetchall()]

    async def previous(self, project: str, environment: str, kind: str, key: str, seq: int) -> EventRecord | None:
        """The event of this entity just before stream sequence ``seq`` (its previous version)."""
        return await self.as_of(project, environment, kind, key, seq - 1)

    async def event(self, seq: int) -> EventRecord | None:
        async with self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)) as cur:
            row = await cur.fetchone()
        return _event(row) if row else None

    async def event_seqs(self) -> list[int]:
        """Every stream sequence in the events table, ascending (for checks and tests)."""
        async with self._conn.execute("SELECT seq FROM events ORDER BY seq") as cur:
            return [int(row[0]) for row in await cur.fetchall()]

    async def bad_event_count(self) -> int:
        async with self._conn.execute("SELECT count(*) FROM bad_events") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def bad_events(self, *, limit: int = 100) -> list[BadEventRecord]:
        """The skipped messages, newest first."""
        sql = "SELECT seq, subject, error, data FROM bad_events ORDER BY seq DESC LIMIT ?"
        async with self._conn.execute(sql, (limit,)) as cur:
            return [BadEventRecord(seq, subj, error, bytes(data)) for seq, subj, error, data in await cur.fetchall()]

    async def state_hash(self, project: str, environment: str) -> str:
        """Hash of the flag and segment states (archived included) of one environment: equal to the SDK's
        ``Ruleset.state_hash()`` for the same environment at the same position."""
        sql = (
            "SELECT kind, key, state FROM entities WHERE project = ? AND environment = ? "
            "AND kind IN ('flag', 'segment')"
        )
        async with self._conn.execute(sql, (project, environment)) as cur:
            rows = await cur.fetchall()
        return state_hash(
            (subject(project, environment, kind, key), canonical)
            for kind, key, state in rows
            if (canonical := _current(kind, state)) is not None
        )

    async def state_hash_all(self) -> str:
        """Hash of every entity's state (environments included), to compare two whole read models."""
        async with self._conn.execute("SELECT project, environment, kind, key, state FROM entities") as cur:
            rows = await cur.fetchall()
        return state_hash(
            (subject(p, e, kind, key), canonical)
            for p, e, kind, key, state in rows
            if (canonical := _current(kind, state)) is not None
        )


def _current(kind: str, state: bytes) -> bytes | None:
    """A stored state as the code of today writes it (a row written by an earlier version lacks the fields
    added since: decoded, they take their defaults), or None for a deleted flag (gone from every fold)."""
    value = msgspec.json.decode(state, type=_STATE_TYPES[kind])
    return None if getattr(value, "deleted", False) else canonical_json(value)


@asynccontextmanager
async def open_read_model(path: Path | str, *, readonly: bool = False) -> AsyncIterator[ReadModel]:
    """``async with open_read_model(path) as model:`` — opened and closed around the block."""
    model = await ReadModel.open(path, readonly=readonly)
    try:
        yield model
    finally:
        await model.close()


def rebuild_path(path: Path | str) -> Path:
    """Where a rebuild of the read model at ``path`` is folded before it replaces it."""
    path = Path(path)
    return path.with_name(path.name + ".rebuild")


def remove_database(path: Path | str) -> None:
    """Delete an SQLite file and its WAL and shared-memory files (if any)."""
    path = Path(path)
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink(missing_ok=True)


async def seal(path: Path | str) -> None:
    """Fold the WAL into the database file and leave it as one self-contained file (ready to be moved)."""
    conn = await aiosqlite.connect(Path(path), isolation_level=None)
    try:
        for pragma in ("PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode = DELETE"):
            async with conn.execute(pragma) as cur:
                await cur.fetchall()
    finally:
        await conn.close()


def swap_in(fresh: Path | str, path: Path | str) -> None:
    """Atomically put the closed database ``fresh`` in place of ``path``. The old file's WAL and shared-memory
    files go first (a stale WAL must never meet the new file); no projector may have ``path`` open."""
    fresh, path = Path(fresh), Path(path)
    for leftover in (fresh.name + "-wal", fresh.name + "-shm"):
        if fresh.with_name(leftover).exists():
            raise RuntimeError(f"{fresh} was not closed cleanly ({leftover} remains)")
    for name in (path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink(missing_ok=True)
    os.replace(fresh, path)
