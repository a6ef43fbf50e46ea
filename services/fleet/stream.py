"""The fleet's telemetry stream: heartbeats and evaluation counts held by JetStream until the aggregator counted them.

SDK clients publish telemetry over core NATS, fire and forget (``sdk/telemetry.py``). Read by a plain
subscription, 10,000 instances' reports meet an aggregator that is briefly starved of CPU: nats-server buffers
what the process does not read and, past its limits, drops the connection as a slow consumer with everything
buffered (bench/README.md: 3.59 of 8 million evaluations counted at load 19). Instead the stream
``FLAGSTREAM_FLEET`` captures both subjects (a core publish is stored like any other, so SDKs, old ones too,
change nothing) and the aggregator *pulls* them through the durable consumer ``fleet-aggregator``, at most
``PULL_BATCH`` messages per request: nats-server never sends more than was asked for, so a starved aggregator
falls behind and catches up, and a stopped one's backlog waits in the stream for the replica that takes over.

* **Interest retention**: a message is removed once the consumer acknowledged it (the stream holds the backlog,
  not a history), within ``MAX_AGE`` and ``MAX_BYTES`` (oldest dropped first: an hour, or 1 GiB, about 17 minutes
  of 10,000 instances with no aggregator at all).
* **Acknowledged one by one, once counted** (``AckExplicit``; not ``AckAll``, whose acknowledgement of one message
  covers every earlier one: the first acknowledgement of a new aggregator would drop the batch its predecessor
  pulled and never counted). What a replica pulled and did not acknowledge (it died, or was starved past its lease)
  is delivered again after ``ACK_WAIT``, to whichever replica aggregates then.
* **Counted once**: a message delivered again to the replica that already counted it (its acknowledgement was
  lost) is recognised by its stream sequence (``Seen``) and skipped (``Pull.duplicates``).
* **Time**: a message read late counts at the time the stream stored it, not when it was read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from ...events import STREAM as EVENT_STREAM
from ...events.telemetry import counts_subject, heartbeat_subject
from ..runtime import while_jetstream_settles

log = logging.getLogger("flagstream.admin.fleet")

FLEET_STREAM = "FLAGSTREAM_FLEET"
CONSUMER = "fleet-aggregator"
MAX_AGE = 3600.0
MAX_BYTES = 1 << 30
#: Messages asked for per pull request, and how long nats-server holds a request open waiting for them.
PULL_BATCH = 500
PULL_EXPIRES = 2.0
#: Seconds after which a message pulled and not acknowledged is delivered again.
ACK_WAIT = 30.0
#: Messages delivered and not acknowledged at most (a dead replica's last batch plus the next one's).
MAX_ACK_PENDING = 20 * PULL_BATCH


def fleet_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=FLEET_STREAM,
        description="flagstream fleet telemetry, until the aggregating admin replica counted it",
        subjects=[heartbeat_subject("*", "*"), counts_subject("*", "*")],
        retention=RetentionPolicy.INTEREST,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=MAX_AGE,
        max_bytes=MAX_BYTES,
        num_replicas=replicas,
    )


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT,
        max_ack_pending=MAX_ACK_PENDING,
    )


async def ensure_fleet_stream(js: Any, settle: float = 30.0) -> None:
    """The stream and its durable consumer, created if missing (as many replicas as the event stream). The
    consumer must exist before telemetry arrives: an interest stream keeps nothing nobody consumes."""

    async def attempt() -> None:
        try:
            await js.stream_info(FLEET_STREAM)
        except NotFoundError:
            replicas = (await js.stream_info(EVENT_STREAM)).config.num_replicas or 1
            await js.add_stream(fleet_stream_config(replicas))
        try:
            info = await js.consumer_info(FLEET_STREAM, CONSUMER)
        except NotFoundError:
            await js.add_consumer(FLEET_STREAM, consumer_config())
            return
        if info.config.ack_policy != AckPolicy.EXPLICIT:  # made by a development version (AckAll): made anew
            log.warning("fleet: recreating the telemetry consumer %s (acknowledged per message now)", CONSUMER)
            await js.delete_consumer(FLEET_STREAM, CONSUMER)
            await js.add_consumer(FLEET_STREAM, consumer_config())

    await while_jetstream_settles("the fleet's telemetry stream", attempt, settle)


class Seen:
    """Stream sequences counted by this replica, as sorted disjoint ranges (a steady flow is one range)."""

    def __init__(self, max_ranges: int = 10_000) -> None:
        self.max_ranges = max_ranges
        self._starts: list[int] = []
        self._ends: list[int] = []

    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self._starts, self._ends, strict=True))

    def add_range(self, first: int, last: int) -> None:
        """Every sequence from ``first`` to ``last`` (ranges read back from storage, oldest first: appended)."""
        if first > last:
            return
        starts, ends = self._starts, self._ends
        if not ends or first > ends[-1] + 1:
            starts.append(first)
            ends.append(last)
        elif first >= starts[-1]:
            ends[-1] = max(ends[-1], last)
        else:  # not in order (never written so): merged into the whole
            merged: list[list[int]] = []
            for a, b in sorted([*zip(starts, ends, strict=True), (first, last)]):
                if merged and a <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b])
            self._starts = [a for a, _ in merged]
            self._ends = [b for _, b in merged]
        while len(self._starts) > self.max_ranges:
            del self._starts[0], self._ends[0]

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self._starts, seq) - 1
        return i >= 0 and seq <= self._ends[i]

    def add(self, seq: int) -> None:
        starts, ends = self._starts, self._ends
        if ends and seq == ends[-1] + 1:
            ends[-1] = seq
            return
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and seq <= ends[i]:
            return
        if i >= 0 and seq == ends[i] + 1:
            ends[i] = seq
        else:
            i += 1
            starts.insert(i, seq)
            ends.insert(i, seq)
        if i + 1 < len(starts) and starts[i + 1] == ends[i] + 1:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        if len(starts) > self.max_ranges:
            del starts[0], ends[0]


_STATUS = "Status"
_NEXT = f"$JS.API.CONSUMER.MSG.NEXT.{FLEET_STREAM}.{CONSUMER}"


class Pull:
    """Pulls the stream through the consumer, batch after batch, handing each message to ``handle(subject,
    data, stored_at)`` (synchronous: a message is counted before it is acknowledged) until stopped (``stop``).

    ``may_ack()``: whether this replica still surely holds the aggregator's lease. When it does not (a process
    starved past its lease, continued while another replica took over), it acknowledges nothing and asks for
    nothing more: what it read is delivered again to the replica that aggregates now.

    ``ack_later``: acknowledge nothing by itself; the caller takes the acknowledgements due (``take_unacked``),
    stores what the messages counted to, and only then sends them (``ack``): a message is acknowledged once the
    totals that include it are stored (``feed.Fleet.checkpoint``). ``seen``: the sequences counted already (those
    the stored totals include)."""

    def __init__(
        self,
        nc: Any,
        handle: Callable[[str, bytes, datetime], None],
        *,
        may_ack: Callable[[], bool] = lambda: True,
        batch: int = PULL_BATCH,
        expires: float = PULL_EXPIRES,
        ack_later: bool = False,
        seen: Seen | None = None,
    ) -> None:
        self.nc = nc
        self.handle = handle
        self.may_ack = may_ack
        self.batch = batch
        self.expires = expires
        self.ack_later = ack_later
        self.seen = seen if seen is not None else Seen()
        #: With ``ack_later``: the acknowledgement subjects of the messages handled, not sent yet (oldest first).
        self.unacked: list[str] = []
        #: Set when ``unacked`` holds half of what nats-server lets the consumer have unacknowledged.
        self.crowded = asyncio.Event()
        #: Messages delivered again that this replica had already counted (skipped); read without the lease's
        #: certainty (not acknowledged, left for the aggregator); pull requests that got no answer at all (NATS
        #: away, or this process starved past the request's expiry).
        self.duplicates = 0
        self.withheld = 0
        self.unanswered = 0
        self._got = 0
        self._done = asyncio.Event()
        self._missing = False
        self._stopping = False

    def stop(self) -> None:
        """Ask ``run`` to end: it does at its next turn (at once if it waits for an answer)."""
        self._stopping = True
        self._done.set()

    async def run(self) -> None:
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=self._on_message)
        request = msgspec.json.encode({"batch": self.batch, "expires": int(self.expires * 1e9)})
        try:
            while not self._stopping:
                if not self.may_ack():  # until the lease is renewed (this goes on) or lost (this is stopped)
                    await asyncio.sleep(0.1)
                    continue
                self._got, self._missing = 0, False
                self._done.clear()
                await self.nc.publish(_NEXT, request, reply=inbox)
                try:
                    async with asyncio.timeout(self.expires + 10):  # not wait_for: it may drop a cancellation
                        await self._done.wait()
                except TimeoutError:
                    self.unanswered += 1
                if self._missing:  # no such consumer (deleted, or JetStream restarting): set it up again
                    log.warning("fleet: the telemetry consumer %s is missing; creating it again", CONSUMER)
                    with contextlib.suppress(Exception):
                        await ensure_fleet_stream(self.nc.jetstream(), settle=5)
                    await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        reply = msg.reply
        if not reply.startswith("$JS.ACK."):
            status = msg.headers.get(_STATUS) if msg.headers else None
            if status == "503":
                self._missing = True
            self._done.set()  # 408 the request expired, 409 the consumer changed, 503 no consumer: ask again
            return
        tokens = reply.split(".")
        # $JS.ACK.<stream>.<consumer>.<delivered>.<seq>.<cseq>.<ns>.<pending> (9 tokens), or with a domain
        # and an account hash in front of the stream (12 tokens, with a random token at the end).
        at = 2 if len(tokens) == 9 else 4
        delivered, seq, ns = tokens[at + 2], tokens[at + 3], tokens[at + 5]
        sequence = int(seq)
        self._got += 1
        if self._got >= self.batch:
            self._done.set()
        if delivered != "1" and sequence in self.seen:
            self.duplicates += 1
        else:
            self.handle(msg.subject, msg.data, datetime.fromtimestamp(int(ns) / 1e9, UTC))
            self.seen.add(sequence)
        if not self.may_ack():
            self.withheld += 1
            return
        if self.ack_later:
            self.unacked.append(reply)
            if len(self.unacked) >= MAX_ACK_PENDING // 2:
                self.crowded.set()
            return
        try:
            await self.nc.publish(reply, b"+ACK")
        except Exception as exc:  # delivered again after ACK_WAIT, and then skipped (``seen``)
            log.debug("fleet: acknowledging telemetry failed: %r", exc)

    def take_unacked(self) -> list[str]:
        """The acknowledgements due (``ack_later``), handed over to the caller: ``ack`` them once stored."""
        taken, self.unacked = self.unacked, []
        self.crowded.clear()
        return taken

    def give_back(self, replies: list[str]) -> None:
        """Acknowledgements taken and not sent (storing failed): due again, before the newer ones."""
        self.unacked[:0] = replies

    async def ack(self, replies: list[str]) -> None:
        for reply in replies:
            try:
                await self.nc.publish(reply, b"+ACK")
            except Exception as exc:  # delivered again after ACK_WAIT, and then skipped (``seen``)
                log.debug("fleet: acknowledging telemetry failed: %r", exc)
