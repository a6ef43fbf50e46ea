"""API tokens on a real admin app over a real nats-server: who may call what, and what is stored."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
from starlette.applications import Starlette

from flagstream.events import STREAM, decode_event
from flagstream.services.admin.app import create_app
from flagstream.services.tokens.store import BUCKET, split
from tests.helpers import ADMIN_TOKEN, auth_headers

API = "/api/v1/projects/default"
PROD = f"{API}/environments/production/flags"
DEV = f"{API}/environments/development/flags"


@contextlib.asynccontextmanager
async def serve(nats_url: str, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An admin replica (its own app, its own lifespan) and an HTTP client without credentials."""
    app: Starlette = create_app(nats_url=nats_url, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
            yield http


@pytest.fixture
async def http(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(nats_url, operator_token=ADMIN_TOKEN) as client:
        for env in ("development", "production"):
            r = await client.post(f"{API}/environments", json={"key": env}, headers=auth_headers())
            assert r.status_code == 201, r.text
        yield client


async def new_token(http: httpx.AsyncClient, name: str, role: str, envs: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": name, "role": role, **({"environments": envs} if envs is not None else {})}
    r = await http.post("/api/v1/tokens", json=body, headers=auth_headers())
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert isinstance(token, str)
    assert token.startswith("fs_")
    return token


async def test_no_token_or_a_wrong_one_is_401_and_health_stays_open(http: httpx.AsyncClient) -> None:
    missing = await http.get(PROD)
    assert missing.status_code == 401
    assert "Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for bad in ["Bearer nope", "Bearer fs_0123456789ab_" + "A" * 43, "Basic YWRtaW46YWRtaW4=", "Bearer "]:
        r = await http.get(PROD, headers={"Authorization": bad})
        assert r.status_code == 401, bad
    written = await http.post(PROD, json={"key": "sneaky"})
    assert written.status_code == 401
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await http.get(path)).status_code == 200, path
    assert (await http.get(f"{PROD}/sneaky", headers=auth_headers())).status_code == 404, "nothing was written"


async def test_roles_and_environments_decide_what_a_token_may_do(http: httpx.AsyncClient, nats_url: str) -> None:
    reader = auth_headers(await new_token(http, "dashboard", "reader", ["production"]))
    writer = auth_headers(await new_token(http, "ci", "writer", ["production"]))

    assert (await http.get(PROD, headers=reader)).status_code == 200
    denied = await http.post(PROD, json={"key": "checkout"}, headers=reader)
    assert denied.status_code == 403
    assert "reader" in denied.json()["error"]
    assert "writer" in denied.json()["error"]
    other_env = await http.get(DEV, headers=reader)
    assert other_env.status_code == 403
    assert "'development'" in other_env.json()["error"]
    assert "production" in other_env.json()["error"]

    created = await http.post(PROD, json={"key": "checkout"}, headers=writer)
    assert created.status_code == 201, created.text
    assert created.json()["actor"] == "ci", "the audit names the token, not a header"
    spoofed = await http.post(f"{PROD}/checkout/on", headers={**writer, "X-Flagstream-Actor": "operator"})
    assert spoofed.json()["actor"] == "ci (for operator)", "a header cannot replace the token's identity"
    assert (await http.post(DEV, json={"key": "checkout"}, headers=writer)).status_code == 403
    new_env = await http.post(f"{API}/environments", json={"key": "qa"}, headers=writer)
    assert new_env.status_code == 403, "an environment-scoped token cannot create environments"
    assert (await http.get("/api/v1/tokens", headers=writer)).status_code == 403
    minted = await http.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=writer)
    assert minted.status_code == 403, "only admins create tokens"

    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_msg(STREAM, subject="flagstream.default.production.flag.checkout", direct=True)
        assert decode_event(msg.data or b"").actor == "ci (for operator)"
    finally:
        await nc.close()


async def test_tokens_are_shared_by_replicas_survive_restarts_and_revoke_everywhere(
    http: httpx.AsyncClient, nats_url: str
) -> None:
    token = await new_token(http, "deploy-bot", "writer")
    listed = (await http.get("/api/v1/tokens", headers=auth_headers())).json()["items"]
    (entry,) = [t for t in listed if t["name"] == "deploy-bot"]
    assert not {"token", "digest", "salt"} & set(entry), "the secret is shown once only"
    assert entry["created_by"] == "operator"
    assert entry["environments"] is None

    # Another replica, started without any operator token, knows the token from NATS.
    async with serve(nats_url) as replica:
        assert (await replica.get(PROD, headers=auth_headers(token))).status_code == 200
        assert (await replica.get(PROD, headers=auth_headers())).status_code == 401, "no operator token here"
        revoked = await http.delete(f"/api/v1/tokens/{entry['id']}", headers=auth_headers())
        assert revoked.status_code == 200
        assert revoked.json()["revoked_by"] == "operator"
        assert (await replica.get(PROD, headers=auth_headers(token))).status_code == 401, "revoked everywhere at once"
    assert (await http.get(PROD, headers=auth_headers(token))).status_code == 401
    assert (await http.delete("/api/v1/tokens/000000000000", headers=auth_headers())).status_code == 404

    audit = (await http.get("/api/v1/tokens", params={"revoked": "all"}, headers=auth_headers())).json()["items"]
    assert [(t["name"], t["revoked_by"]) for t in audit if t["id"] == entry["id"]] == [("deploy-bot", "operator")]
    hidden = (await http.get("/api/v1/tokens", headers=auth_headers())).json()["items"]
    assert entry["id"] not in [t["id"] for t in hidden], "revoked tokens are listed only on request"


async def test_only_a_salted_hash_is_stored(http: httpx.AsyncClient, nats_url: str) -> None:
    token = await new_token(http, "hashed", "reader")
    parts = split(token)  # the secret itself may contain "_" (URL-safe base64)
    assert parts is not None
    # The shape is read whole: before, a token followed by a newline had it too (its digest still differed).
    assert split(token + "\n") is None
    token_id, secret = parts
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(BUCKET)
        entry = await kv.get(token_id)
        assert entry.value is not None
        assert secret.encode() not in entry.value
        assert token.encode() not in entry.value
        info = await nc.jetstream().stream_info(f"KV_{BUCKET}")
        assert not any(s.startswith("flagstream.") for s in info.config.subjects or []), "outside flagstream.>"
    finally:
        await nc.close()
    # Same name, same role: a different secret and a different stored digest.
    other = await new_token(http, "hashed", "reader")
    assert other != token


async def test_bad_token_requests_are_clear_4xx(http: httpx.AsyncClient) -> None:
    cases: list[dict[str, Any]] = [
        {"name": "x", "role": "superuser"},
        {"name": "", "role": "reader"},
        {"name": "x" * 65, "role": "reader"},
        {"name": "x", "role": "reader", "environments": []},
        {"name": "x", "role": "reader", "environments": ["no spaces"]},
        {"name": "x", "role": "reader", "extra": 1},
    ]
    for body in cases:
        r = await http.post("/api/v1/tokens", json=body, headers=auth_headers())
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["error"], body


async def test_listing_with_no_token_yet_and_revoking_odd_ids(http: httpx.AsyncClient) -> None:
    listed = await http.get("/api/v1/tokens", headers=auth_headers())
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    for odd in ["s%C2%89%C2%A7", "..", "a.b", "*", "0123456789ABCDEF"]:
        r = await http.delete(f"/api/v1/tokens/{odd}", headers=auth_headers())
        assert r.status_code == 404, (odd, r.text)


async def test_the_openapi_document_says_which_routes_need_a_token(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["components"]["securitySchemes"]["session"]["in"] == "cookie"
    assert doc["security"] == [{"bearer": []}, {"session": []}], "a token, or a person's session"
    assert doc["paths"]["/healthz"]["get"]["security"] == [], "open"
    assert doc["paths"]["/auth/password"]["post"]["security"] == [], "signing in needs no credentials"
    create = doc["paths"][PROD.replace("production", "{environment}").replace("default", "{project}")]["post"]
    assert {"401", "403", "429"} <= set(create["responses"])
    assert "429" not in doc["paths"]["/api/v1/tokens"]["get"]["responses"], "reads are not rate limited"
