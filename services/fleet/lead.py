"""One admin replica aggregates the fleet; the others ask it.

Every admin replica could subscribe to the telemetry of every SDK instance and aggregate it (10,000 instances:
a thousand heartbeats a second, each replica doing the same work). Instead the replicas elect one, the
*aggregator*, with a lease in the ``flagstream_fleet`` KV bucket (key ``_leader``: the holder and the time it
runs out, taken with the bucket's compare-and-set, renewed every ``RENEW_EVERY`` seconds, free after
``LEASE_SECONDS`` without renewal). Only the aggregator subscribes to the telemetry subjects; it answers the
other replicas' questions on ``flagstream-telemetry.fleet-query`` (request/reply, zlib-compressed JSON: a
10,000-instance list is about 2 MB of JSON). Each answer is computed from the one aggregate, so every replica
shows the same fleet.

When the aggregator stops (or loses the lease), another replica takes the lease within ``LEASE_SECONDS`` and
starts aggregating from the next heartbeats: instances are back within one reporting interval, evaluation
totals count on from what the previous aggregator stored (``feed.Fleet.checkpoint``), last-evaluated times
survive in the bucket.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ...events.telemetry import TELEMETRY_PREFIX
from .aggregator import Change

#: The lease's key in the fleet bucket (one token: never a ``<project>.<environment>.<flag>`` time).
LEASE_KEY = "_leader"
LEASE_SECONDS = 10.0
RENEW_EVERY = 3.0
#: Where the aggregator answers the other replicas (two tokens: no SDK credential may publish there).
QUERY_SUBJECT = f"{TELEMETRY_PREFIX}.fleet-query"


class _Holder(msgspec.Struct):
    replica: str
    until: float


class Lease:
    """The aggregator's lease, held by at most one replica at a time (compare-and-set on the bucket)."""

    def __init__(self, kv: KeyValue, replica: str, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.replica = replica
        self.clock = clock
        #: Until when (``clock`` time) this replica surely holds the lease: the end of the lease it last wrote.
        self.valid_until = 0.0

    def holding(self) -> bool:
        """Whether the lease this replica last took or renewed runs for a tenth of ``LEASE_SECONDS`` more."""
        return self.clock() + LEASE_SECONDS / 10 < self.valid_until

    async def hold(self) -> bool:
        """Take the lease if it is free or ran out, renew it if it is ours; return whether this replica holds it."""
        now = self.clock()
        value = msgspec.json.encode(_Holder(self.replica, now + LEASE_SECONDS))
        try:
            entry = await self.kv.get(LEASE_KEY)
        except KeyNotFoundError:
            try:
                await self.kv.create(LEASE_KEY, value)
            except KeyWrongLastSequenceError:
                return False  # another replica was faster
            self.valid_until = now + LEASE_SECONDS
            return True
        try:
            holder = msgspec.json.decode(entry.value or b"", type=_Holder)
        except msgspec.DecodeError:
            holder = _Holder("", 0.0)
        if holder.replica != self.replica and holder.until > now:
            return False
        try:
            await self.kv.update(LEASE_KEY, value, last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        self.valid_until = now + LEASE_SECONDS
        return True

    async def release(self) -> None:
        """Give the lease up at once (a clean stop), if it is still ours."""
        try:
            entry = await self.kv.get(LEASE_KEY)
            holder = msgspec.json.decode(entry.value or b"", type=_Holder)
            self.valid_until = 0.0
            if holder.replica == self.replica:
                await self.kv.update(LEASE_KEY, msgspec.json.encode(_Holder("", 0.0)), last=entry.revision)
        except Exception:  # it runs out by itself
            pass


class Query(msgspec.Struct, kw_only=True):
    """A replica's question to the aggregator."""

    op: str  # "status" or "evaluations"
    project: str
    environment: str
    changes: list[Change] = []
    window: float = 300.0


def pack(value: Any) -> bytes:
    return zlib.compress(msgspec.json.encode(value), 1)


def unpack(data: bytes, type: Any) -> Any:
    return msgspec.json.decode(zlib.decompress(data), type=type)
