"""People's sign-in and their sessions: the rules, over the two stores (``users``, ``sessions``) and the OpenID
Connect client (``oidc``). The admin's HTTP edge (``services/admin/people.py``) and its authentication
(``services/admin/auth.py``) call this; nothing here speaks HTTP to browsers.

A password sign-in that fails, for whatever reason (no such login, a wrong password, a disabled user, a login
locked after ``MAX_FAILURES`` wrong passwords), gets the same answer after the same work, so the answer does not
tell whether a login exists. Wrong passwords are counted per login name, existing or not, in the shared bucket:
the lock holds on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.client import Client as NATS

from ..changes import AdminError, InvalidInput, NotFound
from ..tokens import Grant
from .config import GroupRole, PeopleConfig, group_grants
from .oidc import Begun, OidcClient, SignInFailed
from .passwords import burn_time, hash_password, needs_rehash, password_problem, verify_password
from .sessions import LOCK_TIME, MAX_FAILURES, Pending, Session, SessionStore
from .users import User, UserStore, check_new_user, email_problem, name_problem, normal_login

log = logging.getLogger("flagstream.people")

REFUSED = (
    f"wrong login or password (after {MAX_FAILURES} wrong passwords in a row a login is locked for "
    f"{int(LOCK_TIME.total_seconds() // 60)} minutes)"
)


class SignInRefused(AdminError):
    """A password sign-in refused (401); the message never says why."""


@dataclass(frozen=True)
class SignedIn:
    """A live session and the person behind it, with the grants they hold now."""

    session: Session
    user: User
    grants: tuple[Grant, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _browser_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class People:
    def __init__(self, users: UserStore, sessions: SessionStore, config: PeopleConfig) -> None:
        self.users = users
        self.sessions = sessions
        self.config = config
        self.oidc = OidcClient(config.oidc) if config.oidc is not None else None

    @classmethod
    async def open(cls, nc: NATS, config: PeopleConfig | None = None) -> People:
        return cls(await UserStore.open(nc), await SessionStore.open(nc), config or PeopleConfig())

    # -- signing in and out --------------------------------------------------------------------------------

    async def sign_in(self, login: str, password: str) -> tuple[str, Session]:
        """A new session for the local user ``login`` if ``password`` is theirs: (cookie secret, session)."""
        if not self.config.passwords:
            raise SignInRefused("password sign-in is turned off here: use single sign-on")
        login = normal_login(login)[:200]
        locked = await self.sessions.locked(login)
        user = await self.users.by_login(login) if not locked else None
        if user is None or not user.password or user.disabled:
            await burn_time(password)
            ok = False
        else:
            ok = await verify_password(user.password, password)
        if locked or not ok:
            count = await self.sessions.failed(login) if not locked else MAX_FAILURES
            log.warning(
                "password sign-in refused for %s (%s)",
                f"user {user.id}" if user is not None else "a login that is not a user's (or is locked)",
                "locked" if locked or count >= MAX_FAILURES else f"{count} wrong in a row",
            )
            raise SignInRefused(REFUSED)
        assert user is not None
        await self.sessions.succeeded(login)
        if needs_rehash(user.password):
            fresh = await hash_password(password)
            user = await self.users.change(user.id, lambda u: setattr(u, "password", fresh))
        user = await self.users.change(user.id, lambda u: setattr(u, "last_sign_in", _now()))
        secret, session = await self.sessions.start(user, via="password", lifetime=self.config.session_lifetime)
        log.info("user %s (%s) signed in with a password", user.id, user.name)
        return secret, session

    async def resolve(self, secret: str) -> SignedIn | None:
        """The person whose session cookie this is, if the session is live and they may still sign in."""
        session = await self.sessions.get(secret)
        if session is None:
            return None
        user = await self.users.get(session.user_id)
        if user is None or user.disabled:
            return None
        if user.sessions_after is not None and session.created_at <= user.sessions_after:
            return None
        return SignedIn(session, user, (*user.grants, *session.group_grants))

    async def sign_out(self, secret: str) -> None:
        await self.sessions.end(secret)

    # -- single sign-on ------------------------------------------------------------------------------------

    def _provider(self) -> OidcClient:
        if self.oidc is None:
            raise NotFound("single sign-on is not configured here (see docs/security.md)")
        return self.oidc

    async def begin_sso(self, redirect_uri: str, return_to: str = "/ui/") -> tuple[str, str]:
        """(the provider URL to send the browser to, the value for the browser's sign-in cookie)."""
        begun: Begun = await self._provider().begin(redirect_uri)
        browser = secrets.token_urlsafe(32)
        await self.sessions.expect(
            begun.state,
            Pending(nonce=begun.nonce, verifier=begun.verifier, browser=_browser_digest(browser),
                    return_to=return_to, created_at=_now()),
        )  # fmt: skip
        return begun.url, browser

    async def finish_sso(
        self, *, state: str, code: str, browser: str | None, redirect_uri: str, iss: str | None = None
    ) -> tuple[str, Session, str]:
        """The provider's answer checked and turned into a session: (cookie secret, session, where to go).
        ``iss``: the answer's issuer parameter (RFC 9207), when the provider sends one."""
        provider = self._provider()
        pending = await self.sessions.take(state)
        if pending is None:
            raise SignInFailed("this sign-in answer is unknown, was used already, or is too old: sign in again")
        if browser is None or not hmac.compare_digest(_browser_digest(browser), pending.browser):
            raise SignInFailed("this sign-in answer belongs to a sign-in started in another browser")
        if iss is not None and iss != provider.config.issuer:
            raise SignInFailed(f"this sign-in answer comes from another issuer ({iss[:100]})")
        identity = await provider.finish(code=code, verifier=pending.verifier, nonce=pending.nonce,
                                         redirect_uri=redirect_uri)  # fmt: skip
        user = await self.users.from_provider(
            issuer=identity.issuer, subject=identity.subject, name=identity.name, email=identity.email,
            groups=identity.groups,
        )  # fmt: skip
        if user.disabled:
            raise SignInFailed("this person is disabled in Flagstream: ask an admin")
        grants = group_grants(identity.groups, (await self.group_roles())[0])
        secret, session = await self.sessions.start(
            user, via="oidc", issuer=identity.issuer, group_grants=grants, lifetime=self.config.session_lifetime
        )
        log.info("user %s (%s) signed in via %s", user.id, user.name, identity.issuer)
        return secret, session, pending.return_to

    async def group_roles(self) -> tuple[list[GroupRole], str]:
        """The provider groups' roles in force, and where they come from: ``api`` (set by an admin, shared by every
        replica) or ``file`` (the configuration's ``oidc.roles``)."""
        stored = await self.users.group_roles()
        if stored is not None:
            return stored[0], "api"
        return (list(self.config.oidc.roles) if self.config.oidc is not None else []), "file"

    async def set_group_roles(self, roles: list[GroupRole] | None, *, by: str) -> None:
        await self.users.set_group_roles(roles)
        log.info("the provider groups' roles %s by %s", "set" if roles is not None else "reset to the file's", by)

    # -- managing people -----------------------------------------------------------------------------------

    async def create_user(
        self, *, login: str, name: str, email: str, password: str, grants: list[Grant], by: str
    ) -> User:
        check_new_user(login, name, email)
        problem = password_problem(password)
        if problem:
            raise InvalidInput(f"password: {problem}")
        user = await self.users.create_local(
            login=login, name=name, email=email, password_hash=await hash_password(password), grants=grants,
            created_by=by,
        )  # fmt: skip
        log.info("user %s (%s) created by %s", user.id, user.login, by)
        return user

    async def _change(self, user_id: str, by: str, mutate: object) -> User:
        def apply(user: User) -> None:
            mutate(user)  # type: ignore[operator]
            user.updated_at = _now()
            user.updated_by = by

        try:
            return await self.users.change(user_id, apply)
        except KeyError:
            raise NotFound(f"user {user_id!r} not found") from None

    async def update_user(
        self, user_id: str, *, by: str, name: str | None = None, email: str | None = None,
        grants: list[Grant] | None = None, disabled: bool | None = None,
    ) -> User:  # fmt: skip
        for problem in (name_problem(name) if name is not None else None,
                        email_problem(email.strip()) if email is not None else None):  # fmt: skip
            if problem:
                raise InvalidInput(problem)

        def mutate(user: User) -> None:
            if name is not None:
                user.name = name.strip()
            if email is not None:
                user.email = email.strip()
            if grants is not None:
                user.grants = list(grants)
            if disabled is not None:
                user.disabled = disabled
                if disabled:
                    user.sessions_after = _now()

        user = await self._change(user_id, by, mutate)
        log.info("user %s changed by %s", user_id, by)
        return user

    async def set_password(self, user_id: str, password: str, *, by: str) -> User:
        """A new password (reset by an admin): every session of the person ends."""
        problem = password_problem(password)
        if problem:
            raise InvalidInput(f"password: {problem}")
        current = await self.users.get(user_id)
        if current is None:
            raise NotFound(f"user {user_id!r} not found")
        if current.method != "password":
            raise InvalidInput(f"user {user_id!r} signs in via {current.issuer}: their password is the provider's")
        hashed = await hash_password(password)

        def mutate(user: User) -> None:
            user.password = hashed
            user.sessions_after = _now()

        user = await self._change(user_id, by, mutate)
        await self.sessions.succeeded(user.login)  # a reset also lifts a lock-out
        log.info("password of user %s set by %s; their sessions ended", user_id, by)
        return user

    async def end_sessions(self, user_id: str, *, by: str) -> User:
        user = await self._change(user_id, by, lambda u: setattr(u, "sessions_after", _now()))
        log.info("sessions of user %s ended by %s", user_id, by)
        return user
