"""``client.close()`` returns promptly even when a background loop of the client loses a cancellation.

On Python 3.11 a cancellation can be dropped inside nats-py: its ``_flush_pending`` (a publish that fills the
pending buffer waits for the flusher there) catches ``CancelledError`` and carries on, and ``asyncio.wait_for``
drops one that comes as its awaitable completes (CPython gh-86296). A loop stopped only by one ``cancel()`` then
runs on, and a ``close()`` awaiting it waited forever, in the application. Here the drop is made explicit."""

from __future__ import annotations

import asyncio
import contextlib

import nats
import pytest
from nats.aio.msg import Msg

from flagstream import AsyncFlagstreamClient, nats_source
from flagstream.events.telemetry import decode_heartbeat, telemetry_filter
from flagstream.services.runtime.stream import METRICS_STREAM, ensure_metrics_stream, ensure_stream
from tests.helpers import eventually


async def test_close_returns_when_the_telemetry_loop_loses_its_cancellation(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    await ensure_stream(nc.jetstream())
    heartbeats: list[str] = []

    async def on_message(msg: Msg) -> None:
        if msg.subject.endswith(".heartbeat"):
            heartbeats.append(decode_heartbeat(msg.data).instance_id)

    await nc.subscribe(telemetry_filter("default", "production"), cb=on_message)
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry_interval=0.05)
    try:
        assert await client.start(wait=15)
        tel = client._telemetry
        assert tel is not None
        real_report, reporting = tel.report, asyncio.Event()

        async def report_losing_a_cancellation() -> bool:
            tel.report = real_report  # type: ignore[method-assign]  # once
            reporting.set()
            try:
                await asyncio.Event().wait()  # a publish waiting for nats-py's flusher
            except asyncio.CancelledError:
                pass  # what nats-py's _flush_pending does with it
            return await real_report()

        tel.report = report_losing_a_cancellation  # type: ignore[method-assign]
        await reporting.wait()
        async with asyncio.timeout(60) as limit:  # without the fix: close() never returns
            await client.close()
        assert not limit.expired(), "close() returned only when cancelled (and swallowed that cancellation)"
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "flagstream-telemetry"], "the loop has ended"
        await eventually(lambda: tel.instance_id in heartbeats, what="the last report of close()")
        assert tel.failures == 0
    finally:
        await client.close()
        await nc.close()


async def test_close_ends_the_metrics_loop_when_it_loses_its_cancellation(nats_url: str) -> None:
    """The metrics loop was cancelled once and left: one that lost the cancellation ran on after ``close()``,
    flushing beside it, for the life of the application."""
    nc = await nats.connect(nats_url)
    await ensure_stream(nc.jetstream())
    await ensure_metrics_stream(nc.jetstream())
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False, track_interval=0.05)
    try:
        assert await client.start(wait=15)
        tracker = client.tracker
        assert tracker is not None
        real_flush, flushing = tracker.flush, asyncio.Event()

        async def flush_losing_a_cancellation() -> bool:
            tracker.flush = real_flush  # type: ignore[method-assign]  # once
            flushing.set()
            try:
                await asyncio.Event().wait()  # a publish waiting for nats-py's flusher
            except asyncio.CancelledError:
                pass  # what nats-py's _flush_pending does with it
            return await real_flush()

        tracker.flush = flush_losing_a_cancellation  # type: ignore[method-assign]
        await flushing.wait()
        client.track("checkout", {"key": "u1"})
        async with asyncio.timeout(60) as limit:
            await client.close()
        assert not limit.expired()
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "flagstream-tracking"], "the loop has ended"
        info = await nc.jetstream().stream_info(METRICS_STREAM)
        assert info.state.messages >= 1, "what was tracked was sent by close()"
    finally:
        await client.close()
        await nc.close()


async def test_loading_the_snapshot_does_not_swallow_the_cancellation_of_the_task_loading_it(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close() cancels the task loading the environment while that load ends its snapshot fetch: the fetch
    (a NATS request: Python 3.11's wait_for) loses the first cancellation and runs on. The load awaited it under
    ``suppress(BaseException)``, without a limit, swallowing the close's cancellation there too."""
    ending_fetch = asyncio.Event()

    async def fetch_losing_a_cancellation(*_: object) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ending_fetch.set()  # the request's answer came in the same moment: the cancellation is dropped
        await asyncio.Event().wait()  # and it goes on (a next part, say)

    monkeypatch.setattr(nats_source, "fetch_snapshot", fetch_losing_a_cancellation)
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry=False)
    source = client._source
    assert isinstance(source, nats_source.NatsSource)
    loading = asyncio.create_task(source._load_snapshot(None, None))
    await eventually(lambda: source._snapshot_denied is not None, what="the fetch under way")
    assert source._snapshot_denied is not None
    source._snapshot_denied.set()  # the snapshot refused: the load ends its fetch
    await ending_fetch.wait()
    loading.cancel()  # close() comes meanwhile
    async with asyncio.timeout(60) as limit:
        with contextlib.suppress(asyncio.CancelledError):
            await loading
    assert not limit.expired(), "the load ended only when cancelled from outside"
    assert loading.cancelled(), "the cancellation went on (not swallowed)"
