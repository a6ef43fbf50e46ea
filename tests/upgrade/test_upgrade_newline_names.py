"""Names ending in a newline: refused from now on, still working where an earlier version stored them.

The name pattern of API tokens, client-side keys and SDK credentials ended in ``$``, which Python's ``re.match``
also matches before a final newline, so earlier versions stored "ci" followed by a newline as a token's name (and
the actor of the events it wrote). Today's API refuses a new one (``tests/admin/test_admin_validation.py``); a
record stored before still decodes, is listed, works and can be revoked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS

from flagstream.events import STREAM, decode_event
from flagstream.services.admin.app import create_app
from flagstream.services.clientkeys.store import ClientKeyStore
from flagstream.services.sdkcredentials.store import SdkCredentialStore
from flagstream.services.tokens import Role, TokenStore
from tests.helpers import ADMIN_TOKEN, auth_headers

ENV = "/api/v1/projects/default/environments/development"


@pytest.fixture
async def served(nats_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, NATS]]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
            made = await http.post("/api/v1/projects/default/environments", json={"key": "development"})
            assert made.status_code == 201, made.text
            nc = await nats.connect(nats_url)
            try:
                yield http, nc
            finally:
                await nc.close()


async def test_a_token_named_before_still_signs_in_writes_and_is_revoked(
    served: tuple[httpx.AsyncClient, NATS],
) -> None:
    http, nc = served
    # What an earlier version's API stored for {"name": "ci\n"} (the store itself never judged names).
    record, secret = await (await TokenStore.open(nc)).create(
        name="ci\n", role=Role.WRITER, environments=None, created_by="operator"
    )
    token = auth_headers(secret)

    assert (await http.get("/api/v1/whoami", headers=token)).json()["name"] == "ci\n"
    created = await http.post(f"{ENV}/flags", json={"key": "checkout"}, headers=token)
    assert created.status_code == 201, created.text
    assert created.json()["actor"] == "ci\n"
    msg = await nc.jetstream().get_msg(STREAM, subject="flagstream.default.development.flag.checkout", direct=True)
    assert decode_event(msg.data or b"").actor == "ci\n"

    listed = (await http.get("/api/v1/tokens")).json()["items"]
    assert [t["name"] for t in listed if t["id"] == record.id] == ["ci\n"]
    revoked = await http.delete(f"/api/v1/tokens/{record.id}")
    assert revoked.status_code == 200, revoked.text
    assert (await http.get(f"{ENV}/flags", headers=token)).status_code == 401


async def test_a_client_key_and_an_sdk_credential_named_before_are_listed_used_and_revoked(
    served: tuple[httpx.AsyncClient, NATS],
) -> None:
    http, nc = served
    key = await (await ClientKeyStore.open(nc)).create(
        name="web\n", project="default", environment="development", origins=[], created_by="operator"
    )
    credential, _ = await (await SdkCredentialStore.open(nc)).create(
        name="app\n", project="default", environment="development", created_by="operator"
    )

    evaluated = await http.post(f"/client/{key.key}/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u"}})
    assert evaluated.status_code == 200, evaluated.text
    keys = (await http.get(f"{ENV}/client-keys")).json()["items"]
    assert [k["name"] for k in keys if k["key"] == key.key] == ["web\n"]
    credentials = (await http.get(f"{ENV}/sdk-credentials")).json()["items"]
    assert [c["name"] for c in credentials if c["id"] == credential.id] == ["app\n"]

    assert (await http.delete(f"{ENV}/client-keys/{key.key}")).status_code == 200
    assert (await http.delete(f"{ENV}/sdk-credentials/{credential.id}")).status_code == 200
    refused = await http.post(f"/client/{key.key}/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "u"}})
    assert refused.status_code == 401, "revoked"
