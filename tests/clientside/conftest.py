"""The client-side tests' admin API: production and development with flags available to client-side apps and
flags that are not, and a helper to make a client-side key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.helpers import auth_headers

ENVS = "/api/v1/projects/default/environments"
PAGE = "https://shop.example.com"


async def make_key(api: httpx.AsyncClient, env: str = "production", origins: list[str] | None = None) -> str:
    answer = await api.post(f"{ENVS}/{env}/client-keys", json={"name": "web shop", "origins": origins or [PAGE]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


@pytest.fixture
async def api(admin_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The operator's API client, with production and development holding client-side and server-only flags (a
    flag is in every environment: on in production, off in development where it was not turned on)."""
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as client:
        for env in ("production", "development"):
            assert (await client.post(ENVS, json={"key": env})).status_code == 201
        flags: list[dict[str, Any]] = [
            {"key": "banner", "kind": "string", "client_side": True, "on": True,
             "variations": [{"key": "plain", "value": "plain"}, {"key": "nordic", "value": "nordic"}],
             "off_variation": "plain", "fallthrough": {"variation": "plain"},
             "rules": [{"id": "secret-rule-name", "clauses": [{"attribute": "country", "op": "in", "values": ["NO"]}],
                        "serve": {"variation": "nordic"}}]},
            {"key": "new-checkout", "client_side": True, "on": True},
            {"key": "internal-kill-switch", "on": True},
            {"key": "retired", "client_side": True, "on": True},
        ]  # fmt: skip
        for flag in flags:
            answer = await client.post(f"{ENVS}/production/flags", json=flag)
            assert answer.status_code == 201, answer.text
        assert (await client.post(f"{ENVS}/production/flags/retired/archive", json={})).status_code == 200
        yield client
