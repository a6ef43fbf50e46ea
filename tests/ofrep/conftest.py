"""The OFREP tests' admin API over HTTP, with production flags to evaluate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.helpers import auth_headers
from tests.ofrep.wire import API


@pytest.fixture
async def http(admin_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as client:
        assert (await client.post(API, json={"key": "production"})).status_code == 201
        flags: list[dict[str, Any]] = [
            {
                "key": "checkout",
                "on": True,
                "fallthrough": {"variation": "off"},
                "rules": [
                    {
                        "id": "no",
                        "clauses": [{"attribute": "country", "op": "in", "values": ["NO"]}],
                        "serve": {"variation": "on"},
                    }
                ],
            },
            {"key": "banner", "kind": "string", "on": True, "variations": [{"key": "a", "value": "A"}],
             "off_variation": "a", "fallthrough": {"variation": "a"}},
            {"key": "old", "on": True},
        ]  # fmt: skip
        for flag in flags:
            assert (await client.post(f"{API}/production/flags", json=flag)).status_code == 201
        archived = await client.post(f"{API}/production/flags/old/archive", json={})
        assert archived.status_code == 200, archived.text
        yield client
