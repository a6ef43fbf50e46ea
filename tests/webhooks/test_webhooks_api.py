"""Webhooks against a real receiver: a real HTTP server (uvicorn) that records what it is sent, two admin
replicas on one nats-server. What a user sees: each change of their environment arrives once, in order, signed,
with the field-level changes; a failing endpoint gets it again until it takes it; a deleted webhook sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagstream.services.admin.app import create_app
from flagstream.services.runtime.natsd import free_port
from flagstream.services.webhooks.model import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from tests.helpers import ADMIN_TOKEN, auth_headers, eventually, serving, until

API = "/api/v1"
ENVS = f"{API}/projects/default/environments"


@dataclass
class Receiver:
    """Records each POST (headers, parsed body); answers 500 to the first ``fail`` of them."""

    url: str = ""
    fail: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused: int = 0

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, raw in self.received]


@contextlib.asynccontextmanager
async def receiving(fail: int = 0) -> AsyncIterator[Receiver]:
    receiver = Receiver(fail=fail)

    async def hook(request: Request) -> Response:
        raw = await request.body()
        if receiver.refused < receiver.fail:
            receiver.refused += 1
            return Response("not now", status_code=500)
        receiver.received.append((dict(request.headers), raw))
        return Response(status_code=204)

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        receiver.url = f"{url}/hook"
        yield receiver


#: The receivers of these tests listen on 127.0.0.1, refused by default: the operator setting allows them.
ALLOW_RECEIVERS = ["127.0.0.1"]


@contextlib.asynccontextmanager
async def admin(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, webhook_allow=ALLOW_RECEIVERS)) as url,
        httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=30) as http,
    ):
        yield http


async def setup_environments(http: httpx.AsyncClient) -> None:
    for env in ("production", "development"):
        assert (await http.post(ENVS, json={"key": env})).status_code == 201


async def test_changes_arrive_in_order_signed_with_their_diff(nats_url: str) -> None:
    async with admin(nats_url) as http, receiving() as receiver:
        await setup_environments(http)
        created = await http.post(
            f"{API}/webhooks", json={"url": receiver.url, "environments": ["production"], "kinds": ["flag"]}
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_")
        assert "secret" not in (await http.get(f"{API}/webhooks")).json()["items"][0]  # shown once

        flag = f"{ENVS}/production/flags/new-checkout"
        assert (await http.post(f"{ENVS}/production/flags", json={"key": "new-checkout"})).status_code == 201
        # The flag exists in development too (a flag is in every environment); turning it on there is a
        # change of development only: not sent.
        assert (await http.post(f"{ENVS}/development/flags/new-checkout/on")).status_code == 200
        assert (await http.post(f"{ENVS}/production/segments", json={"key": "beta"})).status_code == 201
        toggled = await http.post(f"{flag}/on", json={"comment": "launch"})
        assert toggled.status_code == 200

        await eventually(lambda: len(receiver.received) >= 2, what="two deliveries")
        created_body, toggled_body = receiver.bodies
        assert [created_body["type"], toggled_body["type"]] == ["flag.created", "flag.toggled"]
        assert created_body["changes"] == []  # a new flag: nothing to compare with
        assert toggled_body["changes"] == ["on: false -> true"]
        assert toggled_body["seq"] == toggled.json()["version"]
        assert (toggled_body["actor"], toggled_body["comment"], toggled_body["key"]) == (
            "operator",
            "launch",
            "new-checkout",
        )
        assert "flag new-checkout in default/production" in toggled_body["text"]
        assert "on: false -> true" in toggled_body["text"]
        for headers, raw in receiver.received:
            assert verify(hook["secret"], headers[SIGNATURE_HEADER.lower()], raw) is not None
            assert verify("whsec_wrong", headers[SIGNATURE_HEADER.lower()], raw) is None
        assert receiver.received[1][0][DELIVERY_HEADER.lower()] == f"{hook['id']}:{toggled_body['seq']}"

        async def settled() -> bool:
            detail = (await http.get(f"{API}/webhooks/{hook['id']}")).json()
            return detail["pending"] == 0 and detail["in_flight"] == 0

        await until(settled, what="the webhook's consumer has nothing pending")
        detail = (await http.get(f"{API}/webhooks/{hook['id']}")).json()
        assert detail["status"]["delivered"] == 2
        assert len(receiver.received) == 2  # the development change and the segment were not sent


async def test_a_failing_endpoint_gets_the_change_again_until_it_takes_it(nats_url: str) -> None:
    async with admin(nats_url) as http, receiving(fail=2) as receiver:
        await setup_environments(http)
        hook = (await http.post(f"{API}/webhooks", json={"url": receiver.url, "environments": ["production"]})).json()
        assert (await http.post(f"{ENVS}/production/flags", json={"key": "a"})).status_code == 201
        assert (await http.post(f"{ENVS}/production/flags", json={"key": "b"})).status_code == 201
        await eventually(lambda: len(receiver.received) >= 2, within=60, what="delivered after two refusals")
        assert [b["key"] for b in receiver.bodies] == ["a", "b"]  # the refused one first: order kept
        assert receiver.refused == 2
        detail = (await http.get(f"{API}/webhooks/{hook['id']}")).json()
        assert detail["status"]["errors"] == 2
        assert detail["status"]["delivered"] == 2
        metrics = (await http.get("/metrics")).text
        assert 'flagstream_webhook_attempts_total{result="error"} 2.0' in metrics
        assert 'flagstream_webhook_attempts_total{result="delivered"} 2.0' in metrics


async def test_a_bad_message_on_the_stream_is_skipped_counted_and_the_next_change_sent(nats_url: str) -> None:
    async with admin(nats_url) as http, receiving() as receiver:
        await setup_environments(http)
        assert (await http.post(f"{API}/webhooks", json={"url": receiver.url})).status_code == 201
        nc = await nats.connect(nats_url)  # operator rights: what a broken tool could put on the stream
        try:
            await nc.jetstream().publish("flagstream.default.production.flag.junk", b"{not json")
        finally:
            await nc.close()
        assert (await http.post(f"{ENVS}/production/flags", json={"key": "after"})).status_code == 201
        await eventually(lambda: len(receiver.received) >= 1, what="the change after the junk delivered")
        assert [b["key"] for b in receiver.bodies] == ["after"]
        metrics = (await http.get("/metrics")).text
        assert "flagstream_webhook_bad_events_total 1.0" in metrics


async def test_two_replicas_send_each_change_once_and_a_deleted_webhook_nothing(nats_url: str) -> None:
    async with admin(nats_url) as one, admin(nats_url) as two, receiving() as receiver:
        await setup_environments(one)
        only = {"url": receiver.url, "kinds": ["flag"], "environments": ["production"]}
        hook = (await two.post(f"{API}/webhooks", json=only)).json()
        for i in range(10):
            writer = one if i % 2 else two
            assert (await writer.post(f"{ENVS}/production/flags", json={"key": f"f{i}"})).status_code == 201
        await eventually(lambda: len(receiver.received) >= 10, what="ten deliveries")

        async def settled() -> bool:
            detail = (await one.get(f"{API}/webhooks/{hook['id']}")).json()
            return detail["pending"] == 0 and detail["in_flight"] == 0

        await until(settled, what="the webhook's consumer has nothing pending")
        assert [b["key"] for b in receiver.bodies] == [f"f{i}" for i in range(10)]  # once each, in order

        deleted = await one.delete(f"{API}/webhooks/{hook['id']}")
        assert deleted.status_code == 200
        assert (await two.get(f"{API}/webhooks/{hook['id']}")).status_code == 404
        assert (await one.get(f"{API}/webhooks")).json()["items"] == []


async def test_a_ping_tells_whether_the_endpoint_takes_deliveries(admin_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as http,
        receiving(fail=1) as receiver,
    ):
        hook = (await http.post(f"{API}/webhooks", json={"url": receiver.url})).json()
        refused = (await http.post(f"{API}/webhooks/{hook['id']}/ping")).json()
        assert refused == {"ok": False, "status": 500, "error": "HTTP 500"}  # never what the endpoint said
        taken = (await http.post(f"{API}/webhooks/{hook['id']}/ping")).json()
        assert taken == {"ok": True, "status": 204, "error": ""}
        headers, raw = receiver.received[0]
        assert json.loads(raw)["type"] == "ping"
        assert verify(hook["secret"], headers[SIGNATURE_HEADER.lower()], raw) is not None

        nowhere = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        lost = (await http.post(f"{API}/webhooks", json={"url": nowhere})).json()
        answer = (await http.post(f"{API}/webhooks/{lost['id']}/ping")).json()
        assert (answer["ok"], answer["status"]) == (False, 0)
        assert "ConnectError" in answer["error"]
        code, out, _ = await cli(admin_url, "ping", hook["id"])
        assert (code, out.strip()) == (0, "the endpoint answered 204")
        code, out, _ = await cli(admin_url, "ping", lost["id"])
        assert code == 1
        assert out.startswith("failed: ConnectError")


@pytest.mark.parametrize(
    ("body", "status", "fault"),
    [
        ({"url": "ftp://example.com/x"}, 422, "absolute http(s) URL"),
        ({"url": "https://user:pw@example.com/x"}, 422, "credentials"),
        ({"url": "http://0177.0.0.1/x"}, 422, "Invalid IPv4 address"),  # what urlsplit takes and httpx does not
        ({"url": "http://[::1/x"}, 422, "not a valid URL"),
        ({"url": "http://example.com:99999/x"}, 422, "not a valid URL"),
        ({"url": "https://example.com/x", "kinds": ["flags"]}, 422, "kinds[0]"),
        ({"url": "https://example.com/x", "environments": ["default/no such"]}, 400, "environments[0]"),
        ({"url": "https://example.com/x", "environments": []}, 422, "environments"),
        ({"link": "https://example.com/x"}, 422, "link"),
    ],
)
async def test_a_bad_webhook_is_a_clear_4xx(admin_url: str, body: dict[str, Any], status: int, fault: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as http:
        response = await http.post(f"{API}/webhooks", json=body)
        assert response.status_code == status, response.text
        assert fault in response.text
        assert (await http.get(f"{API}/webhooks")).json()["items"] == []


async def test_only_an_admin_token_manages_webhooks(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as http:
        writer = await http.post(f"{API}/tokens", json={"name": "ci", "role": "writer"})
        headers = auth_headers(writer.json()["token"])
        refused = await http.post(f"{API}/webhooks", json={"url": "https://example.com/x"}, headers=headers)
        assert refused.status_code == 403
        assert "needs admin" in refused.json()["error"]
        assert (await http.get(f"{API}/webhooks", headers=headers)).status_code == 403
        assert (await http.get(f"{API}/webhooks/whnone")).status_code == 404


async def cli(admin_url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flagstream.services.cli", "webhooks", *args, "--api", admin_url, "--token", ADMIN_TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_creates_shows_and_deletes_a_webhook(admin_url: str) -> None:
    async with receiving() as receiver:
        code, out, err = await cli(admin_url, "create", receiver.url, "--env", "production", "--kind", "flag")
        assert code == 0, err
        webhook_id = out.split()[2]
        assert "flag in default/production" in out
        assert "signing secret: whsec_" in out
        code, out, err = await cli(admin_url, "list")
        assert webhook_id in out, out + err
        assert receiver.url in out, out + err
        code, out, err = await cli(admin_url, "show", webhook_id)
        assert "delivered 0, failed 0" in out, out + err
        code, out, err = await cli(admin_url, "delete", webhook_id)
        assert code == 0, out + err
        assert "nothing more is sent" in out
        code, out, err = await cli(admin_url, "show", webhook_id)
        assert code == 1, out + err
        assert f"webhook {webhook_id!r} not found" in err
        code, out, err = await cli(admin_url, "create", "ftp://x")
        assert code == 1, out + err
        assert "absolute http(s) URL" in err
