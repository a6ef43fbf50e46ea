"""The fleet's feed: the pure aggregator (``aggregator.py``) fed from NATS, with its last-evaluated times kept in
the JetStream KV bucket ``flagstream_fleet``.

What SDK clients publish over core NATS (``events/telemetry.py``) goes to ``on_message``. Last-evaluated times per
flag survive restarts in the bucket (one key ``<project>.<environment>.<flag>`` per flag, written at most once a
minute per flag, and watched, so several admin processes share them). Instances and counts are this process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from ...events.telemetry import decode_counts, decode_heartbeat
from ..runtime import FLEET_BUCKET, ensure_bucket
from .aggregator import FleetAggregator

log = logging.getLogger("flagstream.admin.fleet")

BUCKET = FLEET_BUCKET
#: Seconds between two writes of the dirty last-evaluated times, and the least time between two of one flag.
FLUSH_INTERVAL = 1.0
PERSIST_EVERY = timedelta(seconds=60)
_KV_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class Fleet:
    """The aggregator with its NATS feed and its KV persistence."""

    def __init__(self, aggregator: FleetAggregator) -> None:
        self.aggregator = aggregator
        self.kv: KeyValue | None = None
        self.observed_since = aggregator.started_at
        self._persisted: dict[tuple[str, str, str], datetime] = {}
        self._warned = False
        self._put_failed = False
        self._retry_at = aggregator.started_at

    async def on_message(self, msg: Msg) -> None:
        try:
            if msg.subject.endswith(".heartbeat"):
                self.aggregator.heartbeat(decode_heartbeat(msg.data))
            elif msg.subject.endswith(".counts"):
                self.aggregator.counts(decode_counts(msg.data))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.aggregator.bad_messages += 1
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "fleet: skipping an undecodable telemetry message on %s: %s", msg.subject, exc)

    async def open_kv(self, js: Any) -> None:
        try:
            self.kv = await ensure_bucket(js, BUCKET, description="flagstream fleet")
            status = await self.kv.status()
            created = status.stream_info.created
            if created is not None:
                self.observed_since = created if created.tzinfo else created.replace(tzinfo=UTC)
        except Exception as exc:
            self.kv = None
            log.warning("fleet: last-evaluated times will not survive a restart (no KV bucket: %r)", exc)

    async def follow(self, js: Any) -> Any:
        """Feed the aggregator with the stored last-evaluated times, then with every later write (other admin
        processes' too): an ordered consumer on the bucket, last value per key. Returns the subscription."""
        prefix = f"$KV.{BUCKET}."

        async def on_entry(msg: Msg) -> None:
            if msg.headers and msg.headers.get("KV-Operation"):
                return  # a delete or purge marker
            with contextlib.suppress(ValueError, msgspec.DecodeError, msgspec.ValidationError):
                project, environment, flag = msg.subject.removeprefix(prefix).split(".")
                at = msgspec.json.decode(msg.data, type=datetime)
                self.aggregator.remember_evaluated(project, environment, flag, at)
                self._persisted[(project, environment, flag)] = at

        return await js.subscribe(
            f"{prefix}>",
            stream=f"KV_{BUCKET}",
            cb=on_entry,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def flush(self) -> None:
        """Store the last-evaluated times that changed (each flag at most every ``PERSIST_EVERY``)."""
        if self.kv is None or self.aggregator.clock() < self._retry_at:
            return
        dirty = self.aggregator.take_dirty()
        for where, at in list(dirty.items()):
            del dirty[where]
            before = self._persisted.get(where)
            if before is not None and at - before < PERSIST_EVERY:
                continue
            if not all(_KV_TOKEN.match(part) for part in where):
                continue  # a flag name no flag can have (an app evaluated a key that cannot exist)
            try:
                await self.kv.put(".".join(where), msgspec.json.encode(at))
            except Exception as exc:
                # NATS down, or no permission: keep them for the next round (once a minute).
                level = logging.DEBUG if self._put_failed else logging.WARNING
                self._put_failed = True
                log.log(level, "fleet: could not store last-evaluated times in %s: %r", BUCKET, exc)
                self.aggregator.requeue({**dirty, where: at})
                self._retry_at = self.aggregator.clock() + PERSIST_EVERY
                return
            self._persisted[where] = at
            self._put_failed = False

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:
                log.exception("fleet: flushing last-evaluated times failed")
