"""THE KILL TEST: the projector as a real process, SIGKILLed twice during a burst of 1,000 writes.

After the last restart has caught up, its read model must equal a fresh fold of the whole stream: the same
state hash, and exactly one events row per stream sequence (no gap, no duplicate).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext

from flagstream.events import Event, Flag, FlagCreated, FlagUpdated, encode_event, state_hash, subject
from flagstream.services.projector import Projector, ReadModel
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import FLAGSTREAM, db_position

FLAGS = 50
UPDATES = 20  # per flag, the creation included: 1,000 events
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def burst() -> list[Event]:
    """50 flags x 20 writes, interleaved so that every fetched batch touches many flags."""
    events: list[Event] = []
    for revision in range(1, UPDATES + 1):
        for i in range(FLAGS):
            flag = Flag(key=f"flag-{i:02d}", name=f"flag {i} rev {revision}", on=revision % 2 == 0)
            cls = FlagCreated if revision == 1 else FlagUpdated
            at = T0 + timedelta(seconds=revision * FLAGS + i)
            events.append(cls(project="kill", environment="test", actor="burst", at=at, flag=flag, version=revision))
    return events


class Writer:
    """Publishes events in the background, counting how many the stream has stored so far."""

    def __init__(self, js: JetStreamContext, events: list[Event]) -> None:
        self.published = 0
        self.half = len(events) // 2
        self.task = asyncio.create_task(self._publish(js, events))

    async def _publish(self, js: JetStreamContext, events: list[Event]) -> None:
        for event in events:
            await js.publish(subject("kill", "test", "flag", event.flag.key), encode_event(event))  # type: ignore[attr-defined]
            self.published += 1


async def position_reaches(
    db: Path, proc: subprocess.Popen[bytes], minimum: int, writer: Writer | None = None, within: float = 30
) -> int:
    """Wait until the child's position is at least ``minimum`` and, with ``writer``, the writer is at least
    halfway through its burst (so that a kill lands while both are busy, not just after a commit); returns the
    position. Fails if the child dies."""
    async with asyncio.timeout(within):
        while True:
            assert proc.poll() is None, f"projector exited with {proc.returncode}"
            position = await asyncio.to_thread(db_position, db)
            writer_busy_enough = writer is None or writer.task.done() or writer.published >= writer.half
            if position >= minimum and writer_busy_enough:
                return position
            await asyncio.sleep(0.002)


def start_projector(nats_url: str, db: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            # small batches: many commits during the burst, so the kills land between and inside them
            [FLAGSTREAM, "projector", "--nats-url", nats_url, "--db", str(db), "--batch-size", "32"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


@asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        yield js
    finally:
        await nc.close()


async def fresh_fold(nats_url: str, db: Path) -> None:
    """A second projector (own durable, new database) folding the whole stream from sequence 1."""
    stop = asyncio.Event()
    projector = Projector(nats_url=nats_url, db_path=db, durable="verify")
    task = asyncio.create_task(projector.run(stop))
    try:
        await projector.wait_caught_up(30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_sigkill_twice_during_a_burst_of_1000_writes(nats_url: str, tmp_path: Path) -> None:
    events = burst()
    db, log = tmp_path / "killed.sqlite", tmp_path / "projector.log"
    children: list[subprocess.Popen[bytes]] = []
    try:
        async with jetstream(nats_url) as js:
            # 1. first 400 writes while the projector runs; SIGKILL once it has applied a hundred or so
            children.append(start_projector(nats_url, db, log))
            writer = Writer(js, events[:400])
            seen = [await position_reaches(db, children[-1], 100, writer)]
            sigkill(children[-1])
            killed_at = [db_position(db)]
            await writer.task

            # 2. 300 more, a restart, and a second SIGKILL once it has made progress
            writer = Writer(js, events[400:700])
            children.append(start_projector(nats_url, db, log))
            seen.append(await position_reaches(db, children[-1], killed_at[0] + 150, writer))
            sigkill(children[-1])
            killed_at.append(db_position(db))
            await writer.task

            # 3. the last 300 with a third run, which must catch up with the whole stream
            writer = Writer(js, events[700:])
            children.append(start_projector(nats_url, db, log))
            await writer.task
            last = (await js.stream_info("FLAGSTREAM")).state.last_seq
            assert last == len(events) == 1000
            await position_reaches(db, children[-1], last)
        assert all(0 < k < last for k in killed_at), killed_at

        # graceful stop: SIGTERM finishes the batch and exits 0
        children[-1].send_signal(signal.SIGTERM)
        assert children[-1].wait(15) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    await fresh_fold(nats_url, tmp_path / "fresh.sqlite")
    async with (
        await ReadModel.open(db, readonly=True) as killed,
        await ReadModel.open(tmp_path / "fresh.sqlite", readonly=True) as fresh,
    ):
        assert await killed.last_seq() == last
        assert await killed.event_seqs() == list(range(1, last + 1)), "a gap or a duplicate in the events table"
        assert await killed.bad_event_count() == 0
        assert await killed.state_hash_all() == await fresh.state_hash_all()
        assert await killed.state_hash("kill", "test") == await fresh.state_hash("kill", "test") == expected(events)
        flags = await killed.list("kill", "test", "flag")
        assert len(flags) == FLAGS
        assert {f.revision for f in flags} == {UPDATES}
        history = await killed.events("kill", "test", "flag", "flag-07", limit=100)
        assert [e.revision for e in history] == list(range(UPDATES, 0, -1))


def expected(events: list[Event]) -> str:
    """The hash of the last state per flag, computed straight from what was published."""
    last: dict[str, Any] = {}
    for event in events:
        last[subject("kill", "test", "flag", event.flag.key)] = event.flag  # type: ignore[attr-defined]
    return state_hash(last.items())
