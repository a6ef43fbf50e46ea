"""Several projects, each with its own environments: the projects list (API and CLI)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from flagstream.services.cli import main
from tests.helpers import auth_headers


async def _create_env(http: httpx.AsyncClient, project: str, env: str) -> None:
    r = await http.post(f"/api/v1/projects/{project}/environments", json={"key": env})
    assert r.status_code == 201, r.text


async def test_projects_lists_every_project_with_its_environments(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        assert (await http.get("/api/v1/projects")).json() == {"items": []}
        await _create_env(http, "shop", "staging")
        await _create_env(http, "shop", "production")
        await _create_env(http, "blog", "production")
        r = await http.post("/api/v1/projects/shop/environments/staging/flags", json={"key": "checkout"})
        assert r.status_code == 201, r.text

        items = (await http.get("/api/v1/projects")).json()["items"]
        assert items == [
            {"key": "blog", "environments": ["production"]},
            {"key": "shop", "environments": ["production", "staging"]},
        ]
        # Flags stay per project: blog's production knows nothing of shop's flag.
        blog = await http.get("/api/v1/projects/blog/environments/production/flags")
        assert blog.json()["items"] == []


async def test_a_token_limited_to_environments_sees_only_those(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        await _create_env(http, "shop", "staging")
        await _create_env(http, "shop", "production")
        await _create_env(http, "blog", "production")
        created = await http.post(
            "/api/v1/tokens", json={"name": "stager", "role": "reader", "environments": ["staging"]}
        )
        assert created.status_code == 201, created.text
        secret = created.json()["token"]
        r = await http.get("/api/v1/projects", headers=auth_headers(secret))
        assert r.json()["items"] == [{"key": "shop", "environments": ["staging"]}]
    async with httpx.AsyncClient(base_url=admin_url) as anonymous:
        assert (await anonymous.get("/api/v1/projects")).status_code == 401


async def test_cli_projects_list(admin_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        await _create_env(http, "shop", "staging")
        await _create_env(http, "blog", "production")
    token = auth_headers()["Authorization"].split()[1]
    code = await asyncio.to_thread(main, ["projects", "list", "--api", admin_url, "--token", token])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == ["PROJECT  ENVIRONMENTS", "blog     production", "shop     staging"]
