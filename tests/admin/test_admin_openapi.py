"""The OpenAPI document covers every route; health and readiness answer what they claim."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from starlette.routing import Route

from flagstream.services.admin.app import create_app
from flagstream.services.runtime.natsd import NatsServer
from tests.admin.conftest import API, Admin
from tests.helpers import admin_with_history, auth_headers


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


#: Path parameters of entities the walk creates first (so requests reach the handlers, not only their 404).
EXISTING = {
    "project": "default",
    "environment": "production",
    "key": "checkout",
    "id": "whnone",
    "asset": "none",
    "client_key": "fsc_AAAAAAAAAAAAAAAAAAAAAA",
}


async def test_every_answer_to_a_bad_request_is_in_the_document(nats_url: str, tmp_path: Path) -> None:
    """A walk over every operation of /openapi.json with what a client gets wrong: a key that is no key in the
    path, a Unicode digit in each query parameter, a body that is no JSON, one with an unknown field, one too
    large, no token, and a reader's token on a write. Each answer is a 4xx that the document lists for that
    operation (schemathesis' status_code_conformance, tests/fuzz, checks generated requests the same way)."""
    async with admin_with_history(nats_url, tmp_path) as admin:
        http = admin.http
        assert (await http.post(f"{API}/environments", json={"key": "production"})).status_code == 201
        assert (await http.post(f"{API}/environments/production/flags", json={"key": "checkout"})).status_code == 201
        reader = (await http.post("/api/v1/tokens", json={"name": "r", "role": "reader"})).json()["token"]
        doc = (await http.get("/openapi.json")).json()
        undocumented: list[str] = []
        asked = 0
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                documented = set(operation["responses"])
                names = re.findall(r"{(\w+)}", path)
                tries: list[tuple[str, str, dict[str, Any]]] = []
                if names:
                    bad_path = re.sub(r"{\w+}", "%C3%98", path)  # Ø
                    tries.append(("a key that is no key", bad_path, {}))
                good = path.format(**{n: EXISTING[n] for n in names})
                for query in (p["name"] for p in operation["parameters"] if p["in"] == "query"):
                    tries.append((f"?{query}=¹", f"{good}?{query}=%C2%B9", {}))
                if "requestBody" in operation:
                    tries += [
                        ("a body that is no JSON", good, {"content": b"{"}),
                        ("an unknown field", good, {"json": {"x-unknown-field": 1}}),
                        ("a body over 1 MiB", good, {"content": b" " * (1024 * 1024 + 1)}),
                    ]
                if operation.get("security") != []:
                    tries.append(("no token", good, {"headers": {"Authorization": ""}}))
                    if method != "get":
                        tries.append(("a reader's token", good, {"headers": auth_headers(reader)}))
                for what, url, options in tries:  # none is a valid request: the event streams answer at once
                    response = await http.request(method.upper(), url, **options)
                    asked += 1
                    if str(response.status_code) not in documented or response.status_code >= 500:
                        undocumented.append(
                            f"{method.upper()} {path} with {what}: {response.status_code} {response.text[:200]}"
                        )
        assert asked > 300
        assert not undocumented, "\n".join(undocumented)


async def test_a_method_the_path_does_not_have_is_a_405_listing_every_method_it_has(admin: Admin) -> None:
    response = await admin.http.request("OPTIONS", "/api/v1/tokens")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    response = await admin.http.delete(f"{API}/environments/production/flags/checkout")  # flags are archived
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET, HEAD, PATCH, PUT"
