"""Each step of a change request is an event: the environment's history lists them, a webhook for kind
``request`` tells whoever listens (approvers), the flag's history names the request that applied its change, and
time travel is unaffected (before the apply, production was as it was)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from flagstream.services.admin.app import create_app
from tests.helpers import ADMIN_TOKEN, auth_headers, projecting, until
from tests.webhooks.test_webhooks_api import receiving

API = "/api/v1/projects/default"
PROD = f"{API}/environments/production"


async def test_request_steps_are_history_webhooks_and_leave_time_travel_alone(nats_url: str, tmp_path: Path) -> None:
    db = tmp_path / "readmodel.sqlite"
    app = create_app(nats_url=nats_url, read_model=db, operator_token=ADMIN_TOKEN, webhook_allow=["127.0.0.1"])
    async with receiving() as receiver, projecting(nats_url, db), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)

        def client(token: str = ADMIN_TOKEN) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers(token))

        async with client() as op:

            async def ok(method: str, path: str, body: Any = None, status: int = 200, who: Any = op) -> Any:
                answer = await who.request(method, path, json=body if body is not None else {})
                assert answer.status_code == status, answer.text
                return answer.json()

            await ok("POST", f"{API}/environments", {"key": "production"}, 201)
            await ok("POST", f"{PROD}/flags", {"key": "checkout"}, 201)
            hook = {"url": receiver.url, "environments": ["default/production"], "kinds": ["request"]}
            await ok("POST", "/api/v1/webhooks", hook, 201)
            await ok("PATCH", f"{API}/environments/production", {"approvals": 1})
            tokens = [(await ok("POST", "/api/v1/tokens", {"name": n, "role": "writer"}, 201))["token"]
                      for n in ("ann", "bob")]  # fmt: skip
            async with client(tokens[0]) as ann, client(tokens[1]) as bob:
                request = await ok("POST", f"{PROD}/flags/checkout/on", {"comment": "launch"}, 202, ann)
                one = f"{API}/requests/{request['id']}"
                await ok("POST", f"{one}/comments", {"text": "metrics are ready"}, 201, bob)
                approved = await ok("POST", f"{one}/approve", {}, 200, bob)
                applied = await ok("POST", f"{one}/apply", {}, 200, ann)

            steps = ["request.opened", "request.commented", "request.approved", "request.applied"]

            async def delivered() -> bool:
                return [b["type"] for b in receiver.bodies] == steps

            await until(delivered, "every step of the request sent to the webhook, in order")
            assert [b["actor"] for b in receiver.bodies] == ["ann", "bob", "bob", "ann"]
            assert {b["key"] for b in receiver.bodies} == {request["id"]}
            assert receiver.bodies[0]["event"]["change_request"]["title"] == "launch"

            async def projected() -> bool:
                page = (await op.get(f"{PROD}/history", params={"kind": "request"})).json()
                return len(page.get("items", [])) == len(steps)

            await until(projected, "the request's steps in the environment's history")
            page = await ok("GET", f"{PROD}/history", None, 200)
            types = [e["type"] for e in page["items"]]
            assert types[:5] == ["request.applied", "flag.toggled", "request.approved", "request.commented",
                                 "request.opened"]  # fmt: skip
            toggled = page["items"][1]
            assert toggled["request"] == request["id"]
            assert toggled["actor"] == "ann"
            assert toggled["lines"] == ["turned on"]

            # Time travel: as of the approval, production served the flag off; as of the apply, on.
            before = await ok("GET", f"{PROD}/state?seq={approved['version']}")
            assert [f["state"]["on"] for f in before["flags"]] == [False]
            after = await ok("GET", f"{PROD}/state?seq={applied['version']}")
            assert [f["state"]["on"] for f in after["flags"]] == [True]
