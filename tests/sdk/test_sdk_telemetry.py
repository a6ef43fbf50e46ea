"""Telemetry: heartbeats and evaluation counts published over core NATS, received by a raw subscriber."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import nats
from nats.aio.msg import Msg

from flagstream import AsyncFlagstreamClient, FlagstreamClient
from flagstream.events import STREAM, Flag, FlagCreated, FlagToggled, encode_event, subject
from flagstream.events.catalog import FlagEvent
from flagstream.events.telemetry import (
    EvaluationCounts,
    Heartbeat,
    decode_counts,
    decode_heartbeat,
    telemetry_filter,
)
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually


class Listener:
    def __init__(self) -> None:
        self.heartbeats: list[Heartbeat] = []
        self.counts: list[EvaluationCounts] = []

    async def on_message(self, msg: Msg) -> None:
        if msg.subject.endswith(".heartbeat"):
            self.heartbeats.append(decode_heartbeat(msg.data))
        else:
            self.counts.append(decode_counts(msg.data))

    def totals(self, instance_id: str) -> Counter[tuple[str, str | None]]:
        total: Counter[tuple[str, str | None]] = Counter()
        for message in self.counts:
            if message.instance_id == instance_id:
                for c in message.counts:
                    total[(c.flag, c.variation)] += c.count
        return total


async def publish(js, cls: type[FlagEvent], flag: Flag) -> int:  # type: ignore[no-untyped-def]
    event = cls(project="default", environment="production", actor="test", at=datetime.now(UTC), flag=flag)
    return (await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))).seq


async def test_heartbeats_and_counts_match_the_evaluations(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    listener = Listener()
    await nc.subscribe(telemetry_filter("default", "production"), cb=listener.on_message)
    await publish(js, FlagCreated, Flag(key="checkout", on=True))
    await publish(js, FlagCreated, Flag(key="banner", on=False))

    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry_interval=0.05)
    started = datetime.now(UTC)
    try:
        assert await client.start(wait=15)
        for i in range(30):
            client.bool_variation("checkout", {"key": f"user-{i}"}, False)
        for i in range(7):
            client.variation_detail("banner", {"key": f"user-{i}"})
        client.string_variation("checkout", {"key": "u"}, "x")  # wrong type: the default is served
        client.variation("missing", None, 0)
        assert client.variation(["not", "a", "key"], None, "d") == "d"  # type: ignore[arg-type]  # never raises
        toggled = await publish(js, FlagToggled, Flag(key="checkout", on=False))
        await eventually(lambda: client.seq == toggled, what="the toggle applied")
        client.bool_variation("checkout", {"key": "user-1"}, True)

        tel = client._telemetry
        assert tel is not None
        expected = {("checkout", "on"): 30, ("banner", "off"): 7, ("checkout", None): 1, ("missing", None): 1,
                    ("checkout", "off"): 1}  # fmt: skip
        await eventually(lambda: listener.totals(tel.instance_id) == expected, what="counts of every evaluation")
        await eventually(
            lambda: any(toggled in [a.seq for a in h.applied] for h in listener.heartbeats), what="toggle reported"
        )
        await eventually(lambda: listener.heartbeats[-1].seq == toggled, what="heartbeat at the last seq")
    finally:
        await client.close()
    beat = listener.heartbeats[-1]
    assert (beat.instance_id, beat.project, beat.environment) == (tel.instance_id, "default", "production")
    assert beat.sdk_version
    assert started <= beat.started_at <= beat.sent_at
    applied = [a for h in listener.heartbeats for a in h.applied]
    assert [a.seq for a in applied] == sorted({a.seq for a in applied})  # each applied change reported once
    assert applied[-1].seq == toggled
    assert all(c.project == "default" and c.since < c.until for c in listener.counts)
    # Telemetry is core NATS only: nothing of it entered the event stream.
    assert (await js.stream_info(STREAM)).state.last_seq == toggled
    await nc.close()


async def test_sync_client_counts_and_telemetry_false_sends_nothing(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    listener = Listener()
    await nc.subscribe(telemetry_filter(), cb=listener.on_message)
    await publish(js, FlagCreated, Flag(key="checkout", on=True))
    quiet = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    client = FlagstreamClient(nats_url, environment="production", telemetry_interval=0.05)
    try:
        assert await quiet.start(wait=15)
        assert await asyncio.to_thread(client.start, 15)
        for i in range(12):
            client.bool_variation("checkout", {"key": f"user-{i}"}, False)
            quiet.bool_variation("checkout", {"key": f"user-{i}"}, False)
        tel = client._client._telemetry
        assert tel is not None
        await eventually(lambda: listener.totals(tel.instance_id) == {("checkout", "on"): 12}, what="sync counts")
        await eventually(lambda: len(listener.heartbeats) >= 5, what="several heartbeats")
    finally:
        await asyncio.to_thread(client.close)
        await quiet.close()
        await nc.close()
    assert {h.instance_id for h in listener.heartbeats} == {tel.instance_id}
    assert {c.instance_id for c in listener.counts} == {tel.instance_id}


async def test_a_state_loaded_from_the_file_is_not_reported_as_applied(nats_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    listener = Listener()
    await nc.subscribe(telemetry_filter(), cb=listener.on_message)
    first_seq = await publish(js, FlagCreated, Flag(key="checkout", on=True))
    path = tmp_path / "state.json"
    writer = AsyncFlagstreamClient(nats_url, environment="production", cache_path=path, telemetry=False)
    assert await writer.start(wait=15)
    await writer.close()  # writes the file

    client = AsyncFlagstreamClient(nats_url, environment="production", cache_path=path, telemetry_interval=0.05)
    try:
        assert await client.start(wait=15)
        assert client.seq == first_seq
        toggled = await publish(js, FlagToggled, Flag(key="checkout", on=False))
        await eventually(lambda: bool(listener.heartbeats) and listener.heartbeats[-1].seq == toggled, what="beat")
    finally:
        await client.close()
        await nc.close()
    assert [a.seq for h in listener.heartbeats for a in h.applied] == [toggled]


async def test_attribute_names_of_sampled_contexts_are_reported_never_their_values(nats_url: str) -> None:
    """The sync client evaluates on an application thread; the heartbeat names the attributes per context kind,
    with no value anywhere in it, and between samples no observer is left on the evaluation path."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    listener = Listener()
    raw: list[bytes] = []

    async def on_message(msg: Msg) -> None:
        raw.append(msg.data)
        await listener.on_message(msg)

    await nc.subscribe(telemetry_filter(), cb=on_message)
    await publish(js, FlagCreated, Flag(key="checkout", on=True))
    client = FlagstreamClient(nats_url, environment="production", telemetry_interval=0.05)
    contexts = [
        {"key": "secret-user-1", "state": "secret-CA", "address": {"city": "secret-city", "a/b": 1}},
        {
            "kind": "multi",
            "user": {"key": "secret-2", "plan": "secret-plan"},
            "device": {"key": "d", "os": "secret-os"},
        },
        {"kind": "organization", "key": "secret-org", "tier": "secret-tier"},
        {"no": "key"},  # malformed: nothing learnt from it
    ]

    def evaluate() -> None:
        for _ in range(20):  # more than one interval's samples: the rest go by the unobserved path
            for context in contexts:
                client.bool_variation("checkout", context, False)

    try:
        assert await asyncio.to_thread(client.start, 15)
        await asyncio.to_thread(evaluate)
        expected = {
            "device": ["key", "os"],
            "organization": ["key", "tier"],
            "user": ["/address/a~1b", "/address/city", "address", "key", "plan", "state"],
        }
        await eventually(lambda: any(h.attributes == expected for h in listener.heartbeats), what="names reported")
    finally:
        await asyncio.to_thread(client.close)
    # Sampling stops after a few evaluations until the next report: then evaluations take no observer at all.
    rare = FlagstreamClient(nats_url, environment="production", telemetry_interval=3600)
    try:
        assert await asyncio.to_thread(rare.start, 15)
        assert rare._observe is not None, "armed at start"
        check = rare.bool_variation  # an application may keep the bound method: it samples, then runs fast
        for i in range(40):
            assert check("checkout", {"key": f"u{i}", "state": "CA"}, False) is True
        await eventually(lambda: rare._observe is None, what="the sampler removed itself")
        assert rare._flags is rare._cache.fast_flags(), "the fast path is back"
        assert rare.bool_variation == check, "the accessors themselves were never replaced"
        tel = rare._client._telemetry
        assert tel is not None
        assert tel.attribute_names.snapshot() == {"user": ["key", "state"]}
    finally:
        await asyncio.to_thread(rare.close)
        await nc.close()
    assert raw
    assert not any(b"secret" in message for message in raw), "no value of a context is ever sent"
    # Only when something new was seen (or every few reports): most heartbeats carry no names.
    assert sum(1 for h in listener.heartbeats if h.attributes) < len(listener.heartbeats)
