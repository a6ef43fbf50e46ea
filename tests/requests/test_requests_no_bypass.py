"""No route bypasses a change request: every write route of the admin API, listed here, either answers 202 with a
request in an environment that asks for approvals (whoever calls it: the operator token too), or is listed as not
changing an environment, with why. A write route added later fails this test until it is classified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from flagstream.events import ENVIRONMENT_FIELDS, STREAM
from flagstream.services.admin import auth
from flagstream.services.admin.app import create_app
from flagstream.services.admin.registry import all_endpoints
from flagstream.services.changes import EventStore
from tests.helpers import ADMIN_TOKEN, auth_headers, until

API = "/api/v1/projects/default"
PROD = f"{API}/environments/production"
DEV = f"{API}/environments/development"

#: Write routes that change an environment (operation id without the default project's suffix): the flag or
#: segment each acts on, and its body (from the current states, for a PUT).
GATED: dict[str, tuple[str, Any]] = {
    "createFlag": ("", {"key": "fresh", "name": "Fresh"}),
    "replaceFlag": ("checkout", "whole flag"),
    "patchFlag": ("checkout", {"name": "Renamed"}),
    "onFlag": ("search", {}),
    "offFlag": ("checkout", {"comment": "no kill switch in this environment: held like any change"}),
    "archiveFlag": ("checkout", {}),
    "restoreFlag": ("old", {}),
    "createSegment": ("", {"key": "fresh-segment"}),
    "replaceSegment": ("beta", "whole segment"),
    "patchSegment": ("beta", {"included": ["u1", "u2", "u3"]}),
    "archiveSegment": ("beta", {}),
    "restoreSegment": ("retired", {}),
    "patchEnvironment": ("", {"name": "Prod"}),
    "createProjectFlag": ("", {"key": "fresh-everywhere"}),
    "patchProjectFlag": ("checkout", {"description": "project-wide"}),
    "deleteProjectFlag": ("old", {}),
    "archiveProjectFlag": ("search", {}),
    "restoreProjectFlag": ("old", {}),
    "promoteFlags": ("", {"from": "development", "to": "production", "flags": ["search"]}),
    "replaceFlagConfiguration": ("search", "whole configuration"),
    "patchFlagConfiguration": ("search", {"targets": [{"variation": "on", "values": ["qa"]}]}),
    "revertEnvironment": ("", "back to before"),
    "revertFlag": ("checkout", "back to before"),
    "revertSegment": ("beta", "back to before"),
    "createSchedule": ("", "a schedule"),
    "createPlan": ("", {"flag": "promo", "variation": "on", "steps": [{"percent": 10}, {"percent": 100}]}),
    "advancePlan": ("", {"comment": "its hold is manual: the next step now"}),
}

#: Write routes that do not change an environment's flags, segments or settings, and why.
NOT_CHANGES: dict[str, str] = {
    "createEnvironment": "a new environment: it has asked for no approvals before it exists",
    "cancelSchedule": "cancelling a pending scheduled change writes nothing to a flag or segment",
    "pausePlan": "a release plan (approved when it was made) holds its next step: nothing more is served",
    "resumePlan": "a paused plan goes on with the steps that were approved, at their holds",
    "abortPlan": "a plan is stopped and its flag written back to what it served before the plan (like the kill "
    "switch: never slowed)",
    **dict.fromkeys(
        (
            "createRequest",
            "editRequest",
            "rebaseRequest",
            "commentRequest",
            "approveRequest",
            "rejectRequest",
            "cancelRequest",
            "applyRequest",
        ),
        "the change requests themselves",
    ),
    **dict.fromkeys(
        (
            "createToken",
            "revokeToken",
            "createWebhook",
            "deleteWebhook",
            "createClientKey",
            "revokeClientKey",
            "createSdkCredential",
            "revokeSdkCredential",
            "createUser",
            "patchUser",
            "resetPassword",
            "endSessions",
            "setGroupRoles",
            "resetGroupRoles",
        ),
        "who may sign in or connect, and where changes are sent (admins only): no flag, segment or setting",
    ),
}


def _write_routes() -> list[Any]:
    return [e for e in [*all_endpoints(), *auth.ENDPOINTS] if e.write]


def test_every_write_route_is_listed() -> None:
    found = {e.operation_id.removesuffix("Default") for e in _write_routes()}
    listed = set(GATED) | set(NOT_CHANGES)
    assert found == listed, f"unlisted: {sorted(found - listed)}; gone: {sorted(listed - found)}"
    assert not set(GATED) & set(NOT_CHANGES)


@pytest.fixture
async def http(nats_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, history_db=tmp_path / "history.db")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as client:
            yield client


async def _ok(answer: Any, *codes: int) -> Any:
    answer = await answer
    assert answer.status_code in (codes or (200, 201)), answer.text
    return answer.json()


async def _production(nats_url: str) -> dict[str, int]:
    """The version of every flag, segment, the environment and every schedule of production, from the stream."""
    nc = await nats.connect(nats_url)
    try:
        store = EventStore(nc, STREAM)
        found = await store.latest("flagstream.default.production.>")
        return {subj: s.seq for subj, s in found.items() if ".request." not in subj}
    finally:
        await nc.close()


async def test_no_route_changes_an_environment_that_asks_for_approvals(http: httpx.AsyncClient, nats_url: str) -> None:
    for env in ("development", "production"):
        await _ok(http.post(f"{API}/environments", json={"key": env}))
    for key in ("checkout", "search", "old", "promo", "rollout"):
        await _ok(http.post(f"{API}/flags", json={"key": key}))
    for key in ("promo", "rollout"):  # serving "off" to everyone: "on" is rolled out by a release plan
        await _ok(http.patch(f"{PROD}/flags/{key}", json={"fallthrough": {"variation": "off"}}))
    steps = [{"percent": 5, "hold": "manual"}, {"percent": 100}]
    plan = await _ok(http.post(f"{PROD}/plans", json={"flag": "rollout", "variation": "on", "steps": steps}))
    await until(lambda: _at_step(http, plan["id"], 0), "the plan's first step written")
    await _ok(http.post(f"{API}/flags/old/archive", json={}))
    await _ok(http.post(f"{DEV}/flags/search/on", json={}))
    await _ok(http.post(f"{PROD}/segments", json={"key": "beta", "included": ["u1"]}))
    await _ok(http.post(f"{PROD}/segments", json={"key": "retired"}))
    await _ok(http.post(f"{PROD}/segments/retired/archive", json={}))
    pending = await _ok(http.post(f"{PROD}/schedules", json={"due": "2099-01-01T00:00:00Z", "flag": "search",
                                                              "action": "on"}))  # fmt: skip
    before = (await _ok(http.get(f"{PROD}/flags/checkout")))["version"]
    await _ok(http.post(f"{PROD}/flags/checkout/on", json={}))
    await _ok(http.patch(f"{PROD}/segments/beta", json={"included": ["u1", "u2"]}))
    await _ok(http.patch(f"{API}/environments/production", json={"approvals": 1}))
    versions = await _production(nats_url)

    async def body_of(op: str, key: str, body: Any) -> Any:
        if body == "whole flag":
            return {**(await _ok(http.get(f"{PROD}/flags/{key}")))["flag"], "name": "Whole"}
        if body == "whole segment":
            return {**(await _ok(http.get(f"{PROD}/segments/{key}")))["segment"], "name": "Whole"}
        if body == "whole configuration":
            config = await _ok(http.get(f"{API}/flags/{key}/environments/production"))
            return {**{f: config[f] for f in ENVIRONMENT_FIELDS if f in config}, "on": True, "off_default": False}
        if body == "back to before":
            return {"seq": before}
        if body == "a schedule":
            return {"due": (datetime.now(UTC) + timedelta(days=1)).isoformat(), "flag": "search", "action": "on"}
        return body

    held = 0
    for endpoint in _write_routes():
        op = endpoint.operation_id.removesuffix("Default")
        if op not in GATED:
            continue
        key, body = GATED[op]
        path = endpoint.path.format(project="default", environment="production", key=key, id=plan["id"])
        data = await body_of(op, key, body)

        async def call(data: Any = data, endpoint: Any = endpoint, path: str = path) -> httpx.Response:
            return await http.request(endpoint.method, path, json=data)

        answer = await call()
        if answer.status_code == 503:  # a revert reads history: the read model catches up first
            await until(lambda: _not_503(call), f"{op}: history ready")
            answer = await call()
        assert answer.status_code == 202, f"{endpoint.method} {path}: {answer.status_code} {answer.text}"
        assert answer.json()["changes"], f"{op}: a request that changes nothing"
        held += 1
    # Client-side marking is a flag change like any other.
    marked = await http.patch(f"{PROD}/flags/search", json={"client_side": True})
    assert marked.status_code == 202, marked.text
    held += 1

    assert await _production(nats_url) == versions  # nothing of production changed
    opened = (await _ok(http.get(f"{API}/requests")))["items"]
    assert len(opened) == held
    # What does not change an environment still works without a request.
    cancelled = await _ok(http.post(f"{PROD}/schedules/{pending['id']}/cancel", json={}))
    assert cancelled["status"] == "cancelled"


async def _at_step(http: httpx.AsyncClient, plan_id: str, step: int) -> bool:
    return bool((await _ok(http.get(f"{PROD}/plans/{plan_id}")))["step"] == step)


async def _not_503(call: Any) -> bool:
    return (await call()).status_code != 503


async def test_a_writer_of_development_only_gets_no_request_for_production(http: httpx.AsyncClient) -> None:
    for env in ("development", "production"):
        await _ok(http.post(f"{API}/environments", json={"key": env}))
    await _ok(http.post(f"{API}/flags", json={"key": "checkout"}))
    await _ok(http.patch(f"{API}/environments/production", json={"approvals": 1}))
    token = (
        await _ok(http.post("/api/v1/tokens", json={"name": "dev", "role": "writer", "environments": ["development"]}))
    )["token"]
    headers = auth_headers(token)
    for method, path, body in (
        ("POST", f"{PROD}/flags/checkout/on", {}),
        ("PATCH", f"{API}/flags/checkout", {"description": "everywhere"}),
        ("POST", f"{API}/requests", {"changes": [{"method": "POST", "path": f"{PROD}/flags/checkout/on"}]}),
    ):
        answer = await http.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
    assert (await _ok(http.get(f"{API}/requests")))["items"] == []
