"""The SDK's JetStream consumer: named (so a credential can be limited to its environment's subjects) and
re-created when it disappears from the server while the connection stays up."""

from __future__ import annotations

from datetime import UTC, datetime

import nats

from flagstream import AsyncFlagstreamClient
from flagstream.events import STREAM, Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.events.catalog import FlagEvent
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually

USER = {"key": "user-1"}


async def test_a_consumer_deleted_on_the_server_is_recreated_and_changes_keep_arriving(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)

    async def publish(cls: type[FlagEvent], flag: Flag) -> int:
        event = cls(project="default", environment="production", actor="t", at=datetime.now(UTC), flag=flag)
        return (await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))).seq

    await publish(FlagCreated, Flag(key="checkout", on=False))
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    try:
        assert await client.start(wait=15)
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
