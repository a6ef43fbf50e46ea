"""Sessions, sign-ins in flight and failed passwords, in the JetStream KV bucket ``flagstream_sessions``, shared by
every admin replica: a replica restart or another replica does not sign anyone out, and a sign-out, a
lock-out or an ended session is seen by every replica at once.

* ``s.<sha256(secret)>``: a session. The browser holds the secret in an HttpOnly cookie; the bucket holds only
  its digest, so reading the bucket does not give a usable session. Each has a CSRF token that writes must echo.
* ``t.<sha256(state)>``: an OpenID Connect sign-in in flight (nonce, PKCE verifier, the browser it belongs to).
  It is taken once: a replayed authorization response finds nothing.
* ``f.<sha256(login)>``: failed passwords of one login name, whether or not such a user exists.

The bucket's TTL (a day) removes what is left; each record's own expiry is checked on every read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from ..runtime import SESSIONS_BUCKET, ensure_bucket
from ..tokens import Grant
from .users import User

BUCKET = SESSIONS_BUCKET
#: The longest a session may last (the bucket's TTL); the default lifetime is shorter.
MAX_LIFETIME = timedelta(hours=24)
DEFAULT_LIFETIME = timedelta(hours=12)
#: Wrong passwords in a row after which a login name is locked, and for how long.
MAX_FAILURES = 5
LOCK_TIME = timedelta(minutes=15)
#: How long a sign-in at the provider may take, from the redirect there to the answer back.
SIGN_IN_TIME = timedelta(minutes=10)


def _digest(prefix: str, secret: str) -> str:
    return f"{prefix}." + hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class Session(msgspec.Struct, kw_only=True, omit_defaults=True):
    user_id: str
    name: str
    email: str = ""
    #: How they signed in: ``password`` or ``oidc`` (``issuer``).
    via: str
    issuer: str = ""
    #: Roles from the provider's groups at sign-in (the person's own grants are read from their record).
    group_grants: list[Grant] = []
    csrf: str
    created_at: datetime
    expires_at: datetime

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Failures(msgspec.Struct, kw_only=True):
    count: int
    last: datetime


class Pending(msgspec.Struct, kw_only=True):
    """An OpenID Connect sign-in between the redirect to the provider and its answer."""

    nonce: str
    verifier: str
    #: Digest of the random value in the browser's sign-in cookie: the answer must come back to that browser.
    browser: str
    return_to: str = "/ui/"
    created_at: datetime


class SessionStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, nc: NATS) -> SessionStore:
        js = nc.jetstream()
        kv = await ensure_bucket(
            js, BUCKET, ttl=MAX_LIFETIME.total_seconds(), description="Flagstream sessions and sign-ins"
        )
        return cls(kv)

    async def _get(self, key: str) -> tuple[bytes, int] | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, NotFoundError):
            return None
        return (entry.value, entry.revision) if entry.value else None

    # -- sessions ------------------------------------------------------------------------------------------

    async def start(
        self, user: User, *, via: str, issuer: str = "", group_grants: list[Grant] | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> tuple[str, Session]:  # fmt: skip
        """A new session for ``user``: (the secret for the cookie, the session)."""
        now = _now()
        secret = secrets.token_urlsafe(32)
        session = Session(
            user_id=user.id,
            name=user.name,
            email=user.email,
            via=via,
            issuer=issuer,
            group_grants=list(group_grants or []),
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + min(lifetime, MAX_LIFETIME),
        )
        await self._kv.create(_digest("s", secret), msgspec.json.encode(session))
        return secret, session

    async def get(self, secret: str) -> Session | None:
        """The live session whose secret this is, else None (unknown, signed out or expired)."""
        if not (20 <= len(secret) <= 100):
            return None
        found = await self._get(_digest("s", secret))
        if found is None:
            return None
        session = msgspec.json.decode(found[0], type=Session)
        return session if session.expires_at > _now() else None

    async def end(self, secret: str) -> None:
        """Sign out: the session is gone for every replica."""
        if 20 <= len(secret) <= 100:
            await self._kv.delete(_digest("s", secret))

    # -- failed passwords --------------------------------------------------------------------------------

    async def locked(self, login: str) -> bool:
        """Whether ``login`` has had ``MAX_FAILURES`` wrong passwords in a row, the last within ``LOCK_TIME``."""
        found = await self._get(_digest("f", login))
        if found is None:
            return False
        failures = msgspec.json.decode(found[0], type=Failures)
        return failures.count >= MAX_FAILURES and _now() - failures.last < LOCK_TIME

    async def failed(self, login: str) -> int:
        """Count one more wrong password for ``login`` (a run older than ``LOCK_TIME`` starts over)."""
        key = _digest("f", login)
        for _ in range(10):
            found = await self._get(key)
            now = _now()
            if found is None:
                try:
                    await self._kv.create(key, msgspec.json.encode(Failures(count=1, last=now)))
                    return 1
                except KeyWrongLastSequenceError:
                    continue
            failures = msgspec.json.decode(found[0], type=Failures)
            count = failures.count + 1 if now - failures.last < LOCK_TIME else 1
            try:
                await self._kv.update(key, msgspec.json.encode(Failures(count=count, last=now)), last=found[1])
                return count
            except KeyWrongLastSequenceError:
                continue
        return MAX_FAILURES

    async def succeeded(self, login: str) -> None:
        await self._kv.delete(_digest("f", login))

    # -- sign-ins at a provider ----------------------------------------------------------------------------

    async def expect(self, state: str, pending: Pending) -> None:
        await self._kv.create(_digest("t", state), msgspec.json.encode(pending))

    async def take(self, state: str) -> Pending | None:
        """The sign-in ``state`` belongs to, removed so it can be used once only; None if unknown, used or old."""
        if not (20 <= len(state) <= 200):
            return None
        key = _digest("t", state)
        found = await self._get(key)
        if found is None:
            return None
        try:
            await self._kv.delete(key, last=found[1])  # only one of two racing answers gets it
        except KeyWrongLastSequenceError:
            return None
        pending = msgspec.json.decode(found[0], type=Pending)
        return pending if _now() - pending.created_at < SIGN_IN_TIME else None
