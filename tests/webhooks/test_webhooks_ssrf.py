"""Webhooks are no door into the network the admin service runs in (server-side request forgery, issue 18).

By default a webhook may send to public addresses only: a URL whose host is (or resolves to) a loopback, private,
link-local, multicast, unspecified or otherwise non-public address is refused when the webhook is created, and
again at every delivery, on the address actually connected to. The operator allows in-cluster receivers with
``--webhook-allow`` / ``FLAGSTREAM_WEBHOOK_ALLOW``. Nothing here sends a packet off this machine: every refused
address is refused before any connection, and every receiver listens on the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagstream.services.admin.app import create_app
from flagstream.services.runtime.listen import listening_socket
from flagstream.services.webhooks.address import AddressPolicy, kind_of
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, AdminProcess, auth_headers, eventually, serving, until
from tests.webhooks.test_webhooks_api import receiving, setup_environments

API = "/api/v1"
ENVS = f"{API}/projects/default/environments"


@contextlib.asynccontextmanager
async def admin(nats_url: str, allow: list[str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, webhook_allow=allow or [])
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=30) as http:
        yield http


REFUSED = [
    ("http://127.0.0.1:8080/api/v1/tokens", "127.0.0.1 is a loopback address"),
    ("http://localhost:4222/", "localhost resolves to a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://0.0.0.0:8222/connz", "0.0.0.0 is a unspecified address"),
    ("http://[::]/", ":: is a unspecified address"),
    ("http://2130706433/", "2130706433 is 127.0.0.1, a loopback address"),
    ("http://127.1/", "127.1 is 127.0.0.1, a loopback address"),
    ("http://0x7f.1/", "0x7f.1 is 127.0.0.1, a loopback address"),
    ("http://0x7f000001/", "0x7f000001 is 127.0.0.1, a loopback address"),
    ("http://0177.0.0.1/", "Invalid IPv4 address"),  # octal: the resolver reads 127.0.0.1, httpx refuses it
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address"),
    ("http://[::ffff:7f00:1]/", "::ffff:7f00:1 is a loopback address"),
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1 is a loopback address"),  # NAT64
    ("http://[2002:7f00:1::]/", "2002:7f00:1:: is a loopback address"),  # 6to4
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ("http://172.16.5.4/", "172.16.5.4 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("https://[fd00::1]/", "fd00::1 is a private address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://100.64.0.1/", "100.64.0.1 is a reserved address"),  # carrier-grade NAT
]


@pytest.mark.parametrize(("url", "said"), REFUSED, ids=[url for url, _ in REFUSED])
async def test_a_webhook_to_a_non_public_address_is_refused_at_creation(nats_url: str, url: str, said: str) -> None:
    async with admin(nats_url) as http:
        response = await http.post(f"{API}/webhooks", json={"url": url})
        assert response.status_code == 422, response.text
        assert said in response.json()["error"]
        if said != "Invalid IPv4 address":
            assert "--webhook-allow" in response.json()["error"]  # and how an operator allows a receiver
        assert (await http.get(f"{API}/webhooks")).json()["items"] == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo, whose client is 192.0.2.45
        ("::7f00:1", "loopback"),  # IPv4-compatible
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation
        ("198.18.0.1", "private"),  # benchmarking
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_what_kind_of_address_is_refused(address: str, kind: str | None) -> None:
    import ipaddress

    assert kind_of(ipaddress.ip_address(address)) == kind


def test_the_operator_setting_takes_networks_addresses_and_host_names() -> None:
    import ipaddress

    policy = AddressPolicy.parse(["10.0.0.0/8", "127.0.0.1", "[::1]", "Hooks.Internal.", ""])
    assert policy.refusal(ipaddress.ip_address("10.20.30.40")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:10.20.30.40")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) == "loopback"
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1")) == "private"
    assert policy.host_allowed("hooks.internal")
    assert AddressPolicy.from_text("10.0.0.0/8, 192.168.0.0/16 hooks").describe() == (
        "10.0.0.0/8, 192.168.0.0/16, hooks"
    )
    with pytest.raises(ValueError, match="'not a host!' is not a network"):
        AddressPolicy.parse(["not a host!"])


async def test_a_receiver_the_operator_allows_gets_its_deliveries_and_others_stay_refused(nats_url: str) -> None:
    async with admin(nats_url, allow=["127.0.0.0/8"]) as http, receiving() as receiver:
        hook = await http.post(f"{API}/webhooks", json={"url": receiver.url})
        assert hook.status_code == 201, hook.text
        assert (await http.post(f"{API}/webhooks/{hook.json()['id']}/ping")).json()["ok"] is True
        refused = await http.post(f"{API}/webhooks", json={"url": "http://169.254.169.254/"})
        assert refused.status_code == 422, refused.text
        by_name = await http.post(f"{API}/webhooks", json={"url": receiver.url.replace("127.0.0.1", "localhost")})
        assert by_name.status_code == 201, by_name.text  # localhost resolves into the allowed network


async def test_a_webhook_whose_address_is_no_longer_allowed_sends_nothing(nats_url: str) -> None:
    """Created while the operator allowed its receiver; the admin restarted without that setting: every delivery
    and every ping is refused before any connection (the check is made at each delivery, not only at creation),
    including for a host name that resolves to loopback."""
    async with receiving() as receiver:
        async with admin(nats_url, allow=["127.0.0.1"]) as http:
            await setup_environments(http)
            by_address = (await http.post(f"{API}/webhooks", json={"url": receiver.url})).json()
            by_name = (
                await http.post(f"{API}/webhooks", json={"url": receiver.url.replace("127.0.0.1", "localhost")})
            ).json()
        async with admin(nats_url) as http:
            ping = (await http.post(f"{API}/webhooks/{by_address['id']}/ping")).json()
            assert (ping["ok"], ping["status"]) == (False, 0)
            assert ping["error"].startswith("refused: 127.0.0.1 is a loopback address")
            ping = (await http.post(f"{API}/webhooks/{by_name['id']}/ping")).json()
            assert ping["error"].startswith("refused: localhost resolves to a loopback address")

            assert (await http.post(f"{ENVS}/production/flags", json={"key": "a"})).status_code == 201

            async def both_refused() -> bool:
                details = [(await http.get(f"{API}/webhooks/{h['id']}")).json() for h in (by_address, by_name)]
                return all(d["status"]["errors"] >= 1 for d in details)

            await until(both_refused, what="a refused attempt of each webhook")
            detail = (await http.get(f"{API}/webhooks/{by_name['id']}")).json()
            assert detail["status"]["last_error"].startswith("refused: localhost resolves to a loopback address")
            assert detail["status"]["last_status"] == 0
        assert receiver.received == []


@dataclass
class Listener:
    """An HTTP server on one loopback address that records each request's Host header."""

    hosts: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def listening(sock: socket.socket, answer: Response | None = None) -> AsyncIterator[Listener]:
    listener = Listener()

    async def hook(request: Request) -> Response:
        await request.body()
        listener.hosts.append(request.headers["host"])
        return answer or Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started or task.done(), what="listener started")
    try:
        yield listener
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def two_sockets() -> tuple[socket.socket, socket.socket, int]:
    """Listening sockets on 127.0.0.2 and 127.0.0.1 with one port number (both on this machine's loopback)."""
    for _ in range(20):
        first = listening_socket("127.0.0.2", 0)
        port = first.getsockname()[1]
        try:
            return first, listening_socket("127.0.0.1", port), port
        except OSError:
            first.close()
    raise AssertionError("no port free on both 127.0.0.2 and 127.0.0.1")


@contextlib.contextmanager
def rebinding_dns(name: str, answers: list[str], asked: list[str]) -> Iterator[None]:
    """The system resolver, with ``name`` answering ``answers[0]``, then ``answers[1]``... (the last one repeats):
    what a DNS server under an attacker's control does. The one fake of this file: no test here can run a DNS
    server the system resolver would ask. Every other name resolves as always."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if (host.decode() if isinstance(host, bytes) else host) != name:
            return real(host, port, *args, **kwargs)
        answer = answers[min(len(asked), len(answers) - 1)]
        asked.append(answer)
        return real(answer, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


async def test_dns_rebinding_cannot_switch_the_address_a_delivery_connects_to(nats_url: str) -> None:
    """The operator allows 127.0.0.2 (standing for an allowed address) and not 127.0.0.1. The name first resolves
    to 127.0.0.2, then to 127.0.0.1. A delivery connects to the address it checked (the Host header stays the
    URL's), so the listener on 127.0.0.1 never gets a request: not by a second lookup after the check, and not
    once the name points there (refused)."""
    allowed_sock, loopback_sock, port = two_sockets()
    asked: list[str] = []
    async with (
        listening(allowed_sock) as allowed,
        listening(loopback_sock) as loopback,
        admin(nats_url, allow=["127.0.0.2"]) as http,
    ):
        with rebinding_dns("rebind.flagstream.test", ["127.0.0.2", "127.0.0.2", "127.0.0.1"], asked):
            url = f"http://rebind.flagstream.test:{port}/hook"
            hook = await http.post(f"{API}/webhooks", json={"url": url})  # lookup 1: 127.0.0.2
            assert hook.status_code == 201, hook.text
            first = (await http.post(f"{API}/webhooks/{hook.json()['id']}/ping")).json()  # lookup 2: 127.0.0.2
            assert first == {"ok": True, "status": 204, "error": ""}
            second = (await http.post(f"{API}/webhooks/{hook.json()['id']}/ping")).json()  # now 127.0.0.1
            assert (second["ok"], second["status"]) == (False, 0)
            assert "rebind.flagstream.test resolves to a loopback address" in second["error"]
        assert loopback.hosts == []
        assert allowed.hosts == [f"rebind.flagstream.test:{port}"]
        assert asked == ["127.0.0.2", "127.0.0.2", "127.0.0.1"]  # one lookup per connection, no second one


async def test_a_redirect_is_not_followed(nats_url: str) -> None:
    async with receiving() as target, admin(nats_url, allow=["127.0.0.1"]) as http:
        sock = listening_socket("127.0.0.1", 0)
        redirect = Response(status_code=307, headers={"Location": target.url})
        async with listening(sock, redirect) as redirecting:
            hook = await http.post(f"{API}/webhooks", json={"url": f"http://127.0.0.1:{sock.getsockname()[1]}/hook"})
            answer = (await http.post(f"{API}/webhooks/{hook.json()['id']}/ping")).json()
        assert (answer["ok"], answer["status"]) == (False, 307)
        assert "not followed" in answer["error"]
        assert len(redirecting.hosts) == 1
        assert target.received == []


async def test_flagstream_admin_takes_the_setting_from_its_option_or_the_environment(nats_url: str) -> None:
    async with receiving() as receiver:
        refused = await asyncio.to_thread(
            subprocess.run,
            [FLAGSTREAM, "admin", "--nats-url", nats_url, "--port", "0", "--webhook-allow", "no such host!"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "--webhook-allow 'no such host!' is not a network" in refused.stderr

        os.environ["FLAGSTREAM_WEBHOOK_ALLOW"] = "192.168.0.0/16, 127.0.0.0/8"
        try:
            allowing = await asyncio.to_thread(AdminProcess(nats_url).start)
        finally:
            del os.environ["FLAGSTREAM_WEBHOOK_ALLOW"]
        strict = await asyncio.to_thread(AdminProcess(nats_url).start)
        try:
            for process, status in ((allowing, 201), (strict, 422)):
                async with httpx.AsyncClient(base_url=process.url, headers=auth_headers(), timeout=30) as http:
                    response = await http.post(f"{API}/webhooks", json={"url": receiver.url})
                    assert response.status_code == status, response.text
        finally:
            await asyncio.to_thread(allowing.stop)
            await asyncio.to_thread(strict.stop)
