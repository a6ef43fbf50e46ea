"""OpenFeature's Node server SDK with its OFREP provider (``@openfeature/ofrep-provider``, from the npm registry)
against the client door: another language evaluating with the same client-side key."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.clientside.build import NODE, WEB, require_packages
from tests.clientside.conftest import make_key


async def node(*args: str) -> list[dict[str, object]]:
    require_packages()
    proc = await asyncio.create_subprocess_exec(
        NODE, str(WEB / "server-provider.mjs"), *args, cwd=WEB,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


async def test_the_node_server_provider_evaluates_with_a_client_side_key(api: httpx.AsyncClient) -> None:
    key = await make_key(api)
    base = f"{str(api.base_url).rstrip('/')}/client/{key}"
    results = {r["key"]: r for r in await node(base, "banner:string", "new-checkout:boolean",
                                                "internal-kill-switch:boolean", "no-such-flag:boolean")}  # fmt: skip
    assert (results["banner"]["value"], results["banner"]["reason"]) == ("nordic", "TARGETING_MATCH")
    assert results["banner"]["variant"] == "nordic"
    assert results["new-checkout"]["value"] is True
    # not available to client-side apps: the provider sees exactly a missing flag, and serves the default
    hidden, missing = results["internal-kill-switch"], results["no-such-flag"]
    assert (hidden["errorCode"], hidden["value"]) == ("FLAG_NOT_FOUND", False)
    assert {k: v for k, v in hidden.items() if k != "key"} == {k: v for k, v in missing.items() if k != "key"}


async def test_the_node_server_provider_with_a_revoked_key_gets_defaults(api: httpx.AsyncClient) -> None:
    key = await make_key(api)
    assert (await api.delete(f"/api/v1/projects/default/environments/production/client-keys/{key}")).status_code == 200
    base = f"{str(api.base_url).rstrip('/')}/client/{key}"
    results = await node(base, "new-checkout:boolean")
    assert results[0]["value"] is False
    assert results[0]["errorCode"] is not None
