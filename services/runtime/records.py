"""Records in a JetStream KV bucket that are revoked, never deleted (client-side keys, SDK credentials).

A revocation is a new revision saying who revoked the record and when, so the bucket's history is the audit
trail. The record's key in the bucket is its id; ids that are not well formed are never read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue


class Revocable(Protocol):
    project: str
    environment: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def revoked(self) -> bool: ...


R = TypeVar("R", bound=Revocable)


class RevocableRecords(Generic[R]):
    """A bucket of records of type ``RECORD``, each stored under its id (``id_of``), checked by ``is_id``."""

    BUCKET: ClassVar[str]
    RECORD: ClassVar[type[Any]]
    is_id: ClassVar[Callable[[str], bool]]
    id_of: ClassVar[Callable[[Any], str]]

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    async def _read(self, record_id: str) -> tuple[R, int] | None:
        if not type(self).is_id(record_id):
            return None
        try:
            entry = await self._kv.get(record_id)
        except (KeyNotFoundError, NotFoundError):
            return None
        if entry.value is None:
            return None
        return msgspec.json.decode(entry.value, type=self.RECORD), entry.revision

    async def get(self, record_id: str) -> R | None:
        """The record (revoked or not), read now; None if there is no such record."""
        found = await self._read(record_id)
        return found[0] if found is not None else None

    async def revoke(self, record_id: str, revoked_by: str) -> R | None:
        """Mark revoked (a new revision; the record stays for the audit). None if there is no such record."""
        found = await self._read(record_id)
        if found is None:
            return None
        record, revision = found
        if not record.revoked:
            record.revoked_at = datetime.now(UTC)
            record.revoked_by = revoked_by
            await self._kv.update(record_id, msgspec.json.encode(record), last=revision)
        return record

    async def list(self, project: str | None = None, environment: str | None = None) -> list[R]:
        """Every record (of this project and environment when given), oldest first."""
        prefix = f"$KV.{self.BUCKET}."
        try:
            info = await self._js.stream_info(f"KV_{self.BUCKET}", subjects_filter=f"{prefix}>")
        except NotFoundError:
            return []
        found = [await self.get(s.removeprefix(prefix)) for s in (info.state.subjects or {})]
        id_of = type(self).id_of
        return sorted(
            (
                r
                for r in found
                if r is not None
                and (project is None or r.project == project)
                and (environment is None or r.environment == environment)
            ),
            key=lambda r: (r.created_at, id_of(r)),
        )
