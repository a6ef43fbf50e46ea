"""Fixtures for people: the real admin app over a real nats-server (ASGI transport), an operator client that
manages people, and "browsers": HTTP clients with their own cookie jar that sign in as a person."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from flagstream.services.admin.app import create_app
from flagstream.services.people import GroupRole, PeopleConfig
from tests.helpers import ADMIN_TOKEN, auth_headers

API = "/api/v1/projects/default"
#: Long enough for the password rules; every test person has it unless a test says otherwise.
PASSWORD = "correct horse battery staple"


@dataclass
class Browser:
    """One browser: a cookie jar, and the CSRF token of its session once signed in."""

    http: httpx.AsyncClient
    csrf: str = ""

    async def sign_in(self, login: str, password: str = PASSWORD) -> httpx.Response:
        answer = await self.http.post("/auth/password", json={"login": login, "password": password})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf"]
        return answer

    async def write(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A change made the way the UI makes it: the session cookie and the CSRF header."""
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)


@dataclass
class Site:
    app: Starlette
    op: httpx.AsyncClient

    @contextlib.asynccontextmanager
    async def browser(self) -> AsyncIterator[Browser]:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
            yield Browser(http)

    async def user(self, login: str, grants: list[dict[str, str]], password: str = PASSWORD, **fields: Any) -> dict:
        body = {"login": login, "name": fields.pop("name", login.capitalize()), "password": password,
                "grants": grants, **fields}  # fmt: skip
        answer = await self.op.post("/api/v1/users", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def env(self, key: str, production: bool = False) -> None:
        answer = await self.op.post(f"{API}/environments", json={"key": key, "production": production})
        assert answer.status_code == 201, answer.text


@contextlib.asynccontextmanager
async def site(nats_url: str, config: PeopleConfig | None = None, **options: Any) -> AsyncIterator[Site]:
    """An admin replica (its own app and lifespan) and an operator client of it."""
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, people=config, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as op:
            yield Site(app, op)


#: Where the provider sends the browser back, for an admin app reached through httpx's ASGI transport.
CALLBACK = "http://admin/auth/oidc/callback"


def sso_config(issuer: str, roles: list[dict[str, Any]] | None = None, **options: Any) -> PeopleConfig:
    """Sign-in through the test provider as client ``flagstream``, its groups mapped to roles by ``roles``."""
    from flagstream.services.people import OidcConfig
    from tests.oidc.provider import CLIENT_ID, CLIENT_SECRET

    oidc = OidcConfig(
        issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, label="Test SSO", redirect_url=CALLBACK,
        scopes=["openid", "profile", "email", "groups"], roles=msgspec.convert(roles or [], list[GroupRole]),
        **options,
    )  # fmt: skip
    return PeopleConfig(oidc=oidc)


async def sign_in_via(browser: Browser, issuer: str, login: str) -> httpx.Response:
    """The whole single sign-on as a browser makes it: Flagstream's start, the provider's login page, the answer
    back to Flagstream. Returns Flagstream's answer to the callback."""
    from tests.oidc.provider import log_in_at_provider

    start = await browser.http.get("/auth/oidc/start")
    assert start.status_code == 303, start.text
    async with httpx.AsyncClient(base_url=issuer, timeout=30) as at_provider:
        back = await log_in_at_provider(at_provider, start.headers["location"], login)
    answer = await browser.http.get(back)
    if answer.status_code == 303:
        me = await browser.http.get("/api/v1/whoami")
        browser.csrf = me.json().get("csrf") or ""
    return answer


@pytest.fixture
async def people(nats_url: str) -> AsyncIterator[Site]:
    async with site(nats_url) as s:
        await s.env("development")
        await s.env("production", production=True)
        yield s
