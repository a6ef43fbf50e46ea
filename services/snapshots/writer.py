"""The snapshot writer: one replica at a time keeps every environment's compacted snapshot current.

Every admin replica runs one (``services/admin/snapshots.py``); the one holding the lease (key ``_writer`` of the
snapshot bucket: the replica's name, renewed by compare-and-set every third of ``lease`` seconds; another replica
that sees the same revision for ``lease`` seconds of its own clock takes it over, one winner) follows the whole
event stream with an ordered consumer: the last event of every subject first (``LAST_PER_SUBJECT``, O(subjects)),
then every new event. Each event is decoded as an SDK client decodes it (an undecodable one is skipped, logged and
counted, and its subject left out, as a client loading the environment would leave it out). Once caught up, the
state it holds at stream position ``P`` is every environment's state as of ``P``.

An environment changed since its last snapshot gets a new one (``events/snapshot.py``: the last event of each of
its subjects, as of ``P``) when ``interval`` seconds have passed since the last, and ``min_events`` events changed
it (or the oldest of fewer is ``max_age`` seconds old). A replica that takes the lease over writes every
environment once. A replica that loses it stops following and forgets the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ...events import STREAM, DecodeError, Event, decode_event
from ...events.snapshot import SNAPSHOT_BUCKET, Snapshot, encode_snapshot, snapshot_key, snapshot_subject, stream_id
from ...events.subjects import PREFIX, all_subjects
from ..runtime import ensure_bucket, in_background, run_passes

log = logging.getLogger("flagstream.snapshots")

#: Seconds without a renewal after which another replica takes the writing over.
LEASE = 10.0
#: At most one snapshot per environment this often (seconds)...
INTERVAL = 2.0
#: ...once this many events changed it...
MIN_EVENTS = 1
#: ...or once the oldest of fewer is this old (seconds).
MAX_AGE = 60.0
#: The lease's key (one token: never an environment's ``<project>.<environment>.<part>``).
LEASE_KEY = "_writer"


class WriterLease:
    """The writer's lease in the snapshot bucket, renewed by compare-and-set; expiry judged on this replica's clock."""

    def __init__(self, kv: KeyValue, name: str, lease: float = LEASE, clock: Callable[[], float] = time.monotonic):
        self.kv = kv
        self.name = name
        self.lease = lease
        self.clock = clock
        self._mine: tuple[int, float] | None = None  # (revision, renewed at)
        self._seen: tuple[int, float] | None = None  # another holder's revision, first seen at

    @property
    def held(self) -> bool:
        return self._mine is not None

    async def hold(self) -> bool:
        """Whether this replica holds the lease now: renews it when due, takes it when free or run out."""
        now = self.clock()
        value = self.name.encode()
        if self._mine is not None:
            revision, renewed = self._mine
            if now - renewed < self.lease / 3:
                return True
            try:
                self._mine = (await self.kv.update(LEASE_KEY, value, last=revision), now)
                return True
            except KeyWrongLastSequenceError:
                log.warning("snapshots: lost the writer's lease to another replica")
            except Exception as exc:
                log.warning("snapshots: could not renew the writer's lease: %r", exc)
                if now - renewed < self.lease * 2 / 3:
                    return True
            self._mine = None
            return False
        try:
            entry = await self.kv.get(LEASE_KEY)
        except KeyNotFoundError:
            entry = None
        if entry is None or not entry.value or entry.operation is not None:
            try:
                revision = await (
                    self.kv.create(LEASE_KEY, value)
                    if entry is None
                    else self.kv.update(LEASE_KEY, value, entry.revision)
                )
            except KeyWrongLastSequenceError:
                return False
            self._mine = (revision, now)
            return True
        if self._seen is None or self._seen[0] != entry.revision:
            self._seen = (entry.revision, now)
            return False
        if now - self._seen[1] < self.lease:
            return False
        try:
            revision = await self.kv.update(LEASE_KEY, value, last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        log.warning("snapshots: took the writer's lease over from %s (no renewal for %.0fs)", entry.value.decode(),
                    now - self._seen[1])  # fmt: skip
        self._mine = (revision, now)
        return True

    async def release(self) -> None:
        """Give the lease up at once (a clean stop): another replica takes over at its next pass."""
        mine, self._mine = self._mine, None
        if mine is not None:
            with contextlib.suppress(Exception):
                await self.kv.update(LEASE_KEY, b"", last=mine[0])


@dataclass
class _Environment:
    #: subject -> (stream sequence, event) of the last event of each subject.
    subjects: dict[str, tuple[int, Event]] = field(default_factory=dict)
    changed: int = 0  # events since the last snapshot
    changed_at: float = 0.0  # monotonic time of the first of them
    written_at: float = float("-inf")
    parts: int = 0  # parts of the last snapshot written (the stale ones above are purged)


class SnapshotWriter:
    """Keeps every environment's snapshot current while this replica holds the lease (see the module's text)."""

    def __init__(
        self,
        nc: NATS,
        *,
        name: str | None = None,
        lease: float = LEASE,
        interval: float = INTERVAL,
        min_events: int = MIN_EVENTS,
        max_age: float = MAX_AGE,
        domain: str | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(domain=domain)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease_seconds = lease
        self.interval = interval
        self.min_events = min_events
        self.max_age = max_age
        self.wake = asyncio.Event()
        self.kv: KeyValue | None = None
        self.lease: WriterLease | None = None
        #: Events skipped because they could not be decoded, and snapshots written (for logs and tests).
        self.bad_events = 0
        self.written = 0
        self._sub: Any = None
        self._envs: dict[tuple[str, str], _Environment] = {}
        self._position = 0
        self._caught_up = False
        self._stream_created = ""
        self._progress = (0, 0.0)  # (position, when it last moved) while behind the stream

    async def open(self) -> None:
        self.kv = await ensure_bucket(
            self.js, SNAPSHOT_BUCKET, description="flagstream environment snapshots", direct=True
        )
        self.lease = WriterLease(self.kv, self.name, self.lease_seconds)

    async def close(self) -> None:
        await self._stop_following()
        if self.lease is not None:
            await self.lease.release()

    async def run(self, stop: asyncio.Event) -> None:
        await run_passes("snapshots", self.pass_once, stop=stop, wake=self.wake, poll=self.interval, log=log)

    async def pass_once(self) -> float:
        """Hold the lease (or let go of the state), follow the stream, write the snapshots that are due."""
        assert self.lease is not None, "open() first"
        poll = min(self.interval, self.lease_seconds / 3)
        if not await self.lease.hold():
            await self._stop_following()
            return poll
        if self._sub is None:
            await self._follow(0)
            return min(poll, 0.05)
        if not self._caught_up:
            await self._check_progress()
            return min(poll, 0.05)
        await self._check_progress()
        now = time.monotonic()
        for (project, environment), env in list(self._envs.items()):
            if (
                env.changed
                and now - env.written_at >= self.interval
                and (env.changed >= self.min_events or now - env.changed_at >= self.max_age)
            ):
                await self._write(project, environment, env)
        return poll

    # -- following the stream ---------------------------------------------------------------------------------

    async def _follow(self, after: int) -> None:
        stream = await self.js.stream_info(STREAM)
        created = stream_id(stream.created)
        if after and (created != self._stream_created or stream.state.last_seq < after):
            log.warning("snapshots: stream %s was recreated; reading it again", STREAM)
            after = 0
        if not after:
            self._envs, self._position, self._caught_up = {}, 0, False
        self._stream_created = created
        self._progress = (self._position, time.monotonic())
        if after:
            policy, config = DeliverPolicy.BY_START_SEQUENCE, ConsumerConfig(opt_start_seq=after + 1)
        else:
            policy, config = DeliverPolicy.LAST_PER_SUBJECT, ConsumerConfig()
        self._sub = await self.js.subscribe(
            all_subjects(), stream=STREAM, cb=self._on_message, ordered_consumer=True, deliver_policy=policy,
            config=config,
        )  # fmt: skip
        if not stream.state.messages or (after and stream.state.last_seq <= after):
            self._caught_up = True  # nothing to read (else the last message read says so: no pending)

    async def _check_progress(self) -> None:
        """An ordered consumer that stopped delivering (a reconnect lost it) is made again from the position."""
        position, since = self._progress
        if self._position != position:
            self._progress = (self._position, time.monotonic())
            return
        if time.monotonic() - since < max(self.interval, 2.0):
            return
        stream = await self.js.stream_info(STREAM)
        if stream.state.last_seq > self._position or stream_id(stream.created) != self._stream_created:
            log.warning("snapshots: following the stream again from sequence %d", self._position + 1)
            await self._unsubscribe()
            await self._follow(self._position)
        else:
            self._progress = (self._position, time.monotonic())

    async def _on_message(self, msg: Msg) -> None:
        meta = msg.metadata
        seq, pending = meta.sequence.stream, meta.num_pending
        if seq <= self._position:
            return
        self._position = seq
        tokens = msg.subject.split(".")
        if len(tokens) >= 4 and tokens[0] == PREFIX:
            env = self._envs.get((tokens[1], tokens[2]))
            if env is None:
                env = self._envs[(tokens[1], tokens[2])] = _Environment()
            try:
                env.subjects[msg.subject] = (seq, decode_event(msg.data))
            except DecodeError as exc:
                self.bad_events += 1
                env.subjects.pop(msg.subject, None)
                log.error("snapshots: skipping undecodable message %s at sequence %d: %s", msg.subject, seq, exc)
            if not env.changed:
                env.changed_at = time.monotonic()
            env.changed += 1
        if pending == 0 and not self._caught_up:
            self._caught_up = True
            log.info("snapshots: read %d environments up to sequence %d", len(self._envs), seq)
            self.wake.set()

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _stop_following(self) -> None:
        if self._sub is not None:
            await self._unsubscribe()
            self._envs, self._position, self._caught_up = {}, 0, False

    # -- writing ----------------------------------------------------------------------------------------------

    async def _write(self, project: str, environment: str, env: _Environment) -> None:
        """Store the environment's snapshot as of the current position (taken without an await in between)."""
        assert self.kv is not None
        events = sorted(env.subjects.values(), key=lambda item: item[0])
        snapshot = Snapshot(
            project=project, environment=environment, seq=self._position, stream_created=self._stream_created,
            events=events,
        )  # fmt: skip
        parts = encode_snapshot(snapshot, secrets.token_hex(8))
        taken, env.written_at = env.changed, time.monotonic()
        for i in [*range(1, len(parts)), 0]:  # part 0 last: it names only parts already stored
            headers, body = parts[i]
            await self.js.publish(snapshot_subject(project, environment, i), body, headers=headers)
        for i in range(len(parts), env.parts):
            with contextlib.suppress(Exception):
                await self.kv.purge(snapshot_key(project, environment, i))
        env.parts = len(parts)
        env.changed -= taken  # what came meanwhile waits for the next (a failed write is tried again)
        if env.changed:
            env.changed_at = env.written_at
        self.written += 1
        log.info("snapshots: %s/%s as of sequence %d (%d events, %d parts)", project, environment, snapshot.seq,
                 len(events), len(parts))  # fmt: skip


@contextlib.asynccontextmanager
async def running(nc: NATS, **options: Any) -> Any:
    """A writer running in the background for the duration of the block (``async with running(nc) as writer``)."""
    writer = SnapshotWriter(nc, **options)
    await writer.open()
    try:
        async with in_background(writer, "snapshots"):
            yield writer
    finally:
        await writer.close()
