"""The write rate per API token, shared by every admin replica.

One token bucket per API token in the JetStream KV bucket ``flagstream_ratelimit`` (``burst`` writes at once,
refilled at ``rate`` per second), spent with compare-and-set on the entry's revision: N admin replicas behind a
load balancer together admit the configured rate, not N times it. Two replicas spending the same bucket at the
same instant conflict on the revision; the loser reads the bucket again and retries.

The bucket's entries expire after an hour without writes (a full bucket, which is what an hour of refill gives
anyway). While the KV bucket cannot be reached, the replica limits with its own in-memory buckets
(``RateLimiter``, below): a write is never refused because the limiter's storage is down, and never unlimited.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from ..runtime import RATE_BUCKET, ensure_bucket

log = logging.getLogger("flagstream.admin.ratelimit")

#: Reads and compare-and-sets of one bucket before a write gives up (then it is told to retry shortly).
ATTEMPTS = 8
#: Seconds an unused token's bucket is kept (at least its full refill time).
KEEP = 3600.0

#: A limit key the bucket holds as it is (matched whole: ``re.match`` with a final ``$`` also takes a trailing
#: newline, which no KV key may have); any other is hashed.
_KEY = re.compile(r"[-_=.a-zA-Z0-9]{1,200}")


class RateLimiter:
    """A token bucket per key: ``burst`` writes at once, refilled at ``rate`` per second.

    ``take(key)`` spends one and returns 0, or returns the seconds until one is available (nothing spent).
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > 100_000:  # forget idle, full buckets so the map cannot grow without bound
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}
        return (1.0 - tokens) / self.rate


class Bucket(msgspec.Struct, array_like=True):
    tokens: float
    #: Wall-clock time (seconds since the epoch) of the last spend: replicas share it.
    at: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Bucket).decode


def _kv_key(key: str) -> str:
    return key if _KEY.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()


class SharedRateLimiter:
    """``await take(key)``: 0 after spending one write of ``key``'s bucket, else the seconds until one is
    available (nothing spent). Local buckets until :meth:`attach` (and whenever the KV bucket fails)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.time) -> None:
        self.local = RateLimiter(rate, burst)
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._kv: Any = None
        #: Writes limited by the local buckets because the KV bucket failed.
        self.fallbacks = 0

    async def attach(self, nc: Any) -> None:
        """Use the shared bucket (created if missing, with as many replicas as the event stream)."""
        self._kv = await ensure_bucket(nc.jetstream(), RATE_BUCKET, ttl=max(KEEP, self.burst / self.rate))

    async def take(self, key: str) -> float:
        if self._kv is None:
            return self.local.take(key)
        try:
            return await self._take_shared(_kv_key(key))
        except Exception as exc:  # NATS slow or down, the bucket deleted: limit here rather than not at all
            self.fallbacks += 1
            log.warning("rate limit: the shared bucket failed (%r); limiting with this replica's own", exc)
            return self.local.take(key)

    async def _take_shared(self, name: str) -> float:
        kv = self._kv
        for _ in range(ATTEMPTS):
            try:
                entry = await kv.get(name)
            except KeyNotFoundError:  # never used, expired or deleted: a full bucket
                entry = None
            now = self._clock()
            tokens, at = float(self.burst), now
            if entry is not None and entry.value:
                try:
                    stored = _decode(entry.value)
                    tokens, at = stored.tokens, stored.at
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.warning("rate limit: unreadable bucket %r replaced by a full one", name)
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            if tokens < 1.0:
                return (1.0 - tokens) / self.rate
            value = _encode(Bucket(tokens=tokens - 1.0, at=now))
            try:
                if entry is None:
                    await kv.create(name, value)
                else:
                    await kv.update(name, value, last=entry.revision)
                return 0.0
            except KeyWrongLastSequenceError:
                continue  # another write (maybe on another replica) spent it first: read again
        return min(1.0, 1.0 / self.rate)
