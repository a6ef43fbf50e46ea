"""The SDK client through a crash of the real nats-server: stale while down, caught up (no gap, no repeat) after."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime

import nats
from nats.js import JetStreamContext

from flagstream import AsyncFlagstreamClient, ClientStatus, ErrorKind, FlagstreamClient
from flagstream.events import Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.services.runtime.natsd import NatsServer
from flagstream.services.runtime.stream import ensure_stream

USER = {"key": "user-1"}
KEYS = [f"flag-{i}" for i in range(5)]


async def eventually(predicate: Callable[[], bool], within: float = 30.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def write(js: JetStreamContext, round_: int, key: str) -> int:
    cls = FlagCreated if round_ == 0 else FlagToggled
    flag = Flag(key=key, on=round_ % 2 == 1, description=f"round {round_}")
    event = cls(project="default", environment="production", actor="test", at=datetime.now(UTC), flag=flag)
    ack = await js.publish(subject("default", "production", "flag", key), encode_event(event))
    return ack.seq


async def test_client_catches_up_after_the_server_is_killed_and_restarted(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url, allow_reconnect=False)
    js = nc.jetstream()
    await ensure_stream(js)
    for key in KEYS:
        await write(js, 0, key)

    client = AsyncFlagstreamClient(nats_server.url, environment="production", reconnect_wait=0.1)
    statuses: list[ClientStatus] = []
    try:
        assert await client.start(wait=15)
        # Writes are flowing when the server dies: the client has applied some of them, maybe not all.
        for round_ in range(1, 5):
            for key in KEYS:
                await write(js, round_, key)
        nats_server.kill()
        with contextlib.suppress(Exception):
            await nc.close()

        await eventually(lambda: client.status is ClientStatus.STALE)
        statuses.append(client.status)
        # Still answering while disconnected, from the last known ruleset.
        assert client.variation_detail("flag-0", USER, None).reason.error_kind is not ErrorKind.FLAG_NOT_FOUND

        nats_server.restart()
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        last = 0
        for round_ in range(5, 9):
            for key in KEYS:
                last = await write(js, round_, key)
        last = await write(js, 0, "flag-new")

        await eventually(lambda: client.seq == last)
        await eventually(lambda: client.status is ClientStatus.READY)
        statuses.append(client.status)

        fresh = AsyncFlagstreamClient(nats_server.url, environment="production")
        try:
            assert await fresh.start(wait=15)
            assert fresh.seq == last
            assert client.state_hash() == fresh.state_hash()
        finally:
            await fresh.close()
        assert client.ruleset.flags["flag-0"].description == "round 8"
        assert client.bool_variation("flag-new", USER, True) is False
        assert statuses == [ClientStatus.STALE, ClientStatus.READY]
        assert client.bad_events == 0
    finally:
        await client.close()
        await nc.close()


async def test_start_does_not_fail_while_nats_is_down(nats_server: NatsServer) -> None:
    nats_server.kill()
    client = FlagstreamClient(nats_server.url, environment="production", reconnect_wait=0.1)
    try:
        assert await asyncio.to_thread(client.start) is False
        assert client.status is ClientStatus.INITIALIZING
        detail = client.bool_variation_detail("checkout", USER, True)
        assert (detail.value, detail.reason.error_kind) == (True, ErrorKind.CLIENT_NOT_READY)

        nats_server.restart()
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            seq = await write(js, 1, "checkout")
        finally:
            await nc.close()
        assert await asyncio.to_thread(client.wait_until_ready, 30)
        await eventually(lambda: client.seq == seq)
        assert client.bool_variation("checkout", USER, False) is True
        assert client.status is ClientStatus.READY
    finally:
        await asyncio.to_thread(client.close)


async def test_client_reports_error_until_the_stream_exists(nats_server: NatsServer) -> None:
    client = AsyncFlagstreamClient(nats_server.url, environment="production", reconnect_wait=0.1)
    try:
        assert await client.start() is False
        await eventually(lambda: client.status is ClientStatus.ERROR)
        assert client.last_error is not None
        assert client.is_ready is False

        nc = await nats.connect(nats_server.url)
        try:
            await ensure_stream(nc.jetstream())
        finally:
            await nc.close()
        assert await client.wait_until_ready(30)
        assert client.status is ClientStatus.READY
        assert client.last_error is None
    finally:
        await client.close()


async def test_client_reloads_when_the_stream_was_recreated(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js)
    for round_ in range(3):
        await write(js, round_, "old-flag")
    await nc.close()

    client = AsyncFlagstreamClient(nats_server.url, environment="production", reconnect_wait=0.1)
    removed: list[tuple[str, Flag | None, Flag | None]] = []
    client.on_change("old-flag", lambda key, old, new: removed.append((key, old, new)))
    try:
        assert await client.start(wait=15)
        assert client.seq == 3
        # The operator wipes the data and starts over: sequences restart at 1.
        nats_server.kill()
        shutil.rmtree(nats_server.store_dir / "jetstream")
        nats_server.restart()
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            seq = await write(js, 1, "new-flag")
        finally:
            await nc.close()

        await eventually(lambda: "new-flag" in client.ruleset.flags)
        assert client.seq == seq == 1
        assert "old-flag" not in client.ruleset.flags
        assert client.bool_variation("new-flag", USER, False) is True
        assert client.variation_detail("old-flag", USER, None).reason.error_kind is ErrorKind.FLAG_NOT_FOUND
        assert removed[-1][2] is None
    finally:
        await client.close()
