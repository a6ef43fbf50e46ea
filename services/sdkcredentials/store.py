"""SDK credentials in the JetStream KV bucket ``flagstream_sdkcredentials``, shared by every admin replica.

The bucket lives on ``$KV.flagstream_sdkcredentials.>``, outside ``flagstream.>``, so no SDK credential can read
it. Records are never deleted: a revocation is a new revision saying who revoked the credential and when, so the
bucket's history is the audit trail (``history``), as for API tokens. Whoever runs nats-server turns the live
records into its users (``flagstream up`` does it on every change, ``runtime/up.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import attrgetter

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError

from ..runtime import SDK_CREDENTIALS_BUCKET, RevocableRecords, ensure_bucket
from .model import SdkCredential, is_id, new_credential

BUCKET = SDK_CREDENTIALS_BUCKET


class SdkCredentialStore(RevocableRecords[SdkCredential]):
    """The SDK credentials of every project and environment."""

    BUCKET = BUCKET
    RECORD = SdkCredential
    is_id = staticmethod(is_id)
    id_of = staticmethod(attrgetter("id"))

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
