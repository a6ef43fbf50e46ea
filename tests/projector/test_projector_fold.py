"""The projector against a real nats-server: folding, bad events, restarts, rebuilds, a NATS restart, the CLI."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.js import JetStreamContext

from flagstream.events import (
    Environment,
    EnvironmentCreated,
    Event,
    Flag,
    FlagArchived,
    FlagCreated,
    FlagRestored,
    FlagToggled,
    FlagUpdated,
    Segment,
    SegmentCreated,
    SegmentUpdated,
    encode_event,
    entity_of,
    state_hash,
    subject,
)
from flagstream.services.projector import Projector, ReadModel
from flagstream.services.runtime.natsd import NatsServer, free_port
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import FLAGSTREAM

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def subject_of(event: Event) -> str:
    kind, key, _ = entity_of(event)
    return subject(event.project, event.environment, kind, key)


async def publish(js: JetStreamContext, events: list[Event]) -> list[int]:
    """Publish each event on its subject; the stream sequences."""
    return [(await js.publish(subject_of(e), encode_event(e))).seq for e in events]


async def wait_for(condition: Callable[[], Any], within: float = 20.0) -> None:
    """Poll an async condition (a database read) until true, failing after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 (the condition lives in another SQLite connection)
            await asyncio.sleep(0.02)


def delete_database(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        yield js
    finally:
        await nc.close()


@asynccontextmanager
async def running(projector: Projector) -> AsyncIterator[Projector]:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def script(project: str = "acme", env: str = "prod") -> list[Event]:
    """A realistic history: an environment, two flags and a segment going through their lives."""
    common: dict[str, Any] = {"project": project, "environment": env, "actor": "alice"}
    checkout = Flag(key="checkout", name="New checkout")
    banner = Flag(key="banner", kind="string")
    beta = Segment(key="beta", included=("u1",))
    return [
        EnvironmentCreated(**common, at=at(0), env=Environment(key=env, production=True)),
        FlagCreated(**common, at=at(1), flag=checkout, comment="first"),
        FlagCreated(**common, at=at(2), flag=banner),
        FlagToggled(**common, at=at(3), flag=msgspec.structs.replace(checkout, on=True), version=2),
        SegmentCreated(**common, at=at(4), segment=beta),
        FlagArchived(**common, at=at(5), flag=msgspec.structs.replace(banner, archived=True), version=2),
        SegmentUpdated(
            **{**common, "actor": "bob"}, at=at(6), segment=msgspec.structs.replace(beta, included=("u1", "u2"))
        ),
        FlagUpdated(**common, at=at(7), flag=msgspec.structs.replace(checkout, on=True, name="Checkout"), version=3),
        FlagRestored(**common, at=at(8), flag=banner, version=3, comment="back"),
    ]


def expected_hash(events: list[Event], project: str, env: str) -> str:
    """The hash a fold of ``events`` must give, computed here independently: last state per subject."""
    last: dict[str, Any] = {}
    for e in events:
        kind, _, state = entity_of(e)
        if e.project == project and e.environment == env and kind in ("flag", "segment"):
            last[subject_of(e)] = state
    return state_hash(last.items())


async def test_folds_current_state_and_indexes_every_event(nats_url: str, tmp_path: Path) -> None:
    events = script()
    other = [FlagCreated(project="acme", environment="dev", actor="carol", at=at(9), flag=Flag(key="checkout"))]
    async with connected(nats_url) as js:
        seqs = await publish(js, events + other)
    projector = Projector(nats_url=nats_url, db_path=tmp_path / "rm.sqlite")
    async with running(projector):
        assert await projector.wait_caught_up(20) == seqs[-1]
    assert projector.last_seq == seqs[-1]

    async with await ReadModel.open(tmp_path / "rm.sqlite") as model:
        assert await model.last_seq() == seqs[-1]
        checkout = await model.get("acme", "prod", "flag", "checkout")
        assert checkout is not None
        assert checkout.decoded() == events[7].flag  # the last event's state
        assert (checkout.seq, checkout.revision, checkout.archived) == (seqs[7], 3, False)
        assert (checkout.updated_at, checkout.updated_by) == (at(7), "alice")
        banner = await model.get("acme", "prod", "flag", "banner")
        assert banner is not None
        assert (banner.decoded(), banner.archived, banner.seq) == (events[8].flag, False, seqs[8])
        segment = await model.get("acme", "prod", "segment", "beta")
        assert segment is not None
        assert segment.decoded().included == ("u1", "u2")
        assert segment.updated_by == "bob"
        environment = await model.get("acme", "prod", "environment", "prod")
        assert environment is not None
        assert environment.decoded() == Environment(key="prod", production=True)
        assert await model.get("acme", "prod", "flag", "nope") is None

        assert [r.key for r in await model.list("acme", "prod", "flag")] == ["banner", "checkout"]
        assert [r.key for r in await model.list("acme", "dev", "flag")] == ["checkout"]

        history = await model.events("acme", "prod")
        assert [e.seq for e in history] == list(reversed(seqs[:-1]))  # newest first, dev excluded
        assert [e.event() for e in history] == list(reversed(events))
        flag_history = await model.events("acme", "prod", "flag", "checkout")
        assert [(e.type, e.revision, e.comment) for e in flag_history] == [
            ("flag.updated", 3, ""),
            ("flag.toggled", 2, ""),
            ("flag.created", 1, "first"),
        ]
        assert [e.key for e in await model.events("acme", "prod", "segment")] == ["beta", "beta"]
        page = await model.events("acme", "prod", limit=3, before_seq=seqs[5])
        assert [e.seq for e in page] == [seqs[4], seqs[3], seqs[2]]
        assert history[0].at == at(8)
        assert history[0].actor == "alice"
        window = await model.events("acme", "prod", since=at(3), until=at(6))
        assert [e.at for e in window] == [at(5), at(4), at(3)]
        then = await model.as_of("acme", "prod", "flag", "checkout", seqs[5])
        assert then is not None
        assert then.event() == events[3]  # toggled on, before the rename
        assert await model.as_of("acme", "prod", "flag", "banner", seqs[1]) is None

        assert await model.state_hash("acme", "prod") == expected_hash(events, "acme", "prod")
        assert await model.state_hash("acme", "dev") == expected_hash(other, "acme", "dev")
        assert await model.bad_event_count() == 0
        assert await model.state_hash("acme", "prod") == sdk_hash(list(zip(seqs, events + other, strict=True)))


def sdk_hash(events: list[tuple[int, Event]], project: str = "acme", env: str = "prod") -> str:
    """The SDK's fold of the same events: its hash must equal the projector's (one shared function)."""
    from flagstream.ruleset import Ruleset, apply_events

    ruleset, _ = apply_events(Ruleset(project=project, environment=env), events)
    return ruleset.state_hash()


async def test_a_change_published_while_running_shows_up(nats_url: str, tmp_path: Path) -> None:
    projector = Projector(nats_url=nats_url, db_path=tmp_path / "rm.sqlite")
    async with running(projector), connected(nats_url) as js:
        await projector.wait_caught_up(20)
        flag = Flag(key="live")
        (seq,) = await publish(js, [FlagCreated(project="p", environment="e", actor="a", at=at(0), flag=flag)])
        async with await ReadModel.open(tmp_path / "rm.sqlite", readonly=True) as reader:

            async def visible() -> bool:
                record = await reader.get("p", "e", "flag", "live")
                return record is not None and record.seq == seq

            await wait_for(visible)


async def test_bad_events_are_skipped_counted_and_do_not_stop_the_fold(nats_url: str, tmp_path: Path) -> None:
    good = script()
    flag_subject = subject("acme", "prod", "flag", "checkout")
    unknown_tag = msgspec.json.encode({"type": "flag.exploded", "project": "acme", "environment": "prod"})
    wrong_type = msgspec.json.decode(encode_event(good[1]))
    wrong_type["flag"]["on"] = "yes please"
    wrong_subject = encode_event(good[2])  # banner's event published on checkout's subject
    async with connected(nats_url) as js:
        await publish(js, good[:3])
        for payload in (b"\x00garbage{", unknown_tag, msgspec.json.encode(wrong_type), wrong_subject):
            await js.publish(flag_subject, payload)
        await js.publish("flagstream.not-enough-tokens", encode_event(good[3]))
        await publish(js, good[3:])
        last = (await js.stream_info("FLAGSTREAM")).state.last_seq

    db = tmp_path / "rm.sqlite"
    projector = Projector(nats_url=nats_url, db_path=db)
    async with running(projector):
        assert await projector.wait_caught_up(20) == last
    async with await ReadModel.open(db) as model:
        assert await model.bad_event_count() == 5
        bad = await model.bad_events()
        assert [b.seq for b in bad] == [8, 7, 6, 5, 4]
        assert "flagstream.not-enough-tokens" in bad[0].subject
        assert "banner" in bad[1].error
        assert all(b.error for b in bad)
        # every good event after the bad ones was applied
        assert await model.state_hash("acme", "prod") == expected_hash(good, "acme", "prod")
        assert len(await model.events("acme", "prod")) == len(good)

    # the count survives a restart, and nothing is counted twice
    async with running(Projector(nats_url=nats_url, db_path=db)) as again:
        await again.wait_caught_up(20)
    async with await ReadModel.open(db) as model:
        assert await model.bad_event_count() == 5


async def test_restart_resumes_without_reapplying_and_a_deleted_db_is_rebuilt(nats_url: str, tmp_path: Path) -> None:
    db = tmp_path / "rm.sqlite"
    events = script()
    async with connected(nats_url) as js:
        await publish(js, events[:5])
        async with running(Projector(nats_url=nats_url, db_path=db)) as projector:
            await projector.wait_caught_up(20)
        await publish(js, events[5:])  # while it is stopped
        async with running(Projector(nats_url=nats_url, db_path=db)) as projector:
            last = await projector.wait_caught_up(20)
    async with await ReadModel.open(db) as model:
        assert await model.event_seqs() == list(range(1, last + 1))  # each sequence once
        first_hash = await model.state_hash_all()
        assert await model.state_hash("acme", "prod") == expected_hash(events, "acme", "prod")

    delete_database(db)
    async with running(Projector(nats_url=nats_url, db_path=db)) as projector:
        assert await projector.wait_caught_up(20) == last
    async with await ReadModel.open(db) as model:
        assert await model.event_seqs() == list(range(1, last + 1))
        assert await model.state_hash_all() == first_hash


async def test_survives_a_nats_server_restart(nats_server: NatsServer, tmp_path: Path) -> None:
    events = script()
    projector = Projector(nats_url=nats_server.url, db_path=tmp_path / "rm.sqlite")
    async with running(projector):
        async with connected(nats_server.url) as js:
            await publish(js, events[:4])
        await projector.wait_caught_up(20)
        nats_server.kill()
        nats_server.restart()
        async with connected(nats_server.url) as js:
            await publish(js, events[4:])
        last = await projector.wait_caught_up(30)
        assert last == len(events)
    async with await ReadModel.open(tmp_path / "rm.sqlite") as model:
        assert await model.event_seqs() == list(range(1, last + 1))
        assert await model.state_hash("acme", "prod") == expected_hash(events, "acme", "prod")


async def test_cli_print_hash_catches_up_and_prints_the_environment_hash(nats_url: str, tmp_path: Path) -> None:
    events = script()
    async with connected(nats_url) as js:
        await publish(js, events)
    cmd = [FLAGSTREAM, "projector", "--nats-url", nats_url, "--db", str(tmp_path / "cli.sqlite"), "--print-hash"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--project", "acme", "--env", "prod", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == expected_hash(events, "acme", "prod")


async def test_a_hash_check_beside_a_running_projector_leaves_it_alone(nats_url: str, tmp_path: Path) -> None:
    """The rebuild story: fold the log into a new file next to the live read model and compare the hashes."""
    db = tmp_path / "live.sqlite"
    async with connected(nats_url) as js:
        await publish(js, script()[:5])
        async with running(Projector(nats_url=nats_url, db_path=db)) as live:
            await live.wait_caught_up(20)
            cmd = [FLAGSTREAM, "projector", "--nats-url", nats_url, "--db", str(tmp_path / "rebuilt.sqlite")]
            proc = await asyncio.create_subprocess_exec(
                *cmd, "--print-hash", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            async with await ReadModel.open(db, readonly=True) as model:
                assert out.decode().strip() == await model.state_hash_all()
            # the live projector keeps its durable and its pace
            last = (await publish(js, script()[5:]))[-1]
            assert await live.wait_caught_up(20) == last
    async with await ReadModel.open(db) as model:
        assert await model.event_seqs() == list(range(1, last + 1))


async def test_waits_for_a_nats_server_that_is_not_up_yet_and_stops_promptly(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "late-nats", port=free_port())
    db = tmp_path / "rm.sqlite"
    try:
        # nothing listens yet: the projector keeps trying, and a stop is honoured at once
        stop = asyncio.Event()
        task = asyncio.create_task(Projector(nats_url=server.url, db_path=db).run(stop))

        async def read_model_created() -> bool:
            try:
                async with await ReadModel.open(db, readonly=True) as model:
                    return await model.last_seq() == 0
            except sqlite3.Error:
                return False

        await wait_for(read_model_created)
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, 5)

        # started again before the server: it catches up once the server is there
        async with running(Projector(nats_url=server.url, db_path=db)) as projector:
            await asyncio.to_thread(server.start)
            async with connected(server.url) as js:
                seqs = await publish(js, script())
            assert await projector.wait_caught_up(30) == seqs[-1]
    finally:
        server.stop()
