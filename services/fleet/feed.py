"""The fleet's feed: the pure aggregator (``aggregator.py``) fed from NATS, with its last-evaluated times kept in
the JetStream KV bucket ``flagstream_fleet``.

What SDK clients publish over core NATS (``events/telemetry.py``) is held by the stream ``FLAGSTREAM_FLEET`` and
pulled by one replica only, the aggregator (``lead.py``: a lease in the bucket; ``stream.py``: the stream and the
pull); the other replicas ``ask`` it. Without the stream (it could not be created: NATS permissions), the aggregator
subscribes to the subjects instead, as before it existed. Last-evaluated times per flag survive restarts in the
bucket (one key ``<project>.<environment>.<flag>`` per flag, written at most once a minute per flag, and watched,
so every admin process has them). Instances and recent counts are the aggregator's memory; its evaluation totals
are stored in the bucket too (key ``_totals``, ``events.telemetry.FleetTotals``) with the stream sequences they
include, and each message pulled is acknowledged only once totals that include it are stored (``checkpoint``):
the replica that takes the aggregation over counts on from them, every message once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.errors import SlowConsumerError
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...events.telemetry import (
    FleetTotals,
    decode_counts,
    decode_heartbeat,
    decode_totals,
    encode_totals,
    telemetry_filter,
)
from ..runtime import FLEET_BUCKET, cancel_and_wait, ensure_bucket
from . import lead
from .aggregator import ChangeConvergence, ContextKindAttributes, FlagEvaluations, FleetAggregator, InstanceView
from .lead import Lease, Query
from .stream import ACK_WAIT, CONSUMER, FLEET_STREAM, Pull, Seen, ensure_fleet_stream

log = logging.getLogger("flagstream.admin.fleet")

BUCKET = FLEET_BUCKET
#: Seconds between two writes of the dirty last-evaluated times, and the least time between two of one flag.
FLUSH_INTERVAL = 1.0
PERSIST_EVERY = timedelta(seconds=60)
_KV_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
#: The aggregator's totals in the bucket (one token: never a ``<project>.<environment>.<flag>`` time).
TOTALS_KEY = "_totals"
#: Seconds between two writes of the totals (sooner when the acknowledgements due pile up).
CHECKPOINT_EVERY = 1.0
#: Seconds the totals may fail to be stored before the messages they count are acknowledged anyway (else the
#: stream would stop delivering, ``stream.MAX_ACK_PENDING``, or deliver them again, ``stream.ACK_WAIT``).
UNSTORED_AT_MOST = ACK_WAIT / 3


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
        #: Whether telemetry is pulled from the fleet stream (else subscribed to, as before the stream).
        self.pulling = False
        self.pull: Pull | None = None
        self._pull_task: asyncio.Task[None] | None = None
        #: Messages the stream holds for the aggregator (read every renewal by the aggregator; None: unknown).
        self.backlog: int | None = None
        self._js: Any = None
        self._nc: Any = None
        self._subscriptions: list[Any] = []
        self._persisted: dict[tuple[str, str, str], datetime] = {}
        self._warned = False
        self._put_failed = False
        self._retry_at = aggregator.started_at
        #: Revision of the totals record this replica last read or wrote (None: it keeps none: no bucket, or
        #: subscribing without the stream); whether another writer got in between (it takes over afresh).
        self._totals_revision: int | None = None
        self._fenced = False
        self._unstored_since: float | None = None
        #: Totals writes that failed (the messages of ``UNSTORED_AT_MOST`` seconds acknowledged anyway).
        self.checkpoint_failures = 0

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
        if self.leading and self._fenced:  # another replica stored totals meanwhile: start again from them
            log.warning("fleet: another replica stored the totals meanwhile; aggregating again from its totals")
            await self.stop_leading()
        if holds and not self.leading:
            self.aggregator.restart()
            seen = await self._take_totals() if self.pulling and self.kv is not None else None
            if self.pulling:
                self.pull = Pull(nc, self.on_telemetry, may_ack=self._holding, ack_later=seen is not None,
                                 seen=seen)  # fmt: skip
                self._pull_task = asyncio.create_task(self.pull.run(), name="fleet-pull")
                self._subscriptions = []
            else:
                self._subscriptions = [await nc.subscribe(telemetry_filter(), cb=self.on_message)]
            self._subscriptions.append(await nc.subscribe(lead.QUERY_SUBJECT, cb=self.on_query))
            self.leading = True
            log.info("fleet: this replica aggregates the fleet's telemetry")
        elif not holds and self.leading:
            await self.stop_leading()
        if self.leading and self.pulling and self._js is not None:
            await self._read_backlog()

    async def _take_totals(self) -> Seen:
        """Count on from the stored totals (none: from zero, as an older aggregator left no record), and mark
        them as this replica's by writing them back (compare-and-set): a predecessor still writing fails from now on
        and acknowledges nothing more. Returns the stream sequences they include."""
        assert self.kv is not None
        self._fenced = False
        while True:
            record: FleetTotals | None = None
            try:
                entry = await self.kv.get(TOTALS_KEY)
            except KeyNotFoundError:
                revision = None
            else:
                revision = entry.revision
                try:
                    record = decode_totals(entry.value or b"")
                except Exception as exc:
                    log.warning("fleet: the stored totals cannot be read (%r): counting from zero", exc)
            if record is None:
                record = FleetTotals(counting_since=self.aggregator.counting_since,
                                     written_at=self.aggregator.clock(), replica=self.replica)  # fmt: skip
            data = encode_totals(record)
            try:
                if revision is None:
                    self._totals_revision = await self.kv.create(TOTALS_KEY, data)
                else:
                    self._totals_revision = await self.kv.update(TOTALS_KEY, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # the previous aggregator stored its last totals right now: read those
            break
        self.aggregator.resume(record.counting_since, record.environments)
        seen = Seen()
        for first, last in record.counted:
            seen.add_range(first, last)
        return seen

    async def checkpoint(self, *, final: bool = False) -> None:
        """Store the totals with the stream sequences they include, then acknowledge the messages they count."""
        pull = self.pull
        if self.kv is None or pull is None or not pull.ack_later or self._totals_revision is None or self._fenced:
            return
        if not (self._holding() or (final and (self.lease is None or self.lease.holding()))):
            return  # not surely the aggregator: store and acknowledge nothing (the lease's renewal decides)
        replies = pull.take_unacked()  # with the totals of the same instant: every message they count
        record = FleetTotals(
            counting_since=self.aggregator.counting_since,
            written_at=self.aggregator.clock(),
            replica=self.replica,
            counted=pull.seen.ranges(),
            environments=self.aggregator.totals(),
        )
        try:
            self._totals_revision = await self.kv.update(TOTALS_KEY, encode_totals(record), last=self._totals_revision)
        except KeyWrongLastSequenceError:
            self._fenced = True  # another replica aggregates (or did): nothing of this is acknowledged
            pull.give_back(replies)
            return
        except Exception as exc:
            self.checkpoint_failures += 1
            now = time.monotonic()
            self._unstored_since = self._unstored_since or now
            if now - self._unstored_since < UNSTORED_AT_MOST:
                level = logging.DEBUG if self.checkpoint_failures > 1 else logging.WARNING
                log.log(level, "fleet: could not store the evaluation totals in %s: %r", BUCKET, exc)
                pull.give_back(replies)
                return
            log.warning("fleet: the evaluation totals could not be stored for %.0f s (%r): acknowledging what they "
                        "count anyway (a hand-over now would lose it)", now - self._unstored_since, exc)  # fmt: skip
        self._unstored_since = None
        await pull.ack(replies)

    async def checkpoint_forever(self) -> None:
        while True:
            pull = self.pull
            if pull is not None and pull.ack_later:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECKPOINT_EVERY):
                        await pull.crowded.wait()
            else:
                await asyncio.sleep(CHECKPOINT_EVERY)
            try:
                await self.checkpoint()
            except Exception:
                log.exception("fleet: storing the evaluation totals failed")

    def _holding(self) -> bool:
        """Whether this replica surely aggregates (its lease runs for a second more; always without a bucket)."""
        return self.leading and (self.lease is None or self.lease.holding())

    async def _read_backlog(self) -> None:
        try:
            info = await self._js.consumer_info(FLEET_STREAM, CONSUMER, timeout=2)
            self.backlog = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        except Exception:
            self.backlog = None

    async def stop_leading(self, release: bool = False) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        self.leading = False
        task, self._pull_task = self._pull_task, None
        if task is not None:
            if self.pull is not None:
                self.pull.stop()
            await asyncio.wait({task}, timeout=2)
            await cancel_and_wait(task)  # a pull stuck in a request (NATS away) is cancelled, until it ends
            if release:  # a clean stop: the last totals stored, what they count acknowledged
                try:
                    await self.checkpoint(final=True)
                except Exception as exc:
                    log.warning("fleet: storing the last evaluation totals failed: %r", exc)
        self._totals_revision = None
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
                counting_since=a.counting_since, flags=a.evaluations(query.project, query.environment, query.window)
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
        """A telemetry message received by subscription (without the fleet stream)."""
        self.on_telemetry(msg.subject, msg.data, None)

    def on_telemetry(self, subject: str, data: bytes, at: datetime | None) -> None:
        """One telemetry message, stored in the stream at ``at`` (None: it arrives now)."""
        self.handled += 1
        try:
            if subject.endswith(".heartbeat"):
                self.aggregator.heartbeat(decode_heartbeat(data), at)
            elif subject.endswith(".counts"):
                self.aggregator.counts(decode_counts(data), at)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.aggregator.bad_messages += 1
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "fleet: skipping an undecodable telemetry message on %s: %s", subject, exc)
        except Exception:  # a bug, never a reason to stop counting the rest: skipped, counted, logged
            self.aggregator.bad_messages += 1
            log.exception("fleet: a telemetry message on %s could not be aggregated", subject)

    async def open_stream(self, js: Any) -> None:
        """Pull telemetry from the fleet stream (created if missing); without it, subscribe as before."""
        try:
            await ensure_fleet_stream(js)
            self.pulling = True
            self._js = js
        except Exception as exc:
            self.pulling = False
            log.warning(
                "fleet: no telemetry stream %s (%r): subscribing to the telemetry instead; a burst this replica "
                "cannot read in time is lost", FLEET_STREAM, exc,
            )  # fmt: skip

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
            f"{prefix}*.*.*",  # the times only (not the lease, nor the totals: a key of one token)
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
            if not all(_KV_TOKEN.fullmatch(part) for part in where):
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


class FleetCollector(Collector):
    """The telemetry feed of one admin process, read at scrape time (``flagstream_fleet_*``)."""

    def __init__(self, fleet: Fleet, nc: Any) -> None:
        self.fleet = fleet
        self.nc = nc
        #: Slow-consumer events of this process's NATS connection (counted by ``count_slow_consumers``).
        self.slow_consumers = 0

    def count_slow_consumers(self) -> None:
        """Count (and log) the NATS client's slow-consumer errors, passing every error on to the handler it had."""
        previous = getattr(self.nc, "_error_cb", None)

        async def on_error(exc: Exception) -> None:
            if isinstance(exc, SlowConsumerError):
                self.slow_consumers += 1
                first = self.slow_consumers == 1 or self.slow_consumers % 1000 == 0
                level = logging.WARNING if first else logging.DEBUG
                log.log(level, "fleet: NATS slow consumer on %s (%d so far): messages dropped", exc.subject,
                        self.slow_consumers)  # fmt: skip
            if previous is not None:
                await previous(exc)

        self.nc._error_cb = on_error

    def collect(self) -> Iterator[Metric]:
        fleet, pull = self.fleet, self.fleet.pull
        yield _counter("flagstream_fleet_telemetry_handled", "Telemetry messages this replica aggregated",
                       fleet.handled)  # fmt: skip
        yield _counter("flagstream_fleet_telemetry_bad", "Telemetry messages skipped: not decodable (logged)",
                       fleet.aggregator.bad_messages)  # fmt: skip
        yield _counter("flagstream_fleet_telemetry_duplicates",
                       "Telemetry messages delivered again that this replica had counted already (skipped)",
                       pull.duplicates if pull is not None else 0)  # fmt: skip
        yield _counter("flagstream_fleet_telemetry_withheld",
                       "Telemetry messages read without surely holding the lease: not acknowledged, left for the "
                       "aggregator", pull.withheld if pull is not None else 0)  # fmt: skip
        yield _counter("flagstream_fleet_telemetry_pull_unanswered",
                       "Pull requests for telemetry that got no answer in time (NATS away, or this process starved)",
                       pull.unanswered if pull is not None else 0)  # fmt: skip
        yield _counter("flagstream_nats_slow_consumers",
                       "Slow-consumer errors of this process's NATS connection (messages dropped by the client)",
                       self.slow_consumers)  # fmt: skip
        yield _counter("flagstream_fleet_totals_unstored",
                       "Writes of the evaluation totals to the fleet bucket that failed (retried; after "
                       f"{UNSTORED_AT_MOST:g} s what they count is acknowledged anyway)",
                       fleet.checkpoint_failures)  # fmt: skip
        stats = getattr(self.nc, "stats", {}) or {}
        yield _counter("flagstream_nats_reconnects",
                       "Reconnections of this process's NATS connection (nats-server drops a slow consumer, too)",
                       int(stats.get("reconnects", 0)))  # fmt: skip
        yield GaugeMetricFamily("flagstream_fleet_aggregating", "1 if this replica aggregates the fleet's telemetry",
                                value=1 if fleet.leading else 0)  # fmt: skip
        backlog = GaugeMetricFamily(
            "flagstream_fleet_telemetry_backlog",
            "Telemetry messages the stream holds for the aggregator (pulled and not acknowledged, or not pulled yet); "
            "only on the aggregating replica",
        )
        if fleet.leading and fleet.backlog is not None:
            backlog.add_metric([], fleet.backlog)
        yield backlog


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
