"""Single sign-on through a real OpenID provider (node-oidc-provider, its own login page): the authorization
code flow with PKCE, the provider's groups mapped to roles per environment, and changes that name the person
and how they signed in."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import nats
import pytest

from flagstream.events import STREAM, decode_event
from tests.oidc.provider import CLIENT_ID, Provider, oidc_provider
from tests.people.conftest import API, CALLBACK, Site, sign_in_via, site, sso_config

DEV = f"{API}/environments/development/flags"
PROD = f"{API}/environments/production/flags"
ACCOUNTS = {
    "grace": {"name": "Grace Hopper", "email": "grace@example.com", "groups": ["developers"]},
    "linus": {"name": "Linus", "email": "linus@example.com", "groups": ["release-managers"]},
}
ROLES = [
    {"group": "developers", "role": "writer", "environments": ["development"]},
    {"group": "developers", "role": "reader"},
    {"group": "release-managers", "role": "writer", "environments": ["production"]},
]


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with oidc_provider([CALLBACK], accounts=ACCOUNTS) as p:
        yield p


@pytest.fixture
async def sso(nats_url: str, provider: Provider) -> AsyncIterator[Site]:
    async with site(nats_url, sso_config(provider.issuer, ROLES)) as s:
        await s.env("development")
        await s.env("production", production=True)
        yield s


async def test_the_sign_in_page_is_told_single_sign_on_is_offered(sso: Site) -> None:
    async with sso.browser() as browser:
        options = (await browser.http.get("/auth/options")).json()
    assert options == {"passwords": True, "sso": {"label": "Test SSO", "start": "/auth/oidc/start"}}


async def test_the_way_to_the_provider_uses_pkce_a_nonce_and_a_state(sso: Site, provider: Provider) -> None:
    async with sso.browser() as browser:
        start = await browser.http.get("/auth/oidc/start")
    assert start.status_code == 303
    url = urlsplit(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == (await provider.discovery())["authorization_endpoint"]
    assert (query["client_id"], query["response_type"], query["redirect_uri"]) == (CLIENT_ID, "code", CALLBACK)
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    assert "openid" in query["scope"].split()
    cookie = start.headers["set-cookie"].lower()
    assert "flagstream_signin=" in cookie
    assert "httponly" in cookie


async def test_a_person_signs_in_through_the_provider_and_groups_give_roles(
    sso: Site, provider: Provider, nats_url: str
) -> None:
    async with sso.browser() as grace, sso.browser() as linus:
        back = await sign_in_via(grace, provider.issuer, "grace")
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/ui/"
        assert "flagstream_session=" in back.headers["set-cookie"]
        me = (await grace.http.get("/api/v1/whoami")).json()
        assert (me["kind"], me["name"], me["email"], me["via"]) == ("person", "Grace Hopper", "grace@example.com",
                                                                      "oidc")  # fmt: skip
        assert {"role": "writer", "environment": "development"} in me["grants"]

        assert (await grace.write("POST", DEV, json={"key": "search"})).status_code == 201
        refused = await grace.write("POST", PROD, json={"key": "search"})
        assert refused.status_code == 403, "developers only read production"

        assert (await sign_in_via(linus, provider.issuer, "linus")).status_code == 303
        assert (await linus.write("POST", f"{PROD}/search/on", json={})).status_code == 200, "the production writer"
        assert (await linus.http.get(DEV)).status_code == 403

    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_msg(STREAM, subject="flagstream.default.development.flag.search", direct=True)
    finally:
        await nc.close()
    event = decode_event(msg.data or b"")
    assert event.actor == "Grace Hopper"
    assert (event.author.kind, event.author.name, event.author.email) == ("person", "Grace Hopper", "grace@example.com")
    assert (event.author.via, event.author.issuer) == ("oidc", provider.issuer)
    assert event.author.id.startswith("u_"), "a stable id, not the provider's subject"

    people = {u["name"]: u for u in (await sso.op.get("/api/v1/users")).json()["items"]}
    assert people["Grace Hopper"]["id"] == event.author.id
    assert people["Grace Hopper"]["method"] == "oidc"
    assert people["Grace Hopper"]["groups"] == ["developers"]


async def test_the_same_person_keeps_their_id_and_an_admin_can_give_them_more(sso: Site, provider: Provider) -> None:
    async with sso.browser() as first:
        await sign_in_via(first, provider.issuer, "grace")
        one = (await first.http.get("/api/v1/whoami")).json()["id"]
    person = await sso.op.patch(f"/api/v1/users/{one}", json={"grants": [{"role": "writer", "environment": "*"}]})
    assert person.status_code == 200
    async with sso.browser() as again:
        await sign_in_via(again, provider.issuer, "grace")
        me = (await again.http.get("/api/v1/whoami")).json()
        assert me["id"] == one, "the same person, the same id"
        assert (await again.write("POST", PROD, json={"key": "more"})).status_code == 201, "their own grant counts"
        disabled = await sso.op.patch(f"/api/v1/users/{one}", json={"disabled": True})
        assert disabled.status_code == 200
        assert (await again.http.get("/api/v1/whoami")).status_code == 401
    async with sso.browser() as refused:
        answer = await sign_in_via(refused, provider.issuer, "grace")
        assert answer.status_code == 401
        assert "disabled" in answer.text


async def test_without_a_reachable_provider_the_browser_gets_a_page_saying_so(nats_url: str) -> None:
    async with site(nats_url) as plain, plain.browser() as browser:
        off = await browser.http.get("/auth/oidc/start")
        assert off.status_code == 404
        assert "not configured" in off.text
        assert (await browser.http.get("/auth/options")).json()["sso"] is None
    # A port bound but not listening: connections to it are refused, and no server started meanwhile can take it
    # (a port found free and let go could be the very one the site's own server is given next).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{held.getsockname()[1]}"
        async with site(nats_url, sso_config(nobody)) as down, down.browser() as browser:
            answer = await browser.http.get("/auth/oidc/start")
            assert answer.status_code == 503
            assert answer.headers["content-type"].startswith("text/html")
            assert "unavailable" in answer.text
            assert "Back to sign-in" in answer.text


async def test_an_admin_sets_the_groups_roles_through_the_api_for_every_replica(
    sso: Site, provider: Provider, nats_url: str
) -> None:
    in_file = (await sso.op.get("/api/v1/sso/group-roles")).json()
    assert in_file["source"] == "file"
    assert {"group": "release-managers", "role": "writer", "project": "*", "environments": ["production"]} in in_file[
        "items"
    ]

    mapping = {"items": [{"group": "developers", "role": "writer", "environments": ["production"]}]}
    put = await sso.op.put("/api/v1/sso/group-roles", json=mapping)
    assert put.status_code == 200, put.text
    assert put.json()["source"] == "api"
    bad = await sso.op.put("/api/v1/sso/group-roles", json={"items": [{"group": "x", "role": "owner"}]})
    assert bad.status_code == 422

    # Another replica, started with the same file, follows the mapping set through the API.
    async with site(nats_url, sso_config(provider.issuer, ROLES)) as other, other.browser() as grace:
        assert (await sign_in_via(grace, provider.issuer, "grace")).status_code == 303
        assert (await grace.write("POST", PROD, json={"key": "mapped"})).status_code == 201, "now a production writer"
        assert (await grace.http.get(DEV)).status_code == 403, "and nothing else: the file's roles no longer apply"

    reset = await sso.op.delete("/api/v1/sso/group-roles")
    assert reset.json()["source"] == "file"
    async with sso.browser() as grace:
        await sign_in_via(grace, provider.issuer, "grace")
        assert (await grace.write("POST", PROD, json={"key": "again"})).status_code == 403, "the file's roles again"
