"""A cold start reads only the last event of each flag and segment, yet must end where reading the whole log does:
clients started behind a history (flags rewritten, archived and deleted, segments changed, the environment
updated, other environments written in between) while changes keep coming, hold exactly the state a replay of
every event from the first gives, and evaluate every flag the same way."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import nats
from nats.js.api import DeliverPolicy

from flagstream import AsyncFlagstreamClient
from flagstream.engine import evaluate
from flagstream.events import (
    STREAM,
    Clause,
    Environment,
    Event,
    Flag,
    FlagArchived,
    FlagCreated,
    FlagDeleted,
    FlagToggled,
    FlagUpdated,
    Operator,
    Rule,
    Segment,
    SegmentCreated,
    SegmentUpdated,
    Serve,
    decode_event,
    encode_event,
    entity_of,
    subject,
)
from flagstream.events.catalog import EnvironmentUpdated
from flagstream.ruleset import Ruleset, apply_events
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually

PROJECT, ENV = "default", "production"
CONTEXTS = [{"key": f"user-{i}", "country": c} for i, c in enumerate(["NO", "SE", "US", "NO", "DE", "US"])]


def flag(key: str, revision: int, *, on: bool = True, archived: bool = False, deleted: bool = False) -> Flag:
    """Each revision a different flag: a segment rule, a country rule, a fallthrough that moves."""
    return Flag(
        key=key,
        description=f"revision {revision}",
        on=on,
        archived=archived or deleted,
        deleted=deleted,
        rules=(
            Rule(id="beta", clauses=(Clause(op=Operator.IN_SEGMENT, values=("beta",)),), serve=Serve(variation="on")),
            Rule(
                id="country",
                clauses=(Clause(attribute="country", op=Operator.IN, values=(("NO", "SE", "US")[revision % 3],)),),
                serve=Serve(variation="on" if revision % 2 else "off"),
            ),
        ),
        fallthrough=Serve(variation="off" if revision % 4 else "on"),
    )


class Writer:
    def __init__(self, js: nats.js.JetStreamContext) -> None:
        self.js = js
        self.last = 0

    async def publish(self, event: Event, environment: str = ENV) -> None:
        kind, key, _ = entity_of(event)
        self.last = (await self.js.publish(subject(PROJECT, environment, kind, key), encode_event(event))).seq

    async def flag(self, cls: type[Event], f: Flag, environment: str = ENV) -> None:
        event = cls(project=PROJECT, environment=environment, actor="t", at=datetime.now(UTC), flag=f)  # type: ignore[call-arg]
        await self.publish(event, environment)

    async def segment(self, cls: type[Event], included: tuple[str, ...]) -> None:
        segment = Segment(key="beta", included=included)
        await self.publish(cls(project=PROJECT, environment=ENV, actor="t", at=datetime.now(UTC), segment=segment))  # type: ignore[call-arg]

    async def history(self, rng: random.Random, keys: list[str], rounds: int, segment: bool = True) -> None:
        """Rewrite random flags, toggle some, touch the segment (if ``segment``) and the other environment."""
        for revision in range(rounds):
            for key in rng.sample(keys, k=len(keys) // 2):
                await self.flag(FlagUpdated, flag(key, revision, on=rng.random() < 0.7))
            await self.flag(FlagToggled, flag(rng.choice(keys), revision, on=False))
            await self.flag(FlagUpdated, flag(rng.choice(keys), revision), environment="staging")
            if segment and revision % 3 == 0:
                await self.segment(SegmentUpdated, tuple(f"user-{i}" for i in range(revision % 6)))


async def replay(js: nats.js.JetStreamContext, last: int) -> Ruleset:
    """Every event of the environment from the first, folded in order."""
    events: list[tuple[int, Event]] = []
    sub = await js.subscribe(
        f"flagstream.{PROJECT}.{ENV}.>", stream=STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while not events or events[-1][0] < last:
            msg = await sub.next_msg(timeout=10)
            events.append((msg.metadata.sequence.stream, decode_event(msg.data)))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    ruleset, _ = apply_events(Ruleset(project=PROJECT, environment=ENV), events)
    return ruleset


async def test_clients_started_behind_a_history_hold_what_a_replay_of_the_whole_log_gives(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    writer = Writer(js)
    rng = random.Random(25)
    keys = [f"flag-{i:02d}" for i in range(30)]
    await writer.segment(SegmentCreated, ("user-0",))
    for key in keys:
        await writer.flag(FlagCreated, flag(key, 0))
    await writer.history(rng, keys, rounds=12)
    # Gone or archived before the clients start: a tombstone is a flag's last event, an archive too.
    await writer.flag(FlagArchived, flag("flag-00", 99, archived=True))
    await writer.flag(FlagDeleted, flag("flag-00", 99, deleted=True))
    await writer.flag(FlagArchived, flag("flag-01", 99, archived=True))
    env = Environment(key=ENV, name="Production", production=True)
    await writer.publish(EnvironmentUpdated(project=PROJECT, environment=ENV, actor="t", at=datetime.now(UTC), env=env))

    clients = [AsyncFlagstreamClient(nats_url, environment=ENV, telemetry=False) for _ in range(3)]
    try:
        # Changes to some flags keep coming before, while and after the clients load (a deletion and a new flag
        # among them); the others, the segment and the environment are as the load finds them.
        loaded = asyncio.Event()

        async def meanwhile() -> None:
            while not loaded.is_set():
                await writer.history(rng, keys[2:12], rounds=1, segment=False)
            await writer.history(rng, keys[2:12], rounds=2, segment=False)
            await writer.flag(FlagArchived, flag("flag-02", 100, archived=True))
            await writer.flag(FlagDeleted, flag("flag-02", 100, deleted=True))
            await writer.flag(FlagCreated, flag("late", 0))

        writes = asyncio.create_task(meanwhile())
        await writer.history(rng, keys[2:12], rounds=1, segment=False)  # the writes are under way
        assert all(await asyncio.gather(*(c.start(wait=30) for c in clients)))
        loaded.set()
        await writes
        expected = await replay(js, writer.last)
        assert {"flag-00", "flag-02"}.isdisjoint(expected.flags)
        assert "late" in expected.flags
        assert expected.flags["flag-01"].archived
        assert expected.env == env

        for client in clients:
            await eventually(lambda c=client: c.seq == expected.seq, what="every change before and during the load")
            got = client.ruleset
            assert dict(got.flags) == dict(expected.flags)
            assert dict(got.segments) == dict(expected.segments)
            assert got.env == expected.env
            assert dict(got.versions) == dict(expected.versions)
            assert got.state_hash() == expected.state_hash()
            for key in [*keys, "late"]:
                for context in CONTEXTS:
                    got_detail = client.variation_detail(key, context, "default")
                    want = evaluate(expected.compiled, key, context, "default")
                    assert (got_detail.value, got_detail.reason) == (want.value, want.reason), (key, context)
    finally:
        for client in clients:
            await client.close()
        await nc.close()
