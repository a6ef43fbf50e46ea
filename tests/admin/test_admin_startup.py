"""Start-up against a NATS that does not (yet) answer for JetStream: the admin keeps trying for its connect wait
(a cluster electing its leaders answers within seconds), then fails with a message naming what is missing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from flagstream.services.admin.app import create_app
from flagstream.services.changes.errors import Unavailable
from flagstream.services.runtime.natsd import NatsServer
from tests.helpers import ADMIN_TOKEN


async def test_without_jetstream_the_admin_retries_then_names_the_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "no-jetstream.conf"
    config.write_text("# a nats-server without JetStream\n")
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config)
    server.launch()
    try:
        async with asyncio.timeout(30):  # until nats-server accepts clients
            while True:
                try:
                    nc = await nats.connect(server.url, allow_reconnect=False, connect_timeout=1)
                except Exception:
                    await asyncio.sleep(0.05)
                    continue
                await nc.close()
                break
        app = create_app(nats_url=server.url, connect_wait=1.5, operator_token=ADMIN_TOKEN)
        with pytest.raises(Unavailable, match=r"JetStream did not answer for the event stream within 1.5s"):
            async with app.router.lifespan_context(app):
                pass
        assert any("trying again" in r.getMessage() for r in caplog.records)  # it did not give up at once
    finally:
        server.stop()
