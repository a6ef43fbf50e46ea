"""SDK credentials through the admin API: made (the password once), listed (never a password or its hash),
revoked, for admins of the environment only; every creation and revocation kept in the bucket's history."""

from __future__ import annotations

from collections.abc import AsyncIterator

import bcrypt
import httpx
import nats
import pytest

from flagstream.services.admin.app import create_app
from flagstream.services.sdkcredentials import SdkCredentialStore
from tests.helpers import ADMIN_TOKEN, auth_headers

API = "/api/v1/projects/default"
CREDS = f"{API}/environments/production/sdk-credentials"


@pytest.fixture
async def http(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as client:
            for env in ("production", "development"):
                made = await client.post(f"{API}/environments", json={"key": env})
                assert made.status_code == 201, made.text
            yield client


async def test_a_credential_is_shown_once_listed_without_secrets_and_revoked(
    http: httpx.AsyncClient, nats_url: str
) -> None:
    made = await http.post(CREDS, json={"name": "checkout-service"})
    assert made.status_code == 201, made.text
    cred = made.json()
    assert cred["user"] == f"sdk-default-production.{cred['id']}"
    assert (cred["name"], cred["project"], cred["environment"]) == ("checkout-service", "default", "production")
    assert cred["created_by"] == "operator"
    assert cred["accepted"] is True  # this nats-server has no users: any login is taken
    assert made.headers["location"] == f"{CREDS}/{cred['id']}"
    password = cred["password"]
    assert len(password) == 48

    listed = await http.get(CREDS)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["id"] == cred["id"]
    assert "password" not in item
    assert "password_hash" not in item
    assert password not in listed.text
    assert (await http.get(f"{API}/environments/development/sdk-credentials")).json() == {"items": []}

    # what is stored is the password's bcrypt hash, the form nats-server checks
    nc = await nats.connect(nats_url)
    try:
        store = await SdkCredentialStore.open(nc)
        stored = await store.get(cred["id"])
        assert stored is not None
        assert password not in stored.password_hash
        assert bcrypt.checkpw(password.encode(), stored.password_hash.encode())

        other = await http.delete(f"{API}/environments/development/sdk-credentials/{cred['id']}")
        assert other.status_code == 404, "revoked only through its own environment"
        revoked = await http.delete(f"{CREDS}/{cred['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_by"] == "operator"
        assert "password" not in revoked.json()
        assert (await http.get(CREDS)).json() == {"items": []}
        (gone,) = (await http.get(f"{CREDS}?revoked=true")).json()["items"]
        assert gone["revoked_at"] is not None
        again = await http.delete(f"{CREDS}/{cred['id']}")
        assert again.json()["revoked_at"] == gone["revoked_at"], "revoking twice changes nothing"

        # the audit: the record is never deleted, its revisions say who made it and who revoked it
        trail = await store.history(cred["id"])
        assert [(r.created_by, r.revoked_by) for r in trail] == [("operator", None), ("operator", "operator")]
        assert (await store.live()) == []
    finally:
        await nc.close()


async def test_only_admins_of_the_environment_manage_its_credentials(http: httpx.AsyncClient) -> None:
    async def token(role: str, envs: list[str] | None = None) -> dict[str, str]:
        body: dict[str, object] = {"name": f"{role}-{'-'.join(envs or ['all'])}", "role": role}
        if envs is not None:
            body["environments"] = envs
        made = await http.post("/api/v1/tokens", json=body)
        assert made.status_code == 201, made.text
        return auth_headers(made.json()["token"])

    existing = (await http.post(CREDS, json={"name": "app"})).json()["id"]
    for headers in (await token("reader"), await token("writer"), await token("admin", ["development"])):
        assert (await http.get(CREDS, headers=headers)).status_code == 403
        assert (await http.post(CREDS, json={"name": "x"}, headers=headers)).status_code == 403
        assert (await http.delete(f"{CREDS}/{existing}", headers=headers)).status_code == 403
    assert (await http.get(CREDS, headers={"Authorization": ""})).status_code == 401
    own = await token("admin", ["production"])
    assert (await http.get(CREDS, headers=own)).status_code == 200
    assert (await http.post(CREDS, json={"name": "y"}, headers=own)).status_code == 201
    assert (await http.delete(f"{CREDS}/{existing}", headers=own)).status_code == 200
    listed = (await http.get(f"{CREDS}?revoked=true")).json()["items"]
    assert [(c["name"], c.get("revoked_at") is not None) for c in listed] == [("app", True), ("y", False)]


async def test_bad_requests_are_refused_naming_what_is_wrong(http: httpx.AsyncClient) -> None:
    answers = {
        "no name": await http.post(CREDS, json={}),
        "a bad name": await http.post(CREDS, json={"name": " spaces first"}),
        "an unknown field": await http.post(CREDS, json={"name": "a", "password": "mine"}),
        "no such environment": await http.post(f"{API}/environments/staging/sdk-credentials", json={"name": "a"}),
        "no such credential": await http.delete(f"{CREDS}/0123456789ab"),
        "no credential id": await http.delete(f"{CREDS}/not-an-id"),
        "revoked=maybe": await http.get(f"{CREDS}?revoked=maybe"),
    }
    statuses = {what: a.status_code for what, a in answers.items()}
    assert statuses == {
        "no name": 422, "a bad name": 422, "an unknown field": 422, "no such environment": 404,
        "no such credential": 404, "no credential id": 404, "revoked=maybe": 422,
    }  # fmt: skip
    assert "name" in answers["no name"].json()["error"]
    assert "password" in answers["an unknown field"].json()["error"]
    assert "staging" in answers["no such environment"].json()["error"]
    assert (await http.get(CREDS)).json() == {"items": []}, "nothing was made"
