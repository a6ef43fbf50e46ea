"""The live change stream the UI listens to (Server-Sent Events per environment), over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.ui.conftest import API, create_env, create_flag

STREAM = f"{API}/environments/development/changes/stream"
SSE = {"Accept": "text/event-stream"}


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parsed SSE events: {"event", "id", "data"}."""
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in current:
                yield current
            current = {}
        elif not line.startswith(":") and ":" in line:
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")


async def test_changes_arrive_with_their_version_and_a_reconnect_misses_nothing(api: httpx.AsyncClient) -> None:
    await create_env(api, "development")
    await create_env(api, "staging")
    async with api.stream("GET", STREAM, headers=SSE) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        ready = await anext(stream)
        assert ready["event"] == "ready"
        created = await create_flag(api, "development", "dark-mode")
        # A change in another environment only: not in this stream.
        assert (await api.post(f"{API}/environments/staging/flags/dark-mode/on", json={})).status_code == 200
        toggled = (await api.post(f"{API}/environments/development/flags/dark-mode/on", json={})).json()
        first = await anext(stream)
        second = await anext(stream)
    assert first["event"] == "change"
    assert int(first["id"]) == created["version"]
    body = json.loads(first["data"])
    assert body["kind"] == "flag"
    assert body["event"] == "flag.created"
    assert body["record"] == created
    assert json.loads(second["data"])["record"] == toggled

    # Resuming after the first change replays the second (nothing is missed between two connections).
    headers = {**SSE, "Last-Event-ID": first["id"]}
    async with api.stream("GET", STREAM, headers=headers) as response:
        stream = events(response)
        assert (await anext(stream))["event"] == "ready"
        again = await anext(stream)
    assert int(again["id"]) == toggled["version"]


async def test_plain_clients_get_the_ready_event_and_the_end_and_tokens_are_required(
    api: httpx.AsyncClient, admin_url: str
) -> None:
    await create_env(api, "development")
    response = await api.get(STREAM, params={"after": "0"})
    assert response.status_code == 200
    assert "event: ready" in response.text
    assert (await api.get(STREAM, params={"after": "x"})).status_code == 400
    async with httpx.AsyncClient(base_url=admin_url) as anonymous:
        assert (await anonymous.get(STREAM, headers=SSE)).status_code == 401
        assert (await anonymous.get("/ui/")).status_code == 200
    doc = (await api.get("/openapi.json")).json()
    assert "get" in doc["paths"]["/api/v1/projects/{project}/environments/{environment}/changes/stream"]


async def test_the_project_stream_carries_every_environment_the_token_may_read(api: httpx.AsyncClient) -> None:
    await create_env(api, "development")
    await create_env(api, "production")
    minted = await api.post(
        "/api/v1/tokens", json={"name": "dev-only", "role": "reader", "environments": ["development"]}
    )
    assert minted.status_code == 201, minted.text
    dev_only = {**SSE, "Authorization": f"Bearer {minted.json()['token']}"}
    project_stream = f"{API}/changes/stream"
    async with (
        api.stream("GET", project_stream, headers=SSE) as everything,
        api.stream("GET", project_stream, headers=dev_only) as mine,
    ):
        all_events, my_events = events(everything), events(mine)
        assert (await anext(all_events))["event"] == "ready"
        assert (await anext(my_events))["event"] == "ready"
        created = (await api.post(f"{API}/flags", json={"key": "dark-mode"})).json()  # in both
        on = await api.post(f"{API}/environments/production/flags/dark-mode/on", json={})
        seen = [json.loads((await anext(all_events))["data"]) for _ in range(3)]
        first = await anext(my_events)
        assert json.loads(first["data"])["environment"] == "development"
        # The production toggle never reaches the development-only token: the next it sees is a later change.
        dev_on = await api.post(f"{API}/environments/development/flags/dark-mode/on", json={})
        second = json.loads((await anext(my_events))["data"])
    assert sorted((c["environment"], c["event"]) for c in seen) == [
        ("development", "flag.created"),
        ("production", "flag.created"),
        ("production", "flag.toggled"),
    ]
    assert seen[-1]["record"] == on.json()
    assert {c["record"]["version"] for c in seen[:2]} <= {c["version"] for c in created["environments"].values()}
    assert (second["environment"], second["record"]["version"]) == ("development", dev_on.json()["version"])
