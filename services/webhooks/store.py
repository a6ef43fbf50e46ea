"""Webhook records and their delivery status in the JetStream KV bucket ``flagstream_webhooks``, and the durable
consumer that holds each webhook's position on the event stream.

Creating a webhook creates its consumer at the stream's next sequence first, so no change made after the
creation's answer can be missed, whichever admin replica delivers it and whenever one runs. Deleting it deletes
the consumer: nothing more is sent. Keys: ``r.<id>`` the record, ``s.<id>`` the status of its deliveries.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError

from ...events import STREAM
from ..runtime import ensure_bucket
from .model import BUCKET, WebhookRecord, consumer_name, filter_subjects, new_id, new_secret

log = logging.getLogger("flagstream.webhooks")

#: Attempts at one event before it is given up (with the back-off of ``webhook_delivery``: about an hour).
MAX_ATTEMPTS = 12
#: How long one attempt may take before JetStream offers the event again.
ACK_WAIT = 15.0


class DeliveryStatus(msgspec.Struct, kw_only=True):
    delivered: int = 0
    #: Events given up after ``MAX_ATTEMPTS`` attempts.
    failed: int = 0
    #: Attempts that did not get a 2xx (each retried, until the last).
    errors: int = 0
    last_seq: int = 0
    last_attempt_at: datetime | None = None
    last_delivered_at: datetime | None = None
    #: HTTP status of the last attempt (0: no answer).
    last_status: int = 0
    last_error: str = ""


_record = msgspec.json.Decoder(WebhookRecord)
_status = msgspec.json.Decoder(DeliveryStatus)


class WebhookStore:
    def __init__(self, nc: NATS, kv: object) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.kv = kv

    @classmethod
    async def open(cls, nc: NATS) -> WebhookStore:
        return cls(nc, await ensure_bucket(nc.jetstream(), BUCKET))

    async def create(
        self, *, url: str, description: str, environments: list[str] | None, kinds: list[str] | None, created_by: str
    ) -> WebhookRecord:
        webhook_id = new_id()
        start = (await self.js.stream_info(STREAM)).state.last_seq + 1
        subjects = filter_subjects(environments, kinds)
        await self.js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=consumer_name(webhook_id),
                description=f"flagstream webhook {webhook_id} -> {url}"[:200],
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                filter_subject=subjects[0] if len(subjects) == 1 else None,
                filter_subjects=subjects if len(subjects) > 1 else None,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT,
                max_deliver=MAX_ATTEMPTS,
                max_ack_pending=1,  # one event in flight: your endpoint gets them in stream order
            ),
        )
        record = WebhookRecord(
            id=webhook_id, url=url, secret=new_secret(), description=description, environments=environments,
            kinds=kinds, created_by=created_by, created_at=datetime.now(UTC), start_seq=start,
        )  # fmt: skip
        await self.kv.put(f"r.{webhook_id}", msgspec.json.encode(record))  # type: ignore[attr-defined]
        return record

    async def get(self, webhook_id: str) -> WebhookRecord | None:
        try:
            entry = await self.kv.get(f"r.{webhook_id}")  # type: ignore[attr-defined]
        except (KeyNotFoundError, NotFoundError):
            return None
        return _record.decode(entry.value) if entry.value else None

    async def ids(self) -> list[str]:
        """The ids of the webhooks (one key listing, no record read)."""
        try:
            keys = await self.kv.keys()  # type: ignore[attr-defined]
        except NoKeysError:
            return []
        return [key[2:] for key in keys if key.startswith("r.")]

    async def list(self) -> list[WebhookRecord]:
        found = [await self.get(webhook_id) for webhook_id in await self.ids()]
        return sorted((r for r in found if r is not None), key=lambda r: (r.created_at, r.id))

    async def delete(self, webhook_id: str) -> None:
        """Stop the webhook: its consumer first (nothing more is delivered), then its record and status."""
        with contextlib.suppress(NotFoundError):
            await self.js.delete_consumer(STREAM, consumer_name(webhook_id))
        for key in (f"r.{webhook_id}", f"s.{webhook_id}"):
            with contextlib.suppress(KeyNotFoundError, NotFoundError):
                await self.kv.purge(key)  # type: ignore[attr-defined]

    async def status(self, webhook_id: str) -> DeliveryStatus:
        try:
            entry = await self.kv.get(f"s.{webhook_id}")  # type: ignore[attr-defined]
        except (KeyNotFoundError, NotFoundError):
            return DeliveryStatus()
        return _status.decode(entry.value) if entry.value else DeliveryStatus()

    async def save_status(self, webhook_id: str, status: DeliveryStatus) -> None:
        """Written after each attempt by the replica that made it (one attempt is in flight at a time)."""
        if await self.get(webhook_id) is not None:  # not for a webhook deleted meanwhile
            await self.kv.put(f"s.{webhook_id}", msgspec.json.encode(status))  # type: ignore[attr-defined]

    async def pending(self, webhook_id: str) -> tuple[int, int] | None:
        """(events not yet delivered, events in flight) from the consumer, or None if it is gone."""
        try:
            info = await self.js.consumer_info(STREAM, consumer_name(webhook_id))
        except NotFoundError:
            return None
        return info.num_pending or 0, info.num_ack_pending or 0
