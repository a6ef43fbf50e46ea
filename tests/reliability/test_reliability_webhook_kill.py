"""A webhook delivery survives the death of the admin replica sending it: the replica is SIGKILLed while your
endpoint holds its request; another replica sends the same change again (same ``X-Flagstream-Delivery``) once
JetStream's acknowledgement wait is over, and the changes after it follow in order. At least once, never lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagstream.services.webhooks.model import DELIVERY_HEADER
from tests.helpers import auth_headers, eventually, serving
from tests.reliability.test_reliability_admin_kill import AdminProcess

ENVS = "/api/v1/projects/default/environments"


@dataclass
class HoldingReceiver:
    """Holds the first request until ``release`` is set; records the deliveries it answered 204."""

    url: str = ""
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    answered: list[tuple[str, str]] = field(default_factory=list)  # (delivery id, flag key)


@contextlib.asynccontextmanager
async def holding_receiver() -> AsyncIterator[HoldingReceiver]:
    receiver = HoldingReceiver()

    async def hook(request: Request) -> Response:
        body = await request.json()
        if not receiver.held.is_set():
            receiver.held.set()
            await receiver.release.wait()
            return Response("too late", status_code=503)
        receiver.answered.append((request.headers[DELIVERY_HEADER], body["key"]))
        return Response(status_code=204)

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        receiver.url = f"{url}/hook"
        try:
            yield receiver
        finally:
            receiver.release.set()


async def test_a_delivery_in_flight_when_its_replica_dies_is_sent_again(nats_url: str) -> None:
    # The receiver listens on 127.0.0.1: the operator setting allows it (webhooks refuse loopback by default).
    first, second = (AdminProcess(nats_url, "--webhook-allow", "127.0.0.1") for _ in range(2))
    async with holding_receiver() as receiver:
        try:
            await asyncio.to_thread(first.start)
            async with httpx.AsyncClient(base_url=first.url, headers=auth_headers(), timeout=30) as http:
                assert (await http.post(ENVS, json={"key": "production"})).status_code == 201
                hook = await http.post("/api/v1/webhooks", json={"url": receiver.url, "kinds": ["flag"]})
                assert hook.status_code == 201, hook.text
                created = await http.post(f"{ENVS}/production/flags", json={"key": "a"})
                assert created.status_code == 201
            held_delivery = f"{hook.json()['id']}:{created.json()['version']}"
            await eventually(receiver.held.is_set, what="the first delivery in flight")
            await asyncio.to_thread(first.kill)  # mid-request: no answer, no acknowledgement

            await asyncio.to_thread(second.start)
            async with httpx.AsyncClient(base_url=second.url, headers=auth_headers(), timeout=30) as http:
                assert (await http.post(f"{ENVS}/production/flags", json={"key": "b"})).status_code == 201
            await eventually(lambda: len(receiver.answered) >= 2, within=120, what="both changes delivered")
            assert receiver.answered[0] == (held_delivery, "a")  # the same delivery, sent again
            assert [key for _, key in receiver.answered] == ["a", "b"]
        finally:
            receiver.release.set()
            await asyncio.to_thread(first.stop)
            await asyncio.to_thread(second.stop)
