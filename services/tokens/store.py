"""API tokens: the model, how a secret is checked, and the store (a JetStream key-value bucket).

A token's secret is ``fs_<id>_<secret>``: ``id`` (12 hex characters) finds the record, ``secret`` (32 random
bytes, URL-safe base64) proves possession. Only ``HMAC-SHA256(salt, secret)`` with a random per-token salt is
stored, and it is compared with ``hmac.compare_digest``. A slow KDF (PBKDF2, scrypt) is for low-entropy
passwords; a 256-bit random secret cannot be guessed, so a fast keyed hash loses nothing and keeps every API
request cheap, while the salt makes two stores (or two tokens) incomparable and rules out precomputed tables.

The bucket ``flagstream_tokens`` lives on the subjects ``$KV.flagstream_tokens.>``, outside ``flagstream.>``,
so SDK credentials (which may only read their environment's ``flagstream.<p>.<env>.>``) can never see it. Every
admin replica reads the same bucket, and it survives restarts. Records are never deleted: a revocation is a new
revision carrying who revoked it and when, so the bucket's history is the audit trail of token changes.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from ..runtime import TOKENS_BUCKET, ensure_bucket

BUCKET = TOKENS_BUCKET
PREFIX = "fs_"
# Each pattern is matched whole (``fullmatch``): ``re.match`` with a final ``$`` also takes a trailing newline.
_ID = re.compile(r"[0-9a-f]{12}")
_SHAPE = re.compile(r"fs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]*")


class Role(enum.StrEnum):
    """What a token may do. Each role includes the ones before it."""

    READER = "reader"  # read flags, segments, environments of its environments
    WRITER = "writer"  # and change them
    ADMIN = "admin"  # and manage tokens

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class TokenRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What is stored about a token (never the secret)."""

    id: str
    name: str
    role: Role
    #: Environment keys the token may act on; ``None``: every environment.
    environments: list[str] | None = None
    salt: str = ""
    digest: str = ""
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def covers(self, environment: str) -> bool:
        return self.environments is None or environment in self.environments


class TokenView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A token as the API shows it: no salt, no digest. ``token`` (the secret) only in the creation answer."""

    id: str
    name: str
    role: Role
    environments: list[str] | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    token: str | None = None


def view(record: TokenRecord, secret: str | None = None) -> TokenView:
    return TokenView(
        id=record.id,
        name=record.name,
        role=record.role,
        environments=record.environments,
        created_at=record.created_at,
        created_by=record.created_by,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        token=secret,
    )


def digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def new_secret() -> tuple[str, str]:
    """(id, full token string)."""
    token_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return token_id, f"{PREFIX}{token_id}_{secret}"


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token string, else ``None``."""
    match = _SHAPE.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def check_name(name: str) -> str | None:
    """Why ``name`` is refused, or None."""
    if not (0 < len(name) <= NAME_MAX) or not _NAME.fullmatch(name):
        return (
            f"a token name is 1 to {NAME_MAX} characters: letters, digits, space, . _ @ : - (alphanumeric first), "
            f"got {name!r:.80}"
        )
    return None


class TokenStore:
    """The tokens in the JetStream KV bucket ``flagstream_tokens``."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    @classmethod
    async def open(cls, nc: NATS) -> TokenStore:
        """The bucket, created if missing with as many replicas as the event stream (as available as it)."""
        js = nc.jetstream()
        return cls(await ensure_bucket(js, BUCKET, history=16), js)

    async def create(
        self, *, name: str, role: Role, environments: list[str] | None, created_by: str
    ) -> tuple[TokenRecord, str]:
        """A new token: its record (stored) and its secret (returned once, never stored)."""
        token_id, token = new_secret()
        salt = secrets.token_bytes(16)
        record = TokenRecord(
            id=token_id,
            name=name,
            role=role,
            environments=sorted(set(environments)) if environments is not None else None,
            salt=salt.hex(),
            digest=digest(salt, token).hex(),
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        await self._kv.create(token_id, msgspec.json.encode(record))
        return record, token

    async def get(self, token_id: str) -> TokenRecord | None:
        found = await self._read(token_id)
        return found[0] if found is not None else None

    async def _read(self, token_id: str) -> tuple[TokenRecord, int] | None:
        """The token's record and its KV revision, or None if there is no such token."""
        if not _ID.fullmatch(token_id):
            return None
        try:
            entry = await self._kv.get(token_id)
        except (KeyNotFoundError, NotFoundError):
            return None
        if entry.value is None:
            return None
        return msgspec.json.decode(entry.value, type=TokenRecord), entry.revision

    async def verify(self, token: str) -> TokenRecord | None:
        """The live (not revoked) record whose secret ``token`` is, else None. Constant-time comparison."""
        parts = split(token)
        if parts is None:
            return None
        record = await self.get(parts[0])
        if record is None or record.revoked:
            return None
        expected = bytes.fromhex(record.digest)
        if not hmac.compare_digest(digest(bytes.fromhex(record.salt), token), expected):
            return None
        return record

    async def revoke(self, token_id: str, revoked_by: str) -> TokenRecord | None:
        """Mark revoked (a new revision; the record stays for the audit). None if there is no such token."""
        found = await self._read(token_id)
        if found is None:
            return None
        record, revision = found
        if record.revoked:
            return record
        record.revoked_at = datetime.now(UTC)
        record.revoked_by = revoked_by
        await self._kv.update(token_id, msgspec.json.encode(record), last=revision)
        return record

    async def list(self) -> list[TokenRecord]:
        # The bucket's subjects from stream info (one request, consistent with every acknowledged write); nats-py's
        # kv.keys() makes a watcher that could report "no keys" for a token created an instant before.
        prefix = f"$KV.{BUCKET}."
        try:
            info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=f"{prefix}>")
        except NotFoundError:  # no bucket yet
            return []
        keys = [subject.removeprefix(prefix) for subject in (info.state.subjects or {})]
        found = [await self.get(k) for k in keys]
        return sorted((r for r in found if r is not None), key=lambda r: (r.created_at, r.id))

    async def history(self, token_id: str) -> list[TokenRecord]:
        """Every revision of one token's record: its creation and revocation, for the audit."""
        if not _ID.fullmatch(token_id):
            return []
        try:
            entries = await self._kv.history(token_id)
        except (KeyNotFoundError, NotFoundError):
            return []
        return [msgspec.json.decode(e.value, type=TokenRecord) for e in entries if e.value]
