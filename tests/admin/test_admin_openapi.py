"""The OpenAPI document covers every route; health and readiness answer what they claim."""

from __future__ import annotations

import asyncio
import re

from starlette.routing import Route

from flagstream.services.admin.app import create_app
from flagstream.services.runtime.natsd import NatsServer
from tests.admin.conftest import Admin


async def test_openapi_describes_every_route(admin: Admin) -> None:
    response = await admin.http.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    app = create_app(nats_url="nats://127.0.0.1:1")
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) > 40
    for route in routes:
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert route.path in doc["paths"], route.path
            assert method.lower() in doc["paths"][route.path], (method, route.path)
            operation = doc["paths"][route.path][method.lower()]
            names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", route.path))
    create = doc["paths"]["/api/v1/projects/{project}/environments/{environment}/flags"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/FlagBody"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FlagRecord"
    }
    assert "422" in create["responses"]
    schemas = doc["components"]["schemas"]
    assert {"Flag", "Rule", "Clause", "Serve", "FlagPatch", "SegmentBody", "EnvironmentRecord"} <= set(schemas)
    assert "comment" in schemas["FlagBody"]["properties"]


async def test_healthz_and_readyz(admin: Admin) -> None:
    assert (await admin.http.get("/healthz")).json() == {"status": "ok", "detail": ""}
    ready = await admin.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_readyz_is_503_while_nats_is_down(admin: Admin, nats_server: NatsServer) -> None:
    nats_server.stop()
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        response = await admin.http.get("/readyz")
        if response.status_code == 503:
            break
        assert asyncio.get_running_loop().time() < deadline, "readyz never reported NATS down"
        await asyncio.sleep(0.05)
    assert (await admin.http.get("/healthz")).status_code == 200, "the process itself is still alive"
    nats_server.restart()
    deadline = asyncio.get_running_loop().time() + 30
    while (await admin.http.get("/readyz")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "readyz never recovered"
        await asyncio.sleep(0.05)


async def test_unknown_route_is_a_json_404(admin: Admin) -> None:
    response = await admin.http.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}
