"""People: the record of each person who may sign in, in the JetStream KV bucket ``flagstream_users``.

A person is a local user (a login name and an Argon2id password hash) or someone who signed in through an
OpenID Connect provider (the provider's issuer and subject). Either way the record has a stable id (``u_`` and 16
hex characters) that every event they write carries, whatever their name or e-mail becomes.

Keys: ``user.<id>`` holds the record; ``idx.<digest>`` maps a login (local) or an issuer and subject (OIDC) to
the id, created with ``kv.create`` so two replicas can never make the same person twice; ``config.group-roles``
holds the provider groups' roles when an admin set them through the API. Records are never
deleted: disabling is a new revision, and the bucket keeps 16 revisions per key for the audit. The bucket lives
outside ``flagstream.>``: no SDK credential can read it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from ..changes import Conflict, InvalidInput
from ..runtime import USERS_BUCKET, ensure_bucket
from ..tokens import Grant
from .config import GroupRole

BUCKET = USERS_BUCKET
LOGIN_MAX = 64
NAME_MAX = 100
EMAIL_MAX = 254
# Each pattern is matched whole (``fullmatch``): ``re.match`` with a final ``$`` also takes a trailing newline.
_LOGIN = re.compile(r"[a-z0-9][a-z0-9._@+-]*")
_ID = re.compile(r"u_[0-9a-f]{16}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

Method = Literal["password", "oidc"]
#: The key of the groups-to-roles mapping set through the API (it replaces the configuration file's).
GROUP_ROLES = "config.group-roles"


class User(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What is stored about a person (the password only as its Argon2id hash)."""

    id: str
    #: How they sign in: ``password`` (a local user) or ``oidc`` (through the provider ``issuer``).
    method: Method
    #: The local login name (lower case), or the provider's subject for OIDC.
    login: str
    name: str
    email: str = ""
    issuer: str = ""
    password: str = ""
    #: Roles given to this person (an OIDC user also gets those of their groups at each sign-in).
    grants: list[Grant] = []
    #: Groups the provider said they are in at their last sign-in (informational).
    groups: list[str] = []
    disabled: bool = False
    #: Sessions made before this instant are over (an admin ended them, or the password changed).
    sessions_after: datetime | None = None
    created_at: datetime
    created_by: str
    updated_at: datetime | None = None
    updated_by: str = ""
    last_sign_in: datetime | None = None


class UserView(msgspec.Struct, kw_only=True):
    """A person as the API shows them: never the password hash."""

    id: str
    method: Method
    login: str
    name: str
    email: str
    issuer: str
    grants: list[Grant]
    groups: list[str]
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime | None
    updated_by: str
    last_sign_in: datetime | None
    sessions_after: datetime | None


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        method=user.method,
        login=user.login,
        name=user.name,
        email=user.email,
        issuer=user.issuer,
        grants=list(user.grants),
        groups=list(user.groups),
        disabled=user.disabled,
        created_at=user.created_at,
        created_by=user.created_by,
        updated_at=user.updated_at,
        updated_by=user.updated_by,
        last_sign_in=user.last_sign_in,
        sessions_after=user.sessions_after,
    )


def normal_login(login: str) -> str:
    """The login as stored and compared: trimmed and lower case."""
    return login.strip().lower()


def login_problem(login: str) -> str | None:
    if not (0 < len(login) <= LOGIN_MAX) or not _LOGIN.fullmatch(login):
        return (
            f"a login is 1 to {LOGIN_MAX} characters: lower-case letters, digits, . _ @ + - (a letter or digit first)"
        )
    return None


def name_problem(name: str) -> str | None:
    if not (0 < len(name.strip()) <= NAME_MAX) or any(ord(c) < 32 for c in name):
        return f"a name is 1 to {NAME_MAX} printable characters"
    return None


def email_problem(email: str) -> str | None:
    if email and (len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email)):
        return "an e-mail address looks like name@example.com"
    return None


def _index(method: Method, issuer: str, login: str) -> str:
    return "idx." + hashlib.sha256(f"{method}\n{issuer}\n{login}".encode()).hexdigest()[:48]


def _now() -> datetime:
    return datetime.now(UTC)


class UserStore:
    """The people in the KV bucket ``flagstream_users``, shared by every admin replica."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    @classmethod
    async def open(cls, nc: NATS) -> UserStore:
        js = nc.jetstream()
        return cls(await ensure_bucket(js, BUCKET, history=16, description="Flagstream people"), js)

    async def _claim(self, method: Method, issuer: str, login: str, user_id: str) -> bool:
        """Record ``login`` as ``user_id``'s; False if someone has it already."""
        try:
            await self._kv.create(_index(method, issuer, login), user_id.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def _lookup(self, method: Method, issuer: str, login: str) -> User | None:
        try:
            entry = await self._kv.get(_index(method, issuer, login))
        except (KeyNotFoundError, NotFoundError):
            return None
        return await self.get(entry.value.decode()) if entry.value else None

    async def create_local(
        self, *, login: str, name: str, email: str, password_hash: str, grants: list[Grant], created_by: str
    ) -> User:
        login = normal_login(login)
        user = User(
            id=f"u_{secrets.token_hex(8)}",
            method="password",
            login=login,
            name=name.strip(),
            email=email.strip(),
            password=password_hash,
            grants=grants,
            created_at=_now(),
            created_by=created_by,
        )
        if not await self._claim("password", "", login, user.id):
            raise Conflict(f"a user with the login {login!r} exists already")
        await self._kv.create(f"user.{user.id}", msgspec.json.encode(user))
        return user

    async def from_provider(self, *, issuer: str, subject: str, name: str, email: str, groups: list[str]) -> User:
        """The person the provider ``issuer`` knows as ``subject``: created at their first sign-in, their name,
        e-mail and groups refreshed at each."""
        found = await self._lookup("oidc", issuer, subject)
        if found is None:
            user = User(
                id=f"u_{secrets.token_hex(8)}",
                method="oidc",
                login=subject,
                issuer=issuer,
                name=name,
                email=email,
                groups=groups,
                created_at=_now(),
                created_by=f"sign-in via {issuer}",
                last_sign_in=_now(),
            )
            if await self._claim("oidc", issuer, subject, user.id):
                await self._kv.create(f"user.{user.id}", msgspec.json.encode(user))
                return user
            found = await self._lookup("oidc", issuer, subject)  # another replica made it a moment ago
            if found is None:
                raise Conflict(f"the person {subject!r} of {issuer} is being created; sign in again")

        def refresh(user: User) -> None:
            user.name, user.email, user.groups, user.last_sign_in = name, email, groups, _now()

        return await self.change(found.id, refresh)

    async def get(self, user_id: str) -> User | None:
        found = await self._read(user_id)
        return found[0] if found else None

    async def _read(self, user_id: str) -> tuple[User, int] | None:
        if not _ID.fullmatch(user_id):
            return None
        try:
            entry = await self._kv.get(f"user.{user_id}")
        except (KeyNotFoundError, NotFoundError):
            return None
        if not entry.value:
            return None
        return msgspec.json.decode(entry.value, type=User), entry.revision

    async def by_login(self, login: str) -> User | None:
        """The local user with this login, or None."""
        return await self._lookup("password", "", normal_login(login))

    async def change(self, user_id: str, mutate: Callable[[User], None]) -> User:
        """Apply ``mutate`` to the current record and store it; retried if another replica wrote in between."""
        for _ in range(10):
            found = await self._read(user_id)
            if found is None:
                raise KeyError(user_id)
            user, revision = found
            mutate(user)
            try:
                await self._kv.update(f"user.{user_id}", msgspec.json.encode(user), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return user
        raise Conflict(f"the user {user_id!r} keeps changing; try again")

    async def list(self) -> list[User]:
        prefix = f"$KV.{BUCKET}.user."
        try:
            info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=f"{prefix}>")
        except NotFoundError:
            return []
        ids = [s.removeprefix(prefix) for s in (info.state.subjects or {})]
        found = [await self.get(i) for i in ids]
        return sorted((u for u in found if u is not None), key=lambda u: (u.created_at, u.id))

    async def group_roles(self) -> tuple[list[GroupRole], int] | None:
        """The groups-to-roles mapping set through the API, and its revision; None if never set (or removed)."""
        try:
            entry = await self._kv.get(GROUP_ROLES)
        except (KeyNotFoundError, NotFoundError):
            return None
        if not entry.value:
            return None
        return msgspec.json.decode(entry.value, type=list[GroupRole]), entry.revision

    async def set_group_roles(self, roles: list[GroupRole] | None) -> None:
        """Store the mapping every replica uses from now on; None: back to the configuration file's."""
        if roles is None:
            try:
                await self._kv.delete(GROUP_ROLES)
            except (KeyNotFoundError, NotFoundError):
                pass
            return
        await self._kv.put(GROUP_ROLES, msgspec.json.encode(roles))

    async def history(self, user_id: str) -> list[User]:
        if not _ID.fullmatch(user_id):
            return []
        try:
            entries = await self._kv.history(f"user.{user_id}")
        except (KeyNotFoundError, NotFoundError):
            return []
        return [msgspec.json.decode(e.value, type=User) for e in entries if e.value]


def check_new_user(login: str, name: str, email: str) -> None:
    """Raise ``InvalidInput`` naming each problem of a new local user's fields."""
    for problem in (login_problem(normal_login(login)), name_problem(name), email_problem(email.strip())):
        if problem:
            raise InvalidInput(problem)
