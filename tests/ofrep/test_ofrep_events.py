"""OFREP event streams: a flag change is pushed as refetchEvaluation, and the re-fetch sees it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN_TOKEN, auth_headers, flag_in, serving
from tests.ofrep.wire import API, BULK, CONTEXT, EVENTS

SSE = {"Accept": "text/event-stream"}


def parse(block: str) -> dict[str, Any]:
    """One SSE block as {field: value}; a comment-only block is {}."""
    fields: dict[str, Any] = {}
    for line in block.splitlines():
        if line.startswith(":") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    return fields


@contextlib.asynccontextmanager
async def listening(http: httpx.AsyncClient, uri: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """An open event stream: its data events, parsed, in a queue; connected once this yields."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    opened = asyncio.Event()

    async def read() -> None:
        async with http.stream("GET", uri, headers=SSE) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            buffer = ""
            async for chunk in response.aiter_text():
                opened.set()
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = parse(block)
                    if "data" in fields:
                        await events.put(fields)

    reader = asyncio.create_task(read())
    connected = asyncio.create_task(opened.wait())
    try:
        async with asyncio.timeout(30):
            await asyncio.wait({reader, connected}, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        if reader.done():
            reader.result()  # raises what went wrong
        yield events
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def next_event(events: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    async with asyncio.timeout(30):
        fields = await events.get()
    return {"id": fields.get("id"), **json.loads(fields["data"])}


async def test_bulk_answers_name_the_event_stream(http: httpx.AsyncClient) -> None:
    body = (await http.post(BULK, json=CONTEXT)).json()
    assert body["eventStreams"] == [
        {
            "type": "sse",
            "endpoint": {"requestUri": f"{EVENTS}?project=default&environment=production"},
            "inactivityDelaySec": 120,
        }
    ]


async def test_a_change_is_pushed_and_the_refetch_sees_it(http: httpx.AsyncClient) -> None:
    first = (await http.post(BULK, json=CONTEXT)).json()
    uri = first["eventStreams"][0]["endpoint"]["requestUri"]
    assert {f["key"]: f["value"] for f in first["flags"]}["checkout"] is True
    async with listening(http, uri) as events:
        off = await http.post(f"{API}/production/flags/checkout/off", json={})
        assert off.status_code == 200, off.text
        event = await next_event(events)
        version = off.json()["version"]
        assert event == {"id": str(version), "type": "refetchEvaluation", "etag": str(version)}
        again = await http.post(f"{BULK}?flagConfigEtag={event['etag']}", json=CONTEXT)
        assert again.status_code == 200
        checkout = {f["key"]: f for f in again.json()["flags"]}["checkout"]
        assert (checkout["value"], checkout["reason"]) == (False, "DISABLED")

        # Another environment's change is not this stream's: the next event is production's next change.
        assert (await http.post(API, json={"key": "development"})).status_code == 201
        other = await http.post(f"{API}/development/flags/checkout/on", json={})
        assert other.status_code == 200
        on = await http.post(f"{API}/production/flags/checkout/on", json={})
        assert on.status_code == 200
        assert (await next_event(events))["etag"] == str(on.json()["version"])


async def test_a_followed_environment_keeps_its_stream_when_the_pool_is_full(nats_url: str) -> None:
    """With room for one environment, evaluating another must not close the one a stream follows."""
    from flagstream.services.admin.app import create_app

    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=30) as http:
        app.state.evaluator.capacity = 1
        for env in ("production", "development"):
            assert (await http.post(API, json={"key": env})).status_code == 201
            assert (await flag_in(http, API, env, {"key": "checkout", "on": True})).is_success
        async with listening(http, f"{EVENTS}?environment=production") as events:
            dev = await http.post(BULK, json=CONTEXT, headers={"X-Flagstream-Environment": "development"})
            assert dev.status_code == 200, dev.text
            off = await http.post(f"{API}/production/flags/checkout/off", json={})
            assert off.status_code == 200, off.text
            assert (await next_event(events))["etag"] == str(off.json()["version"])


async def test_a_client_that_reconnects_behind_gets_an_event_at_once(http: httpx.AsyncClient) -> None:
    before = (await http.post(BULK, json=CONTEXT)).json()["metadata"]["seq"]
    changed = await http.post(f"{API}/production/flags/checkout/off", json={})
    version = changed.json()["version"]
    # A plain HTTP client (no Accept: text/event-stream) gets what is due now, and the end of the stream.
    for last, due in ((before, [str(version)]), (version, [])):
        response = await http.get(EVENTS, headers={"Last-Event-ID": str(last)})
        assert response.status_code == 200
        blocks = [parse(b) for b in response.text.split("\n\n")]
        assert [json.loads(b["data"])["etag"] for b in blocks if "data" in b] == due


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("", {"Last-Event-ID": "yesterday"}, 400),
        ("?environment=no/such", {}, 400),
        ("?environment=staging", {}, 404),
        ("?environment=production", {"Authorization": ""}, 401),
    ],
)
async def test_bad_stream_requests_are_clear_errors(
    http: httpx.AsyncClient, query: str, headers: dict[str, str], status: int
) -> None:
    response = await http.get(f"{EVENTS}{query}", headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]


async def test_a_token_limited_to_another_environment_cannot_listen(http: httpx.AsyncClient) -> None:
    assert (await http.post(API, json={"key": "development"})).status_code == 201
    token = await http.post("/api/v1/tokens", json={"name": "dev", "role": "reader", "environments": ["development"]})
    sdk = auth_headers(token.json()["token"])
    refused = await http.get(f"{EVENTS}?environment=production", headers=sdk)
    assert refused.status_code == 403
    assert "production" in refused.json()["errorDetails"]
    own = await http.get(EVENTS, headers=sdk)  # its only environment, without saying so
    assert own.status_code == 200
