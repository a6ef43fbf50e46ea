"""Delivering webhooks: every admin replica runs a ``WebhookDelivery``; each webhook's events come from its own
durable consumer (``store.py``), shared by the replicas, so each event is sent by one of them, and with
one event in flight per webhook they arrive in stream order.

An attempt that does not get a 2xx within ``TIMEOUT`` is retried after a growing delay (``BACKOFF``: 1 s, 2 s,
5 s ... 20 min; about an hour over ``MAX_ATTEMPTS``), then given up and counted as failed; the next event
follows. A replica that dies mid-attempt leaves the event unacknowledged: JetStream offers it again after
``ACK_WAIT`` (to any replica). So an event is delivered at least once; ``X-Flagstream-Delivery`` lets your endpoint
drop a repeat.

The previous state, for the body's ``changes``, is the message the write replaced: the admin appends each event
with ``Nats-Expected-Last-Subject-Sequence``, which JetStream stores with it, so one direct get finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

from ...events import STREAM, decode_event, entity_of, whole_number
from ..runtime import cancel_and_wait, first_done
from .address import AddressPolicy, client
from .model import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WebhookRecord,
    body,
    consumer_name,
    ping_body,
    signature,
)
from .store import MAX_ATTEMPTS, WebhookStore

log = logging.getLogger("flagstream.webhooks")

#: Seconds before attempt n + 1 (the last value repeats).
BACKOFF = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1200)
#: One attempt: connect, send, and the answer's status.
TIMEOUT = 10.0
#: How often the replica looks for webhooks created or deleted elsewhere.
RESCAN = 5.0
EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"


class WebhookDelivery:
    def __init__(
        self,
        store: WebhookStore,
        *,
        policy: AddressPolicy | None = None,
        user_agent: str = "flagstream-webhooks",
        on_attempt: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        #: The addresses deliveries may connect to (``address.py``): public ones, and what the operator allows.
        self.policy = policy or AddressPolicy()
        self.user_agent = user_agent
        #: Told each attempt's result: ``delivered``, ``error`` (to be retried) or ``failed`` (given up), and
        #: ``bad_event`` for a message that is not an event (skipped, never sent).
        self.on_attempt = on_attempt or (lambda result: None)
        #: Set to look for new webhooks now (the API sets it when it creates one).
        self.wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        async with client(self.policy, TIMEOUT) as http:
            try:
                while not stop.is_set():
                    try:
                        await self._sync(http, stop)
                    except Exception as exc:  # NATS away for a moment: the next scan tries again
                        log.warning("webhooks: cannot read the webhook list: %r", exc)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RESCAN):
                            await first_done(self.wake.wait(), stop.wait())
                    self.wake.clear()
            finally:
                # Cancelled again while they run on (one cancel can be lost on Python 3.11), never without end.
                if not await cancel_and_wait(*self._tasks.values(), within=5):
                    log.warning("webhooks: a delivery still runs 5s after it was cancelled")

    async def _sync(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        records = {r.id: r for r in await self.store.list()}
        for webhook_id, task in list(self._tasks.items()):
            if webhook_id not in records or task.done():
                task.cancel()
                del self._tasks[webhook_id]
        for webhook_id, record in records.items():
            if webhook_id not in self._tasks:
                self._tasks[webhook_id] = asyncio.create_task(self._follow(record, http, stop))

    async def _follow(self, record: WebhookRecord, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        js = self.store.js
        try:
            sub = await js.pull_subscribe_bind(durable=consumer_name(record.id), stream=STREAM)
        except NotFoundError:
            return  # deleted meanwhile
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(1, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except NotFoundError:
                    return  # the consumer was deleted: the webhook is gone
                for msg in msgs:
                    await self._handle(record, msg, http)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhooks: %s stopped following the stream (%r); the next scan starts it again", record.id, exc)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, record: WebhookRecord, msg: Any, http: httpx.AsyncClient) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        try:
            event = decode_event(msg.data)
        except Exception:
            self.on_attempt("bad_event")
            log.warning("webhooks: message %d on %s is not an event; skipped", seq, msg.subject)
            await msg.ack()
            return
        previous, known = await self._previous(msg)
        payload = body(record, seq, event, previous, known_previous=known)
        status = await self.store.status(record.id)
        status.last_seq, status.last_attempt_at = seq, datetime.now(UTC)
        code, error = await self._post(http, record, seq, payload)
        result = "delivered" if 200 <= code < 300 else "failed" if meta.num_delivered >= MAX_ATTEMPTS else "error"
        self.on_attempt(result)
        if result == "delivered":
            status.delivered += 1
            status.last_delivered_at, status.last_status, status.last_error = status.last_attempt_at, code, ""
            await msg.ack()
        else:
            status.errors += 1
            status.last_status, status.last_error = code, error
            attempt = meta.num_delivered
            if result == "failed":
                status.failed += 1
                log.error("webhooks: %s gave up on event %d after %d attempts: %s", record.id, seq, attempt, error)
                await msg.term()
            else:
                await msg.nak(delay=BACKOFF[min(attempt, len(BACKOFF)) - 1])
        await self.store.save_status(record.id, status)

    async def ping(self, record: WebhookRecord, actor: str) -> tuple[int, str]:
        """Send a test body (``type: ping``) now, outside the stream: (the endpoint's HTTP status or 0, error). The
        error names the status or why nothing was sent, never what the endpoint answered (the body of a refused or
        probed target is not for the API's callers)."""
        async with client(self.policy, TIMEOUT) as http:
            return await self._post(http, record, 0, ping_body(record, actor, datetime.now(UTC)))

    async def _previous(self, msg: Any) -> tuple[Any, bool]:
        """(the entity's state before this event, whether it is known)."""
        replaced = whole_number((msg.headers or {}).get(EXPECTED_LAST, ""))
        if replaced is None:
            return None, False  # not written by the admin service: nothing says what it replaced
        if replaced == 0:
            return None, True  # a new entity
        try:
            stored = await self.store.js.get_msg(STREAM, seq=replaced, direct=True)
            return entity_of(decode_event(stored.data or b""))[2], True
        except Exception:
            return None, False

    async def _post(self, http: httpx.AsyncClient, record: WebhookRecord, seq: int, payload: bytes) -> tuple[int, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            SIGNATURE_HEADER: signature(record.secret, int(time.time()), payload),
            DELIVERY_HEADER: f"{record.id}:{seq}",
        }
        try:
            # Only the status is read: the answer's body is never downloaded (it may be anything, of any size).
            async with http.stream("POST", record.url, content=payload, headers=headers) as response:
                code = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a record from before url_problem read it
            if str(exc).startswith("refused:"):
                log.warning("webhooks: %s not sent: %s", record.id, exc)
                return 0, str(exc)[:500]
            return 0, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= code < 300:
            return code, ""
        if 300 <= code < 400:
            return code, f"HTTP {code}: a redirect (not followed: give the webhook its final URL)"
        return code, f"HTTP {code}"
