"""Malformed messages on the stream (published with raw NATS, as a buggy or foreign writer would): the projector
and the SDK clients skip each one, count it, log it with its sequence, and keep applying the good events after.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.events import Environment, EnvironmentCreated, Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.services.projector import Projector, ReadModel
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually

ENV = "production"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def flag_subject(key: str) -> str:
    return subject("default", ENV, "flag", key)


def good(key: str, on: bool, cls: type[FlagCreated] | type[FlagToggled] = FlagCreated) -> bytes:
    return encode_event(cls(project="default", environment=ENV, actor="test", at=NOW, flag=Flag(key=key, on=on)))


BAD: list[tuple[str, bytes]] = [
    (flag_subject("alpha"), b"\x00\xff not json {"),  # on a subject that gets a good event afterwards
    (flag_subject("broken-1"), b""),
    (flag_subject("broken-2"), b'{"type": "flag.exploded", "project": "default", "environment": "production"}'),
    (
        flag_subject("broken-3"),
        b'{"type": "flag.created", "project": "default", "environment": "production", "actor": "x",'
        b' "at": "2026-01-01T00:00:00Z", "flag": {"key": "not a key!", "on": "yes"}}',
    ),
    (flag_subject("broken-4"), b"[1, 2, 3]"),
]


async def test_bad_events_are_skipped_counted_logged_and_later_ones_apply(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    env = EnvironmentCreated(project="default", environment=ENV, actor="test", at=NOW, env=Environment(key=ENV))
    await js.publish(subject("default", ENV, "environment", ENV), encode_event(env))
    await js.publish(flag_subject("alpha"), good("alpha", False))

    client = AsyncFlagstreamClient(nats_url, environment=ENV)
    stop = asyncio.Event()
    db = tmp_path / "read-model.sqlite"
    projector = Projector(nats_url=nats_url, db_path=db)
    projector_task = asyncio.create_task(projector.run(stop))
    try:
        assert await client.start(wait=30)
        bad_seqs = [(await js.publish(subj, data)).seq for subj, data in BAD]
        await js.publish(flag_subject("alpha"), good("alpha", True, FlagToggled))
        last = (await js.publish(flag_subject("beta"), good("beta", True))).seq

        # The live client skipped all five and applied what came after.
        await eventually(lambda: client.seq == last, within=30, what="the client applied the good events")
        assert client.bool_variation("alpha", {"key": "u"}, False) is True
        assert client.bool_variation("beta", {"key": "u"}, False) is True
        assert client.bad_events == len(BAD)
        assert set(client.ruleset.flags) == {"alpha", "beta"}

        await projector.wait_caught_up(30)
        stop.set()
        await asyncio.wait_for(projector_task, 30)
        async with await ReadModel.open(db, readonly=True) as model:
            assert await model.bad_event_count() == len(BAD)
            assert sorted(b.seq for b in await model.bad_events()) == bad_seqs
            assert await model.last_seq() == last
            projector_hash = await model.state_hash("default", ENV)
            assert {r.key for r in await model.list("default", ENV, "flag")} == {"alpha", "beta"}

        # A client starting now (cold start: the last message per subject) skips the four still current.
        fresh = AsyncFlagstreamClient(nats_url, environment=ENV)
        try:
            assert await fresh.start(wait=30)
            assert fresh.bad_events == len(BAD) - 1
            assert fresh.state_hash() == client.state_hash() == projector_hash
        finally:
            await fresh.close()
    finally:
        stop.set()
        await asyncio.wait_for(projector_task, 30)
        await client.close()
        await nc.close()

    # Each skip was logged with its sequence, by the SDK and by the projector.
    for seq in bad_seqs:
        by = {r.name for r in caplog.records if str(seq) in r.getMessage() and "skip" in r.getMessage()}
        assert any(n.startswith("flagstream.client") for n in by), (seq, by)
        assert any(n.startswith("flagstream.projector") for n in by), (seq, by)


#: A message whose JSON is well-formed but holds invalid UTF-8 inside a string (see tests/fuzz/test_fuzz_events.py).
INVALID_UTF8 = (
    b'{"type": "flag.created", "project": "default", "environment": "production", "actor": "\x80",'
    b' "at": "2026-01-01T00:00:00Z", "flag": {"key": "poison"}}'
)


async def test_invalid_utf8_in_an_event_is_skipped_like_any_bad_event(nats_url: str, tmp_path: Path) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await js.publish(flag_subject("alpha"), good("alpha", True))
    poison = (await js.publish(flag_subject("poison"), INVALID_UTF8)).seq
    stop = asyncio.Event()
    db = tmp_path / "read-model.sqlite"
    projector = Projector(nats_url=nats_url, db_path=db)
    projector_task = asyncio.create_task(projector.run(stop))
    client = AsyncFlagstreamClient(nats_url, environment=ENV)
    try:
        ready, caught_up = await asyncio.gather(
            client.start(wait=8), projector.wait_caught_up(8), return_exceptions=True
        )
        # Observed: projector at 0 (the whole batch fails, "alpha" is not applied either), client not ready.
        assert (projector.last_seq, ready) == (poison, True), (projector.last_seq, ready, caught_up)
        assert client.bad_events == 1
    finally:
        stop.set()
        await asyncio.wait_for(projector_task, 30)
        await client.close()
        await nc.close()
