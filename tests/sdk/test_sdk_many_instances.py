"""A fleet of more than 1,000 SDK instances: each follows its environment with its own ordered consumer, and
nats-server refuses the 1,001st consumer of a stream that does not raise its limit."""

from __future__ import annotations

from dataclasses import replace

import nats
from nats.js.api import StreamConfig

from flagstream.services.runtime.stream import MAX_CONSUMERS, ensure_stream, stream_config

FOLLOWERS = 1_050


async def follow(js: nats.js.JetStreamContext, n: int) -> int:
    """How many of ``n`` ordered consumers (what each SDK instance makes) the server accepts."""
    made = 0
    for _ in range(n):
        try:
            await js.subscribe("flagstream.default.production.>", stream="FLAGSTREAM", ordered_consumer=True)
        except nats.js.errors.BadRequestError:
            break
        made += 1
    return made


async def test_more_than_a_thousand_instances_can_follow_one_stream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        assert await follow(js, FOLLOWERS) == FOLLOWERS
    finally:
        await nc.close()


async def test_a_stream_made_without_the_limit_is_raised_at_start(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        old: StreamConfig = replace(stream_config(), max_consumers=None)  # as an older Flagstream made it
        await js.add_stream(old)

        await ensure_stream(js)
        assert (await js.stream_info("FLAGSTREAM")).config.max_consumers == MAX_CONSUMERS
        assert await follow(js, FOLLOWERS) == FOLLOWERS
    finally:
        await nc.close()
