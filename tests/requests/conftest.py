"""Fixtures of the change-request tests: the real admin app over a real nats-server (ASGI transport), a project
with development and production, production asking for approvals, and API tokens for the people involved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from starlette.applications import Starlette

from flagstream.events import STREAM
from flagstream.services.admin.app import create_app
from tests.helpers import ADMIN_TOKEN, auth_headers

API = "/api/v1/projects/default"
PROD = f"{API}/environments/production"
DEV = f"{API}/environments/development"


@dataclass
class Team:
    """The admin app, the operator's client, and one client per token (``ann`` and ``bob`` write everywhere,
    ``rita`` only reads, ``dev`` writes development only)."""

    app: Starlette
    nc: NATS
    op: httpx.AsyncClient
    people: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def __getitem__(self, name: str) -> httpx.AsyncClient:
        return self.people[name]

    async def last_seq(self) -> int:
        """The stream's last sequence: proves whether anything was written."""
        return int((await self.nc.jetstream().stream_info(STREAM)).state.last_seq)

    async def flag(self, key: str, env: str = "production") -> dict[str, Any]:
        answer = await self.op.get(f"{API}/environments/{env}/flags/{key}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def gate(self, env: str = "production", **settings: Any) -> None:
        """Ask for approvals in ``env`` (settings: approvals, approvers, emergency_off)."""
        body = {"approvals": 1, **settings}
        answer = await self.op.patch(f"{API}/environments/{env}", json=body)
        assert answer.status_code in (200, 202), answer.text


async def _token(op: httpx.AsyncClient, name: str, role: str, environments: list[str] | None) -> str:
    answer = await op.post("/api/v1/tokens", json={"name": name, "role": role, "environments": environments})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]  # type: ignore[no-any-return]


@pytest.fixture
async def team(nats_url: str) -> AsyncIterator[Team]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients: list[httpx.AsyncClient] = []

        def client(token: str) -> httpx.AsyncClient:
            http = httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers(token))
            clients.append(http)
            return http

        op = client(ADMIN_TOKEN)
        nc = await nats.connect(nats_url)
        try:
            for env in ("development", "production"):
                answer = await op.post(f"{API}/environments", json={"key": env, "production": env == "production"})
                assert answer.status_code == 201, answer.text
            team = Team(app, nc, op)
            for name, role, envs in (
                ("ann", "writer", None), ("bob", "writer", None), ("rita", "reader", None),
                ("dev", "writer", ["development"]), ("carl", "admin", None),
            ):  # fmt: skip
                team.people[name] = client(await _token(op, name, role, envs))
            yield team
        finally:
            await nc.close()
            for http in clients:
                await http.aclose()
