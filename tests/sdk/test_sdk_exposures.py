"""Exposure records: delivered with the right fields, sampled deterministically, never hurting evaluations."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import nats

from flagstream import AsyncFlagstreamClient, FlagstreamClient, ReasonKind, TestData
from flagstream.events import Flag, FlagCreated, encode_event, subject
from flagstream.exposures import Exposure
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import eventually


class Sink:
    def __init__(self) -> None:
        self.records: list[Exposure] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, record: Exposure) -> None:
        with self._lock:
            self.records.append(record)
            self.threads.add(threading.current_thread().name)


async def test_records_carry_flag_variation_context_seq_reason_and_time(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    event = FlagCreated(project="default", environment="production", actor="t", at=datetime.now(UTC),
                        flag=Flag(key="checkout", on=True))  # fmt: skip
    seq = (await js.publish(subject("default", "production", "flag", "checkout"), encode_event(event))).seq
    await nc.close()

    sink = Sink()
    client = AsyncFlagstreamClient(nats_url, environment="production")
    recorder = client.on_exposure(sink)
    before = time.time()
    try:
        assert await client.start(wait=15)
        assert client.bool_variation("checkout", {"key": "user-1", "plan": "gold"}, False) is True
        client.variation_detail("checkout", {"kind": "multi", "user": {"key": "u2"}, "org": {"key": "o1"}})
        client.string_variation("checkout", {"kind": "device", "key": "d1"}, "x")  # wrong type: default served
        client.variation("missing", None, 0)
        await eventually(lambda: len(sink.records) == 4, what="4 exposures")
    finally:
        await client.close()
    first, multi, wrong, missing = sink.records
    assert (first.flag_key, first.variation, first.context_key, first.context_kind) == (
        "checkout",
        "on",
        "user-1",
        "user",
    )
    assert (first.seq, first.reason) == (seq, ReasonKind.FALLTHROUGH)
    assert before <= first.timestamp <= time.time()
    assert (multi.context_kind, multi.context_key) == ("multi", "org:o1:user:u2")
    assert (wrong.variation, wrong.reason, wrong.context_kind, wrong.context_key) == (
        None,
        ReasonKind.ERROR,
        "device",
        "d1",
    )
    assert (missing.flag_key, missing.context_key, missing.reason) == ("missing", None, ReasonKind.ERROR)
    assert sink.threads == {"flagstream-exposures"}  # never the evaluating thread
    assert (recorder.delivered, recorder.dropped, recorder.callback_errors) == (4, 0, 0)


def test_a_failing_or_slow_callback_does_not_affect_evaluations() -> None:
    td = TestData()
    td.flag("checkout").on(True)
    client = FlagstreamClient.from_test_data(td)
    release = threading.Event()
    calls: list[str] = []

    def failing(record: Exposure) -> None:
        calls.append(record.flag_key)
        release.wait(30)  # slow: the queue fills behind it
        raise RuntimeError("exporter down")

    recorder = client.on_exposure(failing, max_queue=10)
    results = [client.bool_variation("checkout", {"key": f"user-{i}"}, False) for i in range(100)]
    assert results == [True] * 100  # served normally, without waiting for the callback
    assert recorder.dropped >= 100 - 10 - 1
    release.set()
    asyncio.run(eventually(lambda: recorder.callback_errors == 100 - recorder.dropped, what="queue drained"))
    assert client.bool_variation_detail("checkout", {"key": "user-1"}, False).reason.kind is ReasonKind.FALLTHROUGH
    client.close()


def test_sampling_is_deterministic_per_flag_and_context_key() -> None:
    td = TestData()
    td.flag("checkout").on(True)
    client = FlagstreamClient.from_test_data(td)
    sink = Sink()
    recorder = client.on_exposure(sink, sample_rate=0.25)
    users = [f"user-{i}" for i in range(2000)]
    for _ in range(2):
        for user in users:
            client.bool_variation("checkout", {"key": user}, False)
    recorder.close()
    sampled = [r.context_key for r in sink.records]
    kept = set(sampled)
    assert 300 < len(kept) < 700  # about a quarter of the users...
    assert sorted(sampled) == sorted(list(kept) * 2)  # ...each recorded both times or never
    none = client.on_exposure(sink, sample_rate=0.0)
    client.bool_variation("checkout", {"key": "user-1"}, False)
    none.close()
    assert none.delivered == 0
    client.close()
