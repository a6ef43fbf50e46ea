"""Data written before flags were project-wide opens with today's code and keeps serving what it served.

The fixture (``data/before-project-flags.json``) holds the event stream that version wrote, message by message,
and what its SDK engine answered for each context in each environment. Here that stream is replayed into a stream
made as that version made it (no atomic batches), and today's admin, projector and SDK clients read it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.events import STREAM, decode_event
from flagstream.services.projector import ReadModel
from flagstream.services.runtime import stream_config
from tests.helpers import admin_with_history

FIXTURE = json.loads((Path(__file__).parent / "data" / "before-project-flags.json").read_text())
API = "/api/v1/projects/default"


@pytest.fixture
async def old_stream(nats_url: str) -> None:
    """The stream as the earlier version made it (no atomic batches), with the messages it wrote."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(replace(stream_config(), allow_atomic=None))
        for message in FIXTURE["messages"]:
            ack = await js.publish(message["subject"], json.dumps(message["data"]).encode())
            assert ack.seq == message["seq"]
    finally:
        await nc.close()


def test_every_event_written_then_decodes() -> None:
    for message in FIXTURE["messages"]:
        decode_event(json.dumps(message["data"]).encode())


async def test_data_written_per_environment_keeps_serving_and_converges(
    old_stream: None, nats_url: str, tmp_path: Path
) -> None:
    async with admin_with_history(nats_url, tmp_path) as api:
        http = api.http
        nc = await nats.connect(nats_url)
        info = await nc.jetstream().stream_info(STREAM)
        await nc.close()
        assert info.config.allow_atomic, "the stream is upgraded at start"

        clients = {env: AsyncFlagstreamClient(nats_url, environment=env) for env in FIXTURE["answers"]}
        try:
            await asyncio.gather(*(c.start(wait=30) for c in clients.values()))

            def served() -> dict[str, Any]:
                return {
                    env: {
                        ctx: {
                            flag: [d.variation, d.value]
                            for flag in expected
                            if (d := clients[env].variation_detail(flag, {"key": ctx, "country": "NO"}, None))
                        }
                        for ctx, expected in contexts.items()
                    }
                    for env, contexts in FIXTURE["answers"].items()
                }

            assert served() == FIXTURE["answers"], "every environment serves what it served"

            # The project view: one flag, its definition from the environment written last, the rest reported.
            checkout = (await http.get(f"{API}/flags/checkout")).json()
            assert checkout["definition"]["name"] == "Checkout"
            assert checkout["diverged"] == {"development": ["name", "tags", "variations"]}
            dev_variations = [v["key"] for v in checkout["environments"]["development"]["variations"]]
            assert dev_variations == ["on", "off", "beta"]
            assert (await http.get(f"{API}/flags/theme")).json()["diverged"] == {}
            assert (await http.get(f"{API}/flags/dev-only")).json()["missing"] == ["production"]

            # A project-wide change is refused while it would take a served variation from development ...
            refused = await http.patch(f"{API}/flags/checkout", json={"description": "one flag now"})
            assert refused.status_code == 422
            assert "variation 'beta' is served in development by rule 1 (b)" in refused.json()["error"]
            # ... and converges the environments once it keeps it.
            variations = [{"key": "on", "value": True}, {"key": "off", "value": False}, {"key": "beta", "value": True}]
            converged = await http.patch(f"{API}/flags/checkout", json={"name": "Checkout", "variations": variations})
            assert converged.status_code == 200, converged.text
            assert converged.json()["diverged"] == {}
            # A key that was in one environment only is created (off) in the others by a project-wide change.
            filled = await http.patch(f"{API}/flags/dev-only", json={"description": "now everywhere"})
            assert filled.status_code == 200, filled.text
            assert filled.json()["missing"] == []
            assert filled.json()["environments"]["production"]["summary"] == "off"

            last = int((await http.get(f"{API}/flags/dev-only")).headers["etag"].strip('"'))
            await asyncio.gather(*(c.wait_for_sequence(last, timeout=30) for c in clients.values()))
            assert served() == FIXTURE["answers"], "converging changed nothing any environment serves"
            assert clients["production"].bool_variation("dev-only", {"key": "u"}, True) is False  # off there

            # Projector and SDKs agree on the state of each environment (the read model opened by today's code).
            await api.projector.wait_caught_up(30)
            async with await ReadModel.open(api.db, readonly=True) as model:
                assert await model.bad_event_count() == 0
                for env, client in clients.items():
                    assert await model.state_hash("default", env) == client.ruleset.state_hash()
        finally:
            await asyncio.gather(*(c.close() for c in clients.values()))
