"""The last-known-state file: a client started while NATS is down serves what it last saw, then catches up."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.js import JetStreamContext

from flagstream import AsyncFlagstreamClient, ClientStatus, ErrorKind, FlagstreamClient
from flagstream.events import Flag, FlagCreated, FlagToggled, FlagUpdated, encode_event, subject
from flagstream.events.catalog import FlagEvent
from flagstream.services.runtime.natsd import NatsServer
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually

USER = {"key": "user-1"}


async def publish(js: JetStreamContext, cls: type[FlagEvent], flag: Flag, environment: str = "production") -> int:
    event = cls(project="default", environment=environment, actor="test", at=datetime.now(UTC), flag=flag)
    ack = await js.publish(subject("default", environment, "flag", flag.key), encode_event(event))
    return ack.seq


def saved_seq(path: Path) -> int:
    try:
        return int(json.loads(path.read_bytes())["seq"])
    except (OSError, ValueError, KeyError):
        return -1


async def test_client_starts_from_the_file_while_nats_is_down_then_catches_up(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    cache_path = tmp_path / "flags.json"
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js)
    await publish(js, FlagCreated, Flag(key="checkout", on=True))
    await publish(js, FlagCreated, Flag(key="unchanged", on=True))
    last = await publish(js, FlagCreated, Flag(key="banner", on=False))

    first = FlagstreamClient(
        nats_server.url, environment="production", cache_path=cache_path, cache_write_interval=0.05
    )
    try:
        assert await asyncio.to_thread(first.start, 15)
        await eventually(lambda: saved_seq(cache_path) == last, what="the state saved to the file")
    finally:
        await asyncio.to_thread(first.close)
    await nc.close()

    nats_server.kill()
    client = AsyncFlagstreamClient(nats_server.url, environment="production", cache_path=cache_path, reconnect_wait=0.1)
    changed: list[str] = []
    client.on_change(None, lambda key, old, new: changed.append(key))
    try:
        assert await client.start() is False  # not live...
        assert client.status is ClientStatus.STALE  # ...but serving the file
        assert client.bool_variation("checkout", USER, False) is True
        assert client.bool_variation("banner", USER, True) is False
        assert client.variation_detail("nope", USER, 1).reason.error_kind is ErrorKind.FLAG_NOT_FOUND
        assert client.seq == last
        changed.clear()

        nats_server.restart()
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await publish(js, FlagToggled, Flag(key="checkout", on=False))
        await publish(js, FlagUpdated, Flag(key="banner", on=False, description="new text"))
        last = await publish(js, FlagCreated, Flag(key="new-one", on=True))

        assert await client.wait_until_ready(30)
        await eventually(lambda: client.seq == last, what="caught up with the changes made while it was down")
        assert client.status is ClientStatus.READY
        assert client.bool_variation("checkout", USER, True) is False
        assert client.bool_variation("new-one", USER, False) is True
        fresh = AsyncFlagstreamClient(nats_server.url, environment="production")
        try:
            assert await fresh.start(wait=15)
            assert client.state_hash() == fresh.state_hash()
        finally:
            await fresh.close()
        # Listeners hear only what really changed between the file and the live state.
        assert sorted(set(changed)) == ["banner", "checkout", "new-one"]
        await eventually(lambda: saved_seq(cache_path) == last, what="the new state saved to the file")
    finally:
        await client.close()
        await nc.close()


async def test_corrupt_or_foreign_file_is_ignored_and_counted(nats_url: str, tmp_path: Path) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    seq = await publish(js, FlagCreated, Flag(key="checkout", on=True))
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(b'{"format": 1, "project": "default", "environment": "produc')
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"project": "default", "environment": "staging", "seq": 9, "flags": []}))
    try:
        for path in (corrupt, foreign):
            client = AsyncFlagstreamClient(nats_url, environment="production", cache_path=path)
            try:
                assert client.status is ClientStatus.INITIALIZING
                assert await client.start(wait=15)
                assert client.cache_file_errors == 1
                assert client.bool_variation("checkout", USER, False) is True
                # The unusable file is replaced by a good one.
                await eventually(lambda p=path: saved_seq(p) == seq, what=f"{path.name} rewritten")
            finally:
                await client.close()
    finally:
        await nc.close()


async def test_no_nats_and_no_file_serves_defaults(nats_server: NatsServer, tmp_path: Path) -> None:
    nats_server.kill()
    client = AsyncFlagstreamClient(nats_server.url, environment="production", cache_path=tmp_path / "missing.json")
    try:
        assert await client.start() is False
        assert client.status is ClientStatus.INITIALIZING
        assert client.cache_file_errors == 0
        detail = client.bool_variation_detail("checkout", USER, True)
        assert (detail.value, detail.reason.error_kind) == (True, ErrorKind.CLIENT_NOT_READY)
    finally:
        await client.close()
