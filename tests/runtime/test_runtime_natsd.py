"""The nats-server the fixtures and ``flagstream up`` start: a free port picked for it can be taken by another
process before nats-server binds it (any outgoing connection may get it as its ephemeral port). It then starts
again on new ports instead of failing."""

from __future__ import annotations

import socket
from pathlib import Path

import nats
import pytest

from flagstream.services.runtime import natsd


async def test_a_port_taken_before_the_bind_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])  # the first pick is the busy port, as in the race; then real free ports
        free = natsd.free_port
        monkeypatch.setattr(natsd, "free_port", lambda: next(picks, None) or free())

        server = natsd.NatsServer(store_dir=tmp_path / "nats").start()
        try:
            assert server.port != busy
            nc = await nats.connect(server.url)
            await nc.jetstream().account_info()  # JetStream answers on the new port
            await nc.close()
        finally:
            server.stop()


async def test_a_cluster_whose_port_was_taken_starts_on_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])  # the first node's cluster port
        free = natsd.free_port
        monkeypatch.setattr(natsd, "free_port", lambda: next(picks, None) or free())

        cluster = natsd.NatsCluster(tmp_path / "cluster").start()
        try:
            assert cluster.meta_leader() is not None
            nc = await nats.connect(cluster.urls)
            assert (await nc.jetstream().account_info()).limits is not None  # JetStream of the cluster answers
            await nc.close()
        finally:
            cluster.stop()
