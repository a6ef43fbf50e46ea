"""The SDK's JetStream consumer: named (so a credential can be limited to its environment's subjects) and
re-created when it disappears from the server while the connection stays up (a stream without the live
republishing: the consumer follows); with the live republishing, it only loads, then the client follows with a
plain subscription and the consumer is gone."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import nats

from flagstream import AsyncFlagstreamClient
from flagstream.events import STREAM, Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.events.catalog import FlagEvent
from flagstream.services.runtime.stream import ensure_stream, stream_config
from tests.helpers import eventually, until

USER = {"key": "user-1"}


async def test_a_consumer_deleted_on_the_server_is_recreated_and_changes_keep_arriving(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(replace(stream_config(), republish=None))  # as an older Flagstream made it

    async def publish(cls: type[FlagEvent], flag: Flag) -> int:
        event = cls(project="default", environment="production", actor="t", at=datetime.now(UTC), flag=flag)
        return (await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))).seq

    await publish(FlagCreated, Flag(key="checkout", on=False))
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    try:
        assert await client.start(wait=15)
        assert not client._source.following_live  # type: ignore[union-attr]
        consumers = await js.consumers_info(STREAM)
        assert len(consumers) == 1
        name = consumers[0].name
        assert name.startswith("flagstream-sdk-")
        assert consumers[0].config.filter_subject == "flagstream.default.production.>"

        await js.delete_consumer(STREAM, name)  # e.g. removed by an operator or lost by a server
        seq = await publish(FlagToggled, Flag(key="checkout", on=True))
        await eventually(lambda: client.seq == seq, within=60, what="the change after the consumer was re-created")
        assert client.bool_variation("checkout", USER, False) is True
        assert [c.name for c in await js.consumers_info(STREAM)] != []
    finally:
        await client.close()
        await nc.close()


async def test_with_the_live_subjects_the_client_loads_with_a_consumer_then_follows_without_one(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)

    async def publish(cls: type[FlagEvent], flag: Flag, environment: str = "production") -> int:
        event = cls(project="default", environment=environment, actor="t", at=datetime.now(UTC), flag=flag)
        return (await js.publish(subject("default", environment, "flag", flag.key), encode_event(event))).seq

    await publish(FlagCreated, Flag(key="checkout", on=False))
    clients = [AsyncFlagstreamClient(nats_url, environment="production", telemetry=False) for _ in range(3)]
    try:
        # Changes keep coming while the clients load: each lands once, in order, whichever path brings it.
        writes = asyncio.gather(*[publish(FlagToggled, Flag(key="checkout", on=i % 2 == 0)) for i in range(40)])
        assert all(await asyncio.gather(*(c.start(wait=15) for c in clients)))
        last = max(await writes)
        await publish(FlagCreated, Flag(key="elsewhere", on=True), environment="staging")
        for client in clients:
            await eventually(lambda c=client: c.seq == last, what="every change before and during the load")
        await eventually(lambda: all(c._source.following_live for c in clients), what="following live")  # type: ignore[union-attr]

        async def no_consumer_left() -> bool:
            return await js.consumers_info(STREAM) == []

        await until(no_consumer_left, "the loading consumers deleted from the server")

        seq = await publish(FlagToggled, Flag(key="checkout", on=True))
        for client in clients:
            await eventually(lambda c=client: c.seq == seq, what="a change after the hand-over")
            assert client.bool_variation("checkout", USER, False) is True
            assert "elsewhere" not in client.ruleset.flags  # another environment
            assert client.bad_events == 0
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await nc.close()


def test_the_header_parser_of_live_messages_reads_as_nats_py_does() -> None:
    """The SDK swaps nats-py's header parser for a faster one on its connections: same result on any input."""
    import random

    from nats.aio.client import Client

    from flagstream.nats_source import _header_lines

    rnd = random.Random(7)
    samples = [
        b"Nats-Stream: FLAGSTREAM\r\nNats-Subject: flagstream.a.b.flag.k\r\nNats-Sequence: 5\r\n\r\n",
        b"a b: x\r\n\x1cabc: y\r\n: z\r\nno-colon\r\n\xff: q\r\nk:\tv \r\n\x1c: w\r\nv: \xc3\x28\r\n",
        b"",
    ]
    samples += [bytes(rnd.choice(b"ab :\r\n\t\x1c\xff-") for _ in range(rnd.randint(0, 24))) for _ in range(5000)]
    for raw in samples:
        assert _header_lines(raw) == Client._parse_header_lines(raw), raw
