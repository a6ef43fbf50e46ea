"""Fixtures of the admin API tests: the real app over a real nats-server, through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from flagstream.events import STREAM, decode_event
from flagstream.services.admin.app import create_app
from tests.helpers import ADMIN_TOKEN, auth_headers

API = "/api/v1/projects/default"


@dataclass
class Admin:
    http: httpx.AsyncClient
    nc: NATS

    async def last_seq(self) -> int:
        """Last sequence of the whole stream: proves whether anything was written."""
        info = await self.nc.jetstream().stream_info(STREAM)
        return int(info.state.last_seq)

    async def events(self, subject: str) -> list[Any]:
        """Every event stored on ``subject``, in order (read back from the stream itself)."""
        js = self.nc.jetstream()
        found = []
        seq = 0
        while True:
            try:
                msg = await js.get_msg(STREAM, seq=seq + 1, subject=subject, next=True, direct=True)
            except NotFoundError:
                return found
            assert msg.seq is not None
            seq = msg.seq
            found.append(decode_event(msg.data or b""))

    async def create_env(self, key: str = "development") -> httpx.Response:
        response = await self.http.post(f"{API}/environments", json={"key": key, "name": key.capitalize()})
        assert response.status_code == 201, response.text
        return response


@pytest.fixture
async def admin(nats_url: str) -> AsyncIterator[Admin]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
            nc = await nats.connect(nats_url)
            try:
                yield Admin(http, nc)
            finally:
                await nc.close()
