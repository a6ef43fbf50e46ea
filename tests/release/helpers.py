"""Helpers of the release tests: the API's answers checked, an environment with flags to plan and a tracked metric,
a flag's events read straight from the stream."""

from __future__ import annotations

from typing import Any

import httpx
import nats
from nats.js.api import DeliverPolicy

from flagstream import AsyncFlagstreamClient
from flagstream.events import STREAM, decode_event, subject
from flagstream.events.catalog import FlagEvent
from tests.helpers import until

ENV = "/api/v1/projects/default/environments/production"


async def ok(http: httpx.AsyncClient, method: str, path: str, body: Any = None, status: int = 200, **kw: Any) -> Any:
    response = await http.request(method, path, json=body, **kw)
    assert response.status_code == status, response.text
    return response.json()


async def plan_of(http: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    return await ok(http, "GET", f"{ENV}/plans/{plan_id}")  # type: ignore[no-any-return]


async def seed(http: httpx.AsyncClient, nats_url: str, *, metrics: tuple[str, ...] = ("errors",)) -> None:
    """production with ``checkout`` (boolean, on, serving ``off``), ``banner`` (string a/b, serving ``a``) and
    ``old`` (archived); an SDK has tracked ``metrics`` there (so plans may name them)."""
    await ok(http, "POST", "/api/v1/projects/default/environments", {"key": "production"}, 201)
    await ok(http, "POST", f"{ENV}/flags", {"key": "checkout", "on": True, "fallthrough": {"variation": "off"}}, 201)
    variations = [{"key": "a", "value": "red"}, {"key": "b", "value": "blue"}]
    banner = {"key": "banner", "kind": "string", "on": True, "off_variation": "a", "variations": variations,
              "fallthrough": {"variation": "a"}}  # fmt: skip
    await ok(http, "POST", f"{ENV}/flags", banner, 201)
    await ok(http, "POST", f"{ENV}/flags", {"key": "old"}, 201)
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.05)
    try:
        assert await client.start(wait=15)
        for name in metrics:
            client.track(name, {"key": "seed"})

        async def known() -> bool:
            found = (await ok(http, "GET", f"{ENV}/metrics"))["metrics"]
            return set(metrics) <= set(found)

        await until(known, "the tracked metrics known to the admin")
    finally:
        await client.close()


async def flag_events(nats_url: str, key: str, environment: str = "production") -> list[FlagEvent]:
    """Every event of flag ``key``, oldest first, from the stream itself."""
    nc = await nats.connect(nats_url)
    out: list[FlagEvent] = []
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subject("default", environment, "flag", key), stream=STREAM, ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )  # fmt: skip
        info = await sub.consumer_info()
        if info.num_pending or info.delivered.consumer_seq:
            while True:
                msg = await sub.next_msg(timeout=10)
                out.append(decode_event(msg.data))  # type: ignore[arg-type]
                if msg.metadata.num_pending == 0:
                    break
    finally:
        await nc.close()
    return out
