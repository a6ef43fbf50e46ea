"""The whole loop: a flag changed over the HTTP API reaches two SDK clients (one async, one sync)."""

from __future__ import annotations

import asyncio

import httpx

from flagstream import AsyncFlagstreamClient, FlagstreamClient, ReasonKind
from tests.helpers import auth_headers, eventually

FLAGS = "/api/v1/projects/default/environments/production/flags"
USER = {"key": "user-42", "country": "NO"}


async def test_a_change_over_http_reaches_every_client(nats_url: str, admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth_headers()) as http:
        response = await http.post("/api/v1/projects/default/environments", json={"key": "production"})
        assert response.status_code == 201, response.text

        async_client = AsyncFlagstreamClient(nats_url, environment="production")
        sync_client = FlagstreamClient(nats_url, environment="production")
        await async_client.start()
        await asyncio.to_thread(sync_client.start)
        clients = [async_client, sync_client]
        try:
            assert await async_client.wait_until_ready(30)
            assert await asyncio.to_thread(sync_client.wait_until_ready, 30)

            def answers() -> list[object]:
                return [c.variation("new-checkout", USER, "default") for c in clients]

            assert answers() == ["default", "default"]  # not created yet: the caller's default

            created = await http.post(FLAGS, json={"key": "new-checkout", "variations": [
                {"key": "on", "value": "new"}, {"key": "off", "value": "old"}]})  # fmt: skip
            assert created.status_code == 201, created.text
            await eventually(lambda: answers() == ["old", "old"], within=10, what="both clients see the new flag")
            assert sync_client.variation_detail("new-checkout", USER, "default").reason.kind is ReasonKind.OFF

            toggled = await http.post(f"{FLAGS}/new-checkout/on", json={"comment": "launch"})
            assert toggled.status_code == 200, toggled.text
            await eventually(lambda: answers() == ["new", "new"], within=10, what="both clients see it turned on")
            detail = async_client.variation_detail("new-checkout", USER, "default")
            assert detail.reason.kind is ReasonKind.FALLTHROUGH
            assert detail.seq == toggled.json()["version"]

            archived = await http.post(f"{FLAGS}/new-checkout/archive", json={"comment": "done"})
            assert archived.status_code == 200, archived.text
            await eventually(lambda: answers() == ["default", "default"], within=10, what="archived: defaults again")
            assert sync_client.variation_detail("new-checkout", USER, "default").reason.error_kind == "FLAG_NOT_FOUND"
            assert async_client.state_hash() == sync_client.state_hash()
        finally:
            await async_client.close()
            await asyncio.to_thread(sync_client.close)
