"""The fleet's feed: the pure aggregator (``aggregator.py``) fed from NATS, with its last-evaluated times kept in
the JetStream KV bucket ``flagstream_fleet``.

What SDK clients publish over core NATS (``events/telemetry.py``) goes to ``on_message`` of one replica only, the
aggregator (``lead.py``: a lease in the bucket); the other replicas ``ask`` it. Last-evaluated times per flag survive
restarts in the bucket (one key ``<project>.<environment>.<flag>`` per flag, written at most once a minute per flag,
and watched, so every admin process has them). Instances and counts are the aggregator's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from ...events.telemetry import decode_counts, decode_heartbeat, telemetry_filter
from ..runtime import FLEET_BUCKET, ensure_bucket
from . import lead
from .aggregator import ChangeConvergence, ContextKindAttributes, FlagEvaluations, FleetAggregator, InstanceView
from .lead import Lease, Query

log = logging.getLogger("flagstream.admin.fleet")

BUCKET = FLEET_BUCKET
#: Seconds between two writes of the dirty last-evaluated times, and the least time between two of one flag.
FLUSH_INTERVAL = 1.0
PERSIST_EVERY = timedelta(seconds=60)
_KV_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class StatusAnswer(msgspec.Struct, kw_only=True):
    instances: list[InstanceView]
    changes: list[ChangeConvergence]


class EvaluationsAnswer(msgspec.Struct, kw_only=True):
    counting_since: datetime
    flags: list[FlagEvaluations]


class AttributesAnswer(msgspec.Struct, kw_only=True):
    counting_since: datetime
    kinds: list[ContextKindAttributes]


class NoAggregator(Exception):
    """No replica aggregates the fleet right now (one takes over within ``lead.LEASE_SECONDS``)."""


class Fleet:
    """The aggregator with its NATS feed and its KV persistence."""

    def __init__(self, aggregator: FleetAggregator, replica: str | None = None) -> None:
        self.aggregator = aggregator
        self.kv: KeyValue | None = None
        self.observed_since = aggregator.started_at
        self.replica = replica or uuid.uuid4().hex
        #: Whether this replica aggregates (holds the lease; always, without a bucket to hold one in).
        self.leading = False
        self.lease: Lease | None = None
        #: Telemetry messages this replica handled (only the aggregator handles any).
        self.handled = 0
        self._nc: Any = None
        self._subscriptions: list[Any] = []
        self._persisted: dict[tuple[str, str, str], datetime] = {}
        self._warned = False
        self._put_failed = False
        self._retry_at = aggregator.started_at

    # -- who aggregates ---------------------------------------------------------------------------------------

    async def lead_forever(self, nc: Any) -> None:
        """Take (or keep) the aggregator's role whenever it is free, every ``lead.RENEW_EVERY`` seconds."""
        self._nc = nc
        while True:
            try:
                await self.step(nc)
            except Exception:
                log.exception("fleet: taking or renewing the aggregator's lease failed")
            await asyncio.sleep(lead.RENEW_EVERY)

    async def step(self, nc: Any) -> None:
        self._nc = nc
        holds = True if self.lease is None else await self.lease.hold()
        if holds and not self.leading:
            self.aggregator.restart()
            self._subscriptions = [
                await nc.subscribe(telemetry_filter(), cb=self.on_message),
                await nc.subscribe(lead.QUERY_SUBJECT, cb=self.on_query),
            ]
            self.leading = True
            log.info("fleet: this replica aggregates the fleet's telemetry")
        elif not holds and self.leading:
            await self.stop_leading()

    async def stop_leading(self, release: bool = False) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        self.leading = False
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        if release and self.lease is not None:
            await self.lease.release()

    async def on_query(self, msg: Msg) -> None:
        try:
            answer: Any = self.answer(msgspec.json.decode(msg.data, type=Query))
        except Exception as exc:  # a question this version cannot read
            answer = {"error": repr(exc)}
        with contextlib.suppress(Exception):
            await msg.respond(lead.pack(answer))

    def answer(self, query: Query) -> StatusAnswer | EvaluationsAnswer | AttributesAnswer:
        a = self.aggregator
        if query.op == "status":
            return StatusAnswer(
                instances=a.instances(query.project, query.environment),
                changes=a.convergence(query.project, query.environment, query.changes),
            )
        if query.op == "evaluations":
            return EvaluationsAnswer(
                counting_since=a.started_at, flags=a.evaluations(query.project, query.environment, query.window)
            )
        if query.op == "attributes":
            return AttributesAnswer(counting_since=a.started_at, kinds=a.attributes(query.project, query.environment))
        raise ValueError(f"unknown fleet query {query.op!r}")

    async def ask(self, query: Query) -> Any:
        """The aggregator's answer: computed here if this replica aggregates, else asked over NATS."""
        if self.leading or self._nc is None:
            return self.answer(query)
        kind = {"status": StatusAnswer, "evaluations": EvaluationsAnswer, "attributes": AttributesAnswer}[query.op]
        try:
            msg = await self._nc.request(lead.QUERY_SUBJECT, msgspec.json.encode(query), timeout=5)
            return lead.unpack(msg.data, kind)
        except Exception as exc:
            raise NoAggregator(f"no admin replica aggregates the fleet's telemetry right now ({exc!r})") from exc

    # -- the feed ---------------------------------------------------------------------------------------------

    async def on_message(self, msg: Msg) -> None:
        self.handled += 1
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
            self.lease = Lease(self.kv, self.replica)
            status = await self.kv.status()
            created = status.stream_info.created
            if created is not None:
                self.observed_since = created if created.tzinfo else created.replace(tzinfo=UTC)
        except Exception as exc:
            self.kv = self.lease = None
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
