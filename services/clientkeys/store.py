"""Client-side keys in the JetStream KV bucket ``flagstream_clientkeys``, shared by every admin replica.

Records are never deleted: a revocation is a new revision saying who revoked the key and when (the bucket's
history is the audit trail), as for API tokens.

``lookup`` is on the hot path of every client-side evaluation, so it reads through a small cache: an answer
(found or not) is kept ``CACHE_SECONDS``. A key revoked on this replica is refused at once; on another replica
within ``CACHE_SECONDS``. While the bucket cannot be read, an entry already cached keeps answering (a browser is
not refused because NATS is restarting), and an unknown key is an error (``Unavailable``), never a pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from operator import attrgetter

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from ..runtime import CLIENT_KEYS_BUCKET, RevocableRecords, ensure_bucket
from .model import ClientKey, is_key, new_key

BUCKET = CLIENT_KEYS_BUCKET
#: How long a lookup's answer is reused before the bucket is read again.
CACHE_SECONDS = 1.0
#: Cached answers at most (a flood of made-up keys cannot grow the cache without bound).
CACHE_MAX = 10_000


class StoreUnavailable(Exception):
    """The bucket could not be read and nothing was cached for this key."""


class ClientKeyStore(RevocableRecords[ClientKey]):
    """The client-side keys of every project and environment."""

    BUCKET = BUCKET
    RECORD = ClientKey
    is_id = staticmethod(is_key)
    id_of = staticmethod(attrgetter("key"))

    def __init__(self, kv: KeyValue, js: JetStreamContext, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(kv, js)
        self._clock = clock
        self._cache: dict[str, tuple[float, ClientKey | None]] = {}
        self._reading: dict[str, asyncio.Future[ClientKey | None]] = {}

    @classmethod
    async def open(cls, nc: NATS) -> ClientKeyStore:
        """The bucket, created if missing (as many replicas as the event stream)."""
        js = nc.jetstream()
        return cls(await ensure_bucket(js, BUCKET, history=16, description="Flagstream client-side keys"), js)

    async def create(
        self, *, name: str, project: str, environment: str, origins: list[str], created_by: str
    ) -> ClientKey:
        record = ClientKey(
            key=new_key(),
            name=name,
            project=project,
            environment=environment,
            origins=origins,
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        await self._kv.create(record.key, msgspec.json.encode(record))
        self._cache.pop(record.key, None)
        return record

    async def lookup(self, key: str) -> ClientKey | None:
        """The live (not revoked) key, through the cache; None if unknown or revoked. Raises ``StoreUnavailable``.

        When the cached answer is too old, one read refreshes it however many requests ask at that moment."""
        if not is_key(key):
            return None
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < CACHE_SECONDS:
            record = cached[1]
        else:
            reading = self._reading.get(key)
            if reading is None:
                reading = asyncio.ensure_future(self._refresh(key))
                self._reading[key] = reading
                reading.add_done_callback(lambda _: self._reading.pop(key, None))
            record = await asyncio.shield(reading)
        return None if record is None or record.revoked else record

    async def _refresh(self, key: str) -> ClientKey | None:
        cached = self._cache.get(key)
        try:
            record = await self.get(key)
        except Exception as exc:
            if cached is None:
                raise StoreUnavailable(f"the client-side keys cannot be read: {exc!r}") from exc
            return cached[1]  # stale, but the best this replica knows
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (self._clock(), record)
        return record

    async def revoke(self, key: str, revoked_by: str) -> ClientKey | None:
        """Mark revoked (a new revision). None if there is no such key."""
        record = await super().revoke(key, revoked_by)
        self._cache.pop(key, None)
        return record
