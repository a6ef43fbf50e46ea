"""nats-server SIGKILLed (twice) in the middle of a stream of writes through the admin API.

A well-behaved client writes: every write has its own Idempotency-Key and is retried with the SAME key after a
5xx or a connection error, until it gets a 2xx. Afterwards, read back from the stream itself:

- every write that got a 2xx is stored at the version it was answered with, with its content (nothing
  acknowledged is lost);
- no Idempotency-Key is stored twice (no duplicates), and each flag's history is exactly its writes, in order;
- SDK clients and a projector started before the first kill converge on the same state hash as a fresh client.

The ``Writer`` here is reused by the cluster fail-over test.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.errors import NotFoundError

from flagstream import AsyncFlagstreamClient
from flagstream.events import STREAM, decode_event, subject
from flagstream.services.projector import Projector, ReadModel
from flagstream.services.runtime.natsd import NatsServer
from tests.helpers import auth_headers, eventually

ENV = "production"
API = "/api/v1/projects/default"
FLAGS = f"{API}/environments/{ENV}/flags"
log = logging.getLogger("tests.reliability")


@dataclass
class Write:
    """One logical write: a toggle or a patch of one flag, with its own Idempotency-Key."""

    idempotency_key: str
    flag: str
    action: str  # "on", "off" or "patch"
    description: str = ""
    #: The version (stream sequence) of the 2xx answer; None until acknowledged.
    version: int | None = None
    attempts: int = 0
    #: When the first attempt failed (5xx or connection error), if one did.
    failed_at: datetime | None = None

    @property
    def subject(self) -> str:
        return subject("default", ENV, "flag", self.flag)


@dataclass
class Writer:
    """``workers`` concurrent clients, each owning some flags and writing to them in turn, retrying like a
    well-behaved client (same Idempotency-Key) until each write gets a 2xx."""

    http: httpx.AsyncClient
    flags: list[str]
    rounds: int
    workers: int = 5
    writes: list[Write] = field(default_factory=list)
    #: Attempts answered by a 5xx or a connection error (each one was retried).
    failures: int = 0

    @property
    def acknowledged(self) -> int:
        return sum(1 for w in self.writes if w.version is not None)

    def plan(self) -> list[list[Write]]:
        """Per worker, its writes in order: patch, on, patch, off... (each one changes the flag)."""
        per_worker: list[list[Write]] = [[] for _ in range(self.workers)]
        for r in range(self.rounds):
            for i, flag in enumerate(self.flags):
                action = "patch" if r % 2 == 0 else ("on" if r % 4 == 1 else "off")
                write = Write(f"{flag}-{r}", flag, action, f"{flag} round {r}" if action == "patch" else "")
                per_worker[i % self.workers].append(write)
                self.writes.append(write)
        return per_worker

    async def run(self) -> None:
        await asyncio.gather(*(self._work(writes) for writes in self.plan()))

    async def _work(self, writes: list[Write]) -> None:
        for write in writes:
            await self._send(write)

    def _failed(self, write: Write) -> None:
        self.failures += 1
        if write.failed_at is None:
            write.failed_at = datetime.now(UTC)

    async def _send(self, write: Write) -> None:
        headers = {"Idempotency-Key": write.idempotency_key}
        while True:
            write.attempts += 1
            try:
                if write.action == "patch":
                    response = await self.http.patch(
                        f"{FLAGS}/{write.flag}", json={"description": write.description}, headers=headers
                    )
                else:
                    response = await self.http.post(f"{FLAGS}/{write.flag}/{write.action}", headers=headers)
            except httpx.TransportError as exc:
                self._failed(write)
                log.info("retrying %s after %r", write.idempotency_key, exc)
            else:
                if response.status_code < 300:
                    write.version = int(response.json()["version"])
                    return
                assert response.status_code >= 500, (write, response.status_code, response.text)
                self._failed(write)
            await asyncio.sleep(0.05)  # back off a little before retrying


@dataclass
class Stored:
    seq: int
    subject: str
    msg_id: str | None
    event: Any


async def read_stream(nats_url: str | list[str]) -> list[Stored]:
    """Every message of the stream, in order, with its Nats-Msg-Id header (direct gets by sequence)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(STREAM)).state.last_seq
        found: list[Stored] = []
        for seq in range(1, last + 1):
            try:
                msg = await js.get_msg(STREAM, seq=seq, direct=True)
            except NotFoundError:  # a hole would be a lost message: the checks below catch it
                continue
            found.append(Stored(seq, msg.subject or "", (msg.headers or {}).get("Nats-Msg-Id"), decode_event(msg.data)))
        return found
    finally:
        await nc.close()


def check_log(writer: Writer, stored: list[Stored]) -> dict[str, int]:
    """Assert that every acknowledged write is stored as answered and nothing is stored twice; return figures."""
    by_seq = {s.seq: s for s in stored}
    for write in writer.writes:
        assert write.version is not None, f"{write} never acknowledged"
        found = by_seq.get(write.version)
        assert found is not None, f"acknowledged {write} is not in the stream"
        assert found.subject == write.subject
        assert found.msg_id == f"{write.subject}:{write.idempotency_key}", (write, found.msg_id)
        flag = found.event.flag
        if write.action == "patch":
            assert type(found.event).__struct_config__.tag == "flag.updated"
            assert flag.description == write.description
        else:
            assert type(found.event).__struct_config__.tag == "flag.toggled"
            assert flag.on is (write.action == "on")

    ids = Counter(s.msg_id for s in stored if s.msg_id is not None)
    assert [i for i, n in ids.items() if n > 1] == [], "an Idempotency-Key was stored twice"
    # Each flag's history is its creation then exactly its writes, in the order they were made.
    for flag in {w.flag for w in writer.writes}:
        subj = subject("default", ENV, "flag", flag)
        history = [s.seq for s in stored if s.subject == subj]
        expected = [w.version for w in writer.writes if w.flag == flag]
        assert history[1:] == expected, (flag, history, expected)
        revisions = [s.event.version for s in stored if s.subject == subj]
        assert revisions == list(range(1, len(revisions) + 1)), "revisions stay gapless"
    return {
        "attempted": len(writer.writes),
        "attempts": sum(w.attempts for w in writer.writes),
        "acknowledged": writer.acknowledged,
        "found": sum(1 for w in writer.writes if w.version in by_seq),
        "writes_retried": sum(1 for w in writer.writes if w.attempts > 1),
        # Stored by an attempt whose answer was lost (the event was decided before that attempt failed): the
        # retry found it by its key instead of writing it again.
        "stored_before_the_failure": sum(
            1 for w in writer.writes if w.failed_at is not None and by_seq[w.version or 0].event.at < w.failed_at
        ),
        "failed_attempts": writer.failures,
        "stream_messages": len(stored),
    }


async def fresh_hash(urls: str | list[str]) -> tuple[int, str]:
    fresh = AsyncFlagstreamClient(urls, environment=ENV)
    try:
        assert await fresh.start(wait=30)
        return fresh.seq, fresh.state_hash()
    finally:
        await fresh.close()


async def projector_hash(projector: Projector, db: Path, stop: asyncio.Event, task: asyncio.Task[None]) -> str:
    await projector.wait_caught_up(60)
    stop.set()
    await asyncio.wait_for(task, 30)
    async with await ReadModel.open(db, readonly=True) as model:
        return await model.state_hash("default", ENV)


async def test_acknowledged_writes_survive_nats_server_crashes(
    nats_server: NatsServer, admin_url: str, tmp_path: Path
) -> None:
    flags = [f"flag-{i:02d}" for i in range(20)]
    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth_headers()) as http:
        assert (await http.post(f"{API}/environments", json={"key": ENV})).status_code == 201
        for flag in flags:
            response = await http.post(FLAGS, json={"key": flag})
            assert response.status_code == 201, response.text

        clients = [AsyncFlagstreamClient(nats_server.url, environment=ENV, reconnect_wait=0.1) for _ in range(2)]
        for client in clients:
            assert await client.start(wait=30)
        stop = asyncio.Event()
        db = tmp_path / "read-model.sqlite"
        projector = Projector(nats_url=nats_server.url, db_path=db)
        projector_task = asyncio.create_task(projector.run(stop))
        try:
            writer = Writer(http, flags, rounds=12)
            writing = asyncio.create_task(writer.run())
            faults = 0
            total = len(flags) * writer.rounds
            for fraction in (0.25, 0.6):
                await eventually(lambda f=fraction: writer.acknowledged >= total * f, within=60, what="writes")
                before = writer.failures
                nats_server.kill()
                faults += 1
                # Down until the writers notice (5xx or connection errors), then back on the same store.
                await eventually(lambda b=before: writer.failures > b, within=30, what="writers see the outage")
                nats_server.restart()
            await asyncio.wait_for(writing, 120)

            stored = await read_stream(nats_server.url)
            figures = check_log(writer, stored)
            figures["faults"] = faults
            print("\nnats-server kill figures:", figures)

            last = stored[-1].seq
            await eventually(lambda: all(c.seq == last for c in clients), within=30, what="clients caught up")
            seq, expected = await fresh_hash(nats_server.url)
            assert seq == last
            assert [c.state_hash() for c in clients] == [expected, expected]
            assert await projector_hash(projector, db, stop, projector_task) == expected
            # The state is the last write of every flag.
            for flag in flags:
                mine = [w for w in writer.writes if w.flag == flag]
                state = clients[0].ruleset.flags[flag]
                assert state.description == next(w.description for w in reversed(mine) if w.action == "patch")
                assert state.on is (next(w.action for w in reversed(mine) if w.action != "patch") == "on")
        finally:
            stop.set()
            await asyncio.wait_for(projector_task, 30)
            for client in clients:
                await client.close()
