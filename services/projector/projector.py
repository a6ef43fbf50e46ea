"""The NATS edge of the projector: a durable pull consumer on ``flagstream.>`` feeding the read model.

Exactly once, under crashes:

- the read model's position (last applied stream sequence) is written in the same SQLite transaction as the
  rows of the batch; messages are acknowledged only after that commit;
- a message at or below the position (a redelivery) is acknowledged and ignored;
- on start (and after a reconnect or a hole in the sequence) the durable consumer is checked against the
  position: unless it would deliver exactly position + 1 next, with nothing in flight, it is deleted and
  recreated with ``DeliverPolicy.BY_START_SEQUENCE`` at position + 1. The SQLite file is the truth, the
  consumer follows it: a deleted read model refolds the log from sequence 1.

One projector per durable name: two processes sharing a durable would fight over its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from ...events import STREAM
from ...events.subjects import all_subjects
from ..runtime import cancel_and_wait, ensure_stream
from .projection import Batch, RawMessage, fold_batch
from .readmodel import ReadModel

log = logging.getLogger("flagstream.projector")
T = TypeVar("T")

BATCH_SIZE = 256
FETCH_TIMEOUT = 1.0
ACK_WAIT = 30.0
PROGRESS_EVERY = 5.0  # seconds between progress log lines while folding


class Projector:
    """Folds the event log into the SQLite read model at ``db_path`` until ``stop`` is set.

    ``await projector.run(stop)`` in any event loop; ``await projector.wait_caught_up(timeout)`` from the
    same loop waits until everything in the stream at the time of the call has been applied.
    """

    def __init__(
        self,
        *,
        nats_url: str,
        db_path: Path,
        durable: str = "projector",
        batch_size: int = BATCH_SIZE,
        fetch_timeout: float = FETCH_TIMEOUT,
        inactive_threshold: float | None = None,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        """``inactive_threshold`` (seconds): let the server delete the durable after that long without this
        projector, for one-off runs (``--print-hash``); ``None`` keeps it forever. ``connect_options`` go to
        ``nats.connect`` (user, password, tls)."""
        self.nats_url = nats_url
        self.db_path = Path(db_path)
        self.durable = durable
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.inactive_threshold = inactive_threshold
        self.connect_options = dict(connect_options or {})
        self._last_seq = 0
        self._last_error = ""
        self._js: JetStreamContext | None = None
        #: Set to "check" (verify the consumer) or "recreate" to leave the fetch loop and position it again.
        self._reposition: str | None = None
        self._closing = False
        self._changed = asyncio.Condition()

    @property
    def last_seq(self) -> int:
        """The last stream sequence applied to the read model (as known by this process)."""
        return self._last_seq

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; reconnects on its own. Finishes the batch in hand, then closes the
        read model."""
        model = await ReadModel.open(self.db_path)
        try:
            await self._set_position(await model.last_seq())
            backoff = 0.1
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self._session(model, stop)
                except Exception as exc:
                    debug = log.isEnabledFor(logging.DEBUG)
                    log.warning("projector: %s: %s; retrying", type(exc).__name__, exc, exc_info=debug)
                if stop.is_set():
                    break
                backoff = 0.1 if time.monotonic() - started > 10 else min(backoff * 2, 2.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):  # not wait_for, which can drop a cancellation
                        await stop.wait()
        finally:
            await model.close()
        log.info("projector stopped at sequence %d", self._last_seq)

    async def catch_up(self, timeout: float) -> bool:  # noqa: ASYNC109 (as wait_caught_up)
        """Run until the read model has applied the stream as of now, then stop: a one-off fold (``--print-hash``,
        a rebuild). False if not caught up within ``timeout`` seconds; raises what made ``run`` fail."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop))
        waiter = asyncio.create_task(self.wait_caught_up(timeout))
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            await task
        if not waiter.done() or waiter.exception() is not None:
            waiter.cancel()
            return False
        return True

    async def wait_caught_up(self, timeout: float) -> int:  # noqa: ASYNC109 (the documented API)
        """Wait until the read model has applied the stream's last sequence as of now; returns it.
        ``TimeoutError`` after ``timeout`` seconds. Needs ``run`` going in the same event loop."""
        async with asyncio.timeout(timeout):
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda: self._js is not None)
                    js = self._js
                assert js is not None
                try:
                    target = (await js.stream_info(STREAM)).state.last_seq
                    break
                except Exception:  # connection lost meanwhile: wait for the next session
                    await asyncio.sleep(0.05)
            async with self._changed:
                await self._changed.wait_for(lambda: self._last_seq >= target)
        return target

    # --- internals ----------------------------------------------------------------------------------------

    async def _set_position(self, seq: int) -> None:
        async with self._changed:
            self._last_seq = seq
            self._changed.notify_all()

    async def _set_js(self, js: JetStreamContext | None) -> None:
        async with self._changed:
            self._js = js
            self._changed.notify_all()

    async def _session(self, model: ReadModel, stop: asyncio.Event) -> None:
        """One connection: position the consumer, then fetch and apply until stopped or told to reposition."""
        # nats-py retries a first connection for ever with max_reconnect_attempts=-1: give up on stop.
        nc = await _unless_stopped(
            nats.connect(
                self.nats_url,
                name=f"flagstream-projector:{self.durable}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                **self.connect_options,
            ),
            stop,
        )
        if nc is None:
            return
        log.info("connected to %s", self.nats_url)
        self._last_error = ""
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            await self._set_js(js)
            while not stop.is_set():
                await self._set_position(await model.last_seq())
                force, self._reposition = self._reposition == "recreate", None
                psub, fresh = await self._position_consumer(js, self._last_seq, force=force)
                try:
                    await self._consume(nc, psub, model, stop, allow_gap=fresh)
                finally:
                    with contextlib.suppress(Exception):
                        await psub.unsubscribe()
        finally:
            await self._set_js(None)
            self._closing = True
            with contextlib.suppress(Exception):
                await nc.close()
            self._closing = False

    async def _position_consumer(
        self, js: JetStreamContext, position: int, *, force: bool
    ) -> tuple[JetStreamContext.PullSubscription, bool]:
        """Bind to the durable, recreating it at ``position + 1`` unless it would deliver exactly that next.
        Returns the subscription and whether the consumer was (re)created."""
        try:
            info: ConsumerInfo | None = await js.consumer_info(STREAM, self.durable)
        except NotFoundError:
            info = None
        fresh = force or info is None or not _resumes_at(info, position)
        if fresh:
            if info is not None:
                log.info("repositioning consumer %r at sequence %d", self.durable, position + 1)
                await js.delete_consumer(STREAM, self.durable)
            else:
                log.info("creating consumer %r at sequence %d", self.durable, position + 1)
            await js.add_consumer(
                STREAM,
                ConsumerConfig(
                    durable_name=self.durable,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=position + 1,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=ACK_WAIT,
                    filter_subject=all_subjects(),
                    max_ack_pending=max(1024, self.batch_size * 4),
                    inactive_threshold=self.inactive_threshold,
                ),
            )
        else:
            log.info("consumer %r resumes at sequence %d", self.durable, position + 1)
        last = (await js.stream_info(STREAM)).state.last_seq
        if position > last:
            log.warning(
                "read model at sequence %d is ahead of the stream (last %d): was the stream recreated? "
                "delete %s to rebuild it",
                position,
                last,
                self.db_path,
            )
        return await js.pull_subscribe_bind(durable=self.durable, stream=STREAM), fresh

    async def _consume(
        self,
        nc: Client,
        psub: JetStreamContext.PullSubscription,
        model: ReadModel,
        stop: asyncio.Event,
        *,
        allow_gap: bool,
    ) -> None:
        last_report = time.monotonic()
        reported_seq = self._last_seq
        while not stop.is_set() and self._reposition is None:
            if nc.is_closed:
                raise ConnectionError("connection closed")
            msgs = await self._fetch(psub, stop)
            if not msgs:
                continue
            raw = [RawMessage(m.metadata.sequence.stream, m.subject, m.data) for m in msgs]
            batch = fold_batch(self._last_seq, raw, allow_gap=allow_gap)
            await model.apply(batch)  # commit first ...
            await self._set_position(batch.last_seq)
            for msg, message in zip(msgs, raw, strict=True):
                if message.seq <= batch.last_seq:
                    await msg.ack()  # ... then acknowledge
            self._report(batch)
            allow_gap = False
            if batch.gap_at is not None:
                log.warning(
                    "hole in the delivered sequence (got %d after %d): repositioning", batch.gap_at, batch.last_seq
                )
                self._reposition = "recreate"
            now = time.monotonic()
            pending = msgs[-1].metadata.num_pending
            if now - last_report >= PROGRESS_EVERY or (pending == 0 and self._last_seq - reported_seq >= 1000):
                log.info("applied up to sequence %d (%d behind)", self._last_seq, pending)
                last_report, reported_seq = now, self._last_seq

    async def _fetch(self, psub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> list[Msg]:
        """The next batch, or ``[]`` on timeout or stop (a fetch in flight is abandoned on stop: its messages,
        delivered but never acknowledged, are redelivered to whoever resumes)."""
        try:
            return await _unless_stopped(psub.fetch(self.batch_size, timeout=self.fetch_timeout), stop) or []
        except TimeoutError:
            return []

    def _report(self, batch: Batch) -> None:
        for bad in batch.bad:
            log.warning("skipped bad event at sequence %d on %s: %s", bad.seq, bad.subject, bad.error)
        if batch.duplicates:
            log.debug("ignored %d redelivered messages", batch.duplicates)

    async def _on_error(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        log.log(logging.DEBUG if text == self._last_error else logging.WARNING, "nats: %s", text)
        self._last_error = text

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS")
        if self._reposition is None:
            self._reposition = "check"  # pull requests in flight are gone: check the consumer again


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Await ``work``, or cancel it and return ``None`` as soon as ``stop`` is set."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        # Not ``suppress(CancelledError): await task``: that swallowed the caller's own cancellation, and one
        # cancel of ``work`` can be lost (Python 3.11's wait_for in nats-py): cancelled again, within a bound.
        if not await cancel_and_wait(task, within=5):
            log.warning("projector: a NATS call still runs 5s after it was cancelled")
        return None
    return task.result()


def _resumes_at(info: ConsumerInfo, position: int) -> bool:
    """Would this durable deliver exactly ``position + 1`` next, with nothing delivered but unacknowledged and
    no pull request left waiting (a dead process's request would swallow messages)?"""
    config = info.config
    return (
        config.filter_subject == all_subjects()
        and config.ack_policy == AckPolicy.EXPLICIT
        and info.delivered is not None
        and info.delivered.stream_seq == position
        and info.ack_floor is not None
        and info.ack_floor.stream_seq == position
        and not info.num_ack_pending
        and not info.num_waiting
    )
