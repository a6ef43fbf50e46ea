"""SDK credentials in the JetStream KV bucket ``flagstream_sdkcredentials``, shared by every admin replica.

The bucket lives on ``$KV.flagstream_sdkcredentials.>``, outside ``flagstream.>``, so no SDK credential can read
it. Records are never deleted: a revocation is a new revision saying who revoked the credential and when, so the
bucket's history is the audit trail (``history``), as for API tokens. Whoever runs nats-server turns the live
records into its users (``flagstream up`` does it on every change, ``runtime/up.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from ..runtime import SDK_CREDENTIALS_BUCKET, ensure_bucket
from .model import SdkCredential, is_id, new_credential

BUCKET = SDK_CREDENTIALS_BUCKET


class SdkCredentialStore:
    """The SDK credentials of every project and environment."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    @classmethod
    async def open(cls, nc: NATS) -> SdkCredentialStore:
        """The bucket, created if missing (as many replicas as the event stream)."""
        js = nc.jetstream()
        return cls(await ensure_bucket(js, BUCKET, history=16, description="Flagstream SDK credentials"), js)

    async def create(self, *, name: str, project: str, environment: str, created_by: str) -> tuple[SdkCredential, str]:
        """A new credential, stored; and its password, which is nowhere else."""
        record, password = new_credential(
            name=name, project=project, environment=environment, created_by=created_by, at=datetime.now(UTC)
        )
        await self._kv.create(record.id, msgspec.json.encode(record))
        return record, password

    async def _read(self, cred_id: str) -> tuple[SdkCredential, int] | None:
        if not is_id(cred_id):
            return None
        try:
            entry = await self._kv.get(cred_id)
        except (KeyNotFoundError, NotFoundError):
            return None
        if entry.value is None:
            return None
        return msgspec.json.decode(entry.value, type=SdkCredential), entry.revision

    async def get(self, cred_id: str) -> SdkCredential | None:
        """The record (revoked or not); None if there is no such credential."""
        found = await self._read(cred_id)
        return found[0] if found is not None else None

    async def revoke(self, cred_id: str, revoked_by: str) -> SdkCredential | None:
        """Mark revoked (a new revision; the record stays for the audit). None if there is no such credential."""
        found = await self._read(cred_id)
        if found is None:
            return None
        record, revision = found
        if not record.revoked:
            record.revoked_at = datetime.now(UTC)
            record.revoked_by = revoked_by
            await self._kv.update(cred_id, msgspec.json.encode(record), last=revision)
        return record

    async def list(self, project: str | None = None, environment: str | None = None) -> list[SdkCredential]:
        """Every credential (of this project and environment when given), oldest first."""
        prefix = f"$KV.{BUCKET}."
        try:
            info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=f"{prefix}>")
        except NotFoundError:
            return []
        found = [await self.get(s.removeprefix(prefix)) for s in (info.state.subjects or {})]
        return sorted(
            (
                r
                for r in found
                if r is not None
                and (project is None or r.project == project)
                and (environment is None or r.environment == environment)
            ),
            key=lambda r: (r.created_at, r.id),
        )

    async def live(self) -> list[SdkCredential]:
        """Every credential not revoked: the users nats-server must know."""
        return [r for r in await self.list() if not r.revoked]

    async def history(self, cred_id: str) -> list[SdkCredential]:
        """Every revision of one credential's record (its creation, its revocation), oldest first."""
        if not is_id(cred_id):
            return []
        try:
            entries = await self._kv.history(cred_id)
        except (KeyNotFoundError, NotFoundError, NoKeysError):
            return []
        return [msgspec.json.decode(e.value, type=SdkCredential) for e in entries if e.value]
