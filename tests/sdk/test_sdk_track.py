"""``client.track()``: batches over real NATS, attributed to what the flags in a rollout served, never in the way.

A raw subscriber on the metrics subject reads what the SDK publishes, as the admin side would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import nats
from nats.aio.msg import Msg

from flagstream import AsyncFlagstreamClient, FlagstreamClient
from flagstream.events import (
    Flag,
    FlagCreated,
    FlagUpdated,
    Rollout,
    Serve,
    WeightedVariation,
    encode_event,
    subject,
)
from flagstream.events.tracking import MetricsBatch, decode_metrics, metrics_filter
from flagstream.services.runtime import METRICS_STREAM
from flagstream.services.runtime.natsd import NatsServer
from flagstream.services.runtime.stream import ensure_metrics_stream, ensure_stream
from tests.helpers import eventually


def rollout_flag(key: str, on_weight: int) -> Flag:
    """A flag whose default rule serves ``on`` to ``on_weight`` of 100,000 and ``off`` to the rest."""
    split = (
        WeightedVariation(variation="on", weight=on_weight),
        WeightedVariation(variation="off", weight=100_000 - on_weight),
    )
    return Flag(key=key, on=True, fallthrough=Serve(rollout=Rollout(variations=split)))


async def write(js, flag: Flag, cls=FlagCreated) -> int:  # type: ignore[no-untyped-def]
    event = cls(project="default", environment="production", actor="test", at=datetime.now(UTC), flag=flag)
    return (await js.publish(subject("default", "production", "flag", flag.key), encode_event(event))).seq


class Batches:
    def __init__(self) -> None:
        self.items: list[MetricsBatch] = []
        self.ids: set[str] = set()

    async def on_message(self, msg: Msg) -> None:
        # A message sent again after an acknowledgement that timed out carries the same Nats-Msg-Id: the stream
        # keeps it once (its duplicate window), so it is counted once here too.
        msg_id = (msg.headers or {}).get("Nats-Msg-Id")
        if msg_id is not None:
            if msg_id in self.ids:
                return
            self.ids.add(msg_id)
        self.items.append(decode_metrics(msg.data))

    def tracked(self) -> Counter[tuple[str, str, tuple[tuple[str, str], ...]]]:
        out: Counter[tuple[str, str, tuple[tuple[str, str], ...]]] = Counter()
        for batch in self.items:
            for row in batch.tracked:
                out[(row.metric, row.context, row.served)] += row.count
        return out

    def total(self, field: str) -> int:
        return sum(getattr(b, field) for b in self.items)

    def unexposed(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for batch in self.items:
            for row in batch.unexposed:
                out[row.metric] += row.count
        return out

    def exposed(self) -> dict[tuple[str, str], str]:
        return {(row.flag, row.context): row.variation for b in self.items for row in b.exposed}


async def listening(nats_url: str) -> tuple[nats.NATS, Batches]:
    nc = await nats.connect(nats_url)
    await ensure_stream(nc.jetstream())
    await ensure_metrics_stream(nc.jetstream())  # what acknowledges each batch (the admin side makes it)
    batches = Batches()
    await nc.subscribe(metrics_filter("default", "production"), cb=batches.on_message)
    return nc, batches


async def test_tracked_calls_are_attributed_to_what_the_rollout_served(nats_url: str) -> None:
    nc, batches = await listening(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await write(js, rollout_flag("checkout", 50_000))
    await write(js, Flag(key="plain", on=True))  # no rollout: never attributed to
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.05)
    try:
        assert await client.start(wait=15)
        client.track("errors", {"key": "before"})  # the first call starts the noting of exposures
        served: dict[str, str] = {}
        for i in range(40):
            user = {"key": f"user-{i}"}
            served[user["key"]] = client.variation_detail("checkout", user).variation  # type: ignore[assignment]
            client.bool_variation("plain", user, False)
        assert set(served.values()) == {"on", "off"}  # both sides of the split are in the sample
        for i in range(40):
            client.track("errors", {"key": f"user-{i}"})
            client.track("latency", {"key": f"user-{i}"}, 10.0 + i)
        client.track("errors", {"key": "user-0"})
        client.track("errors", {"key": "never-evaluated"})
        client.track("errors", {"kind": "device", "key": "d1"})
        await eventually(lambda: batches.unexposed()["errors"] == 3, what="the unexposed calls reported")
        await eventually(lambda: sum(batches.tracked().values()) == 81, what="every attributed call reported")
    finally:
        await client.close()
        await nc.close()
    tracked = batches.tracked()
    for i in range(40):
        pairs = (("checkout", served[f"user-{i}"]),)
        assert tracked[("errors", f"user-{i}", pairs)] == (2 if i == 0 else 1)
        assert tracked[("latency", f"user-{i}", pairs)] == 1
    latency = {row.context: row for b in batches.items for row in b.tracked if row.metric == "latency"}
    assert (latency["user-7"].total, latency["user-7"].valued) == (17.0, 1)
    assert batches.exposed() == {("checkout", user): variation for user, variation in served.items()}
    assert client.tracker is not None
    assert (client.tracker.unexposed, client.tracker.tracked) == (3, 81)


async def test_a_context_moved_by_a_bigger_rollout_is_attributed_to_its_new_variation(nats_url: str) -> None:
    nc, batches = await listening(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await write(js, rollout_flag("checkout", 0))
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.05)
    user = {"key": "user-1"}
    try:
        assert await client.start(wait=15)
        client.track("errors", {"key": "nobody"})
        assert client.variation("checkout", user) is False
        client.track("errors", user)
        seq = await write(js, rollout_flag("checkout", 100_000), FlagUpdated)
        assert await client.wait_for_sequence(seq, timeout=15)
        assert client.variation("checkout", user) is True
        client.track("errors", user)
        await eventually(lambda: sum(batches.tracked().values()) == 2, what="both calls reported")
    finally:
        await client.close()
        await nc.close()
    assert batches.tracked() == {
        ("errors", "user-1", (("checkout", "off"),)): 1,
        ("errors", "user-1", (("checkout", "on"),)): 1,
    }


async def test_bad_input_is_counted_never_raised(nats_url: str) -> None:
    nc, batches = await listening(nats_url)
    await ensure_stream(nc.jetstream())
    await write(nc.jetstream(), rollout_flag("checkout", 100_000))
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.05)
    try:
        assert await client.start(wait=15)
        client.track("errors", {"key": "u"})
        client.variation("checkout", {"key": "u"})
        for metric, context, value in [
            ("has space", {"key": "u"}, None),
            ("errors\n", {"key": "u"}, None),  # the name pattern's $ took a final newline
            ("", {"key": "u"}, None),
            (None, {"key": "u"}, None),
            ("x" * 101, {"key": "u"}, None),
            ("latency", {"key": "u"}, "12"),
            ("latency", {"key": "u"}, float("nan")),
            ("latency", {"key": "u"}, True),
        ]:
            client.track(metric, context, value)  # type: ignore[arg-type]
        for context in [None, {"no": "key"}, 42, object(), {"key": ["a"]}]:
            client.track("errors", context)
        await eventually(lambda: batches.total("invalid") == 8, what="the refused calls counted")
        await eventually(lambda: batches.total("dropped") == 5, what="the unusable contexts counted")
    finally:
        await client.close()
        await nc.close()
    assert client.tracker is not None
    assert (client.tracker.invalid, client.tracker.dropped) == (8, 5)
    assert batches.unexposed()["errors"] == 1  # the one before the exposure; nothing else was sent
    assert [r.metric for b in batches.items for r in (*b.tracked, *b.unexposed) if r.metric != "errors"] == []


async def test_many_calls_go_in_few_messages(nats_url: str) -> None:
    nc, batches = await listening(nats_url)
    await ensure_stream(nc.jetstream())
    await write(nc.jetstream(), rollout_flag("checkout", 30_000))
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.5)
    try:
        assert await client.start(wait=15)
        client.track("warmup", {"key": "nobody"})
        for i in range(5_000):
            user = {"key": f"user-{i % 100}"}
            client.variation("checkout", user)
            client.track("clicks", user)
        await eventually(lambda: sum(batches.tracked().values()) == 5_000, what="all 5,000 calls reported")
    finally:
        await client.close()
        await nc.close()
    assert len(batches.items) <= 12  # a few batches of at most 100 contexts each, not 5,000 messages
    assert max(len(b.tracked) for b in batches.items) <= 100


def test_sync_client_track_from_threads_and_while_nats_is_down(nats_server: NatsServer) -> None:
    async def setup() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_stream(js)
        await ensure_metrics_stream(js)  # what the SDK publishes is kept there, to be read after the restart
        await write(js, rollout_flag("checkout", 50_000))
        await nc.close()

    asyncio.run(setup())
    client = FlagstreamClient(nats_server.url, environment="production", track_interval=0.05, reconnect_wait=0.1)
    try:
        assert client.start(wait=15)
        client.track("errors", {"key": "nobody"})

        def work(n: int) -> None:
            for i in range(200):
                user = {"key": f"t{n}-{i}"}
                client.variation("checkout", user)
                client.track("errors", user)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 30
        while client.tracker is not None and client.tracker.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.tracker is not None
        assert (client.tracker.tracked, client.tracker.pending) == (800, 0)
        # NATS goes away: track() still returns at once, and what it was told waits for the connection.
        nats_server.stop()
        started = time.perf_counter()
        for i in range(1000):
            client.track("errors", {"key": f"t0-{i % 200}"})
        assert time.perf_counter() - started < 1.0  # no I/O, no waiting (1 ms per call would be 1 s)
        nats_server.restart()

        async def read_all() -> list[MetricsBatch]:
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            kept: list[MetricsBatch] = []
            sub = await js.subscribe(metrics_filter(), stream=METRICS_STREAM, ordered_consumer=True)
            try:
                deadline = asyncio.get_running_loop().time() + 60
                while sum(r.count for b in kept for r in b.tracked) < 1800:
                    assert asyncio.get_running_loop().time() < deadline, "the calls made while NATS was down"
                    try:
                        msg = await sub.next_msg(timeout=1)
                    except nats.errors.TimeoutError:
                        continue
                    kept.append(decode_metrics(msg.data))
            finally:
                await nc.close()
            return kept

        kept = asyncio.run(read_all())
    finally:
        client.close()
    assert sum(r.count for b in kept for r in b.tracked) == 1800
    assert client.tracker is not None
    assert client.tracker.failures >= 1  # it did try while NATS was away


def test_offline_clients_accept_track_and_do_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flagstream import TestData

    client = FlagstreamClient.from_test_data(TestData())
    client.track("errors", {"key": "u"}, 1.0)
    assert client.tracker is None
    client.close()
