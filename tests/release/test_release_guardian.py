"""The guardian against real processes: a ``flagstream admin`` process runs the plan, a simulated application's real
SDK client evaluates the flag and tracks errors. A variation that raises errors is rolled back by the guardian (the
flag written back, the evidence in the event, webhooks fired); an A/A run (no difference) goes through every step;
what contexts never exposed track is counted as such and changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagstream import AsyncFlagstreamClient
from flagstream.events.tracking import Exposed, MetricsBatch, encode_metrics, metrics_subject
from tests.helpers import AdminProcess, WithHistory, admin_with_history, auth_headers, serving, until
from tests.release.app import SimulatedApp
from tests.release.helpers import ENV, flag_events, ok, plan_of, seed

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def app_running(app: SimulatedApp) -> AsyncIterator[SimulatedApp]:
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=204)

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield f"{url}/hook", received


async def _status_in(http: httpx.AsyncClient, plan_id: str, *statuses: str) -> bool:
    return (await plan_of(http, plan_id))["status"] in statuses


async def test_a_variation_that_raises_errors_is_rolled_back_by_the_guardian(nats_url: str, tmp_path: Path) -> None:
    admin = AdminProcess(nats_url, "--webhook-allow", "127.0.0.1").start()
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.2)
    try:
        async with (
            httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=60) as http,
            webhook_receiver() as (hook_url, received),
        ):
            await seed(http, nats_url)
            await ok(http, "POST", "/api/v1/webhooks", {"url": hook_url, "kinds": ["flag", "plan"]}, 201)
            assert await client.start(wait=15)
            app = SimulatedApp(client, "checkout", rates={"on": 0.25}, base=0.01, rate=400, users=2_000)
            async with app_running(app):
                body = {
                    "flag": "checkout", "variation": "on", "min_users": 30, "comment": "new checkout",
                    "steps": [{"percent": 20, "hold": "1h"}, {"percent": 100}],
                    "guardrails": [{"metric": "errors", "kind": "count", "max_change": 0}],
                }  # fmt: skip
                plan = await ok(http, "POST", f"{ENV}/plans", body, 201)
                await until(lambda: _status_in(http, plan["id"], "rolled_back", "failed", "completed"),
                            "the guardian's rollback")  # fmt: skip
                assert app.errors.get("on", 0) > 0  # the users who got the new variation did see more errors
            done = await plan_of(http, plan["id"])
            assert done["status"] == "rolled_back", done
            evidence = done["evidence"]
            assert (evidence["reason"], evidence["metric"], evidence["kind"], evidence["step"]) == (
                "guardrail", "errors", "count", 0,
            )  # fmt: skip
            assert evidence["lower"] > 0  # harm shown beyond doubt: the whole interval above what is accepted
            assert evidence["effect"] > evidence["lower"]
            assert evidence["treatment_value"] > evidence["control_value"]
            assert min(evidence["treatment_users"], evidence["control_users"]) >= 30
            assert "errors (events per user) rose by" in evidence["text"]
            # One watched step: it has the whole error rate, four fifths for the guardrail (the rest: sample ratio).
            assert done["split"] == "by_step"
            assert evidence["alpha"] == pytest.approx(done["steps"][0]["guardrail_alpha"]) == pytest.approx(0.04)
            # The flag serves what it served before the plan, written by the guardian with the evidence.
            flag = await ok(http, "GET", f"{ENV}/flags/checkout")
            assert flag["flag"]["fallthrough"]["variation"] == "off"
            last = (await flag_events(nats_url, "checkout"))[-1]
            assert last.actor == "guardian"
            assert last.comment.startswith("rolled back: errors")
            timeline = (await ok(http, "GET", f"{ENV}/plans/{plan['id']}/timeline"))["entries"]
            assert [(e["type"], e["actor"]) for e in timeline[-2:]] == [
                ("plan.stopping", "guardian"), ("plan.rolled_back", "guardian"),
            ]  # fmt: skip
            assert timeline[-1]["evidence"]["metric"] == "errors"
            # SDKs serve the control again.
            assert await client.wait_for_sequence(done["result_seq"], timeout=15)
            assert client.variation("checkout", {"key": "user-1"}, True) is False
            # Webhooks fired as for any event: the plan's rollback and the flag's write back.

            def delivered() -> set[tuple[str, str]]:
                return {(b["type"], b["actor"]) for b in received}

            await until(lambda: _true(("plan.rolled_back", "guardian") in delivered()), "the rollback's webhook")
            await until(lambda: _true(("flag.updated", "guardian") in delivered()), "the flag's webhook")
            rolled = next(b for b in received if b["type"] == "plan.rolled_back")
            assert rolled["event"]["plan"]["evidence"]["reason"] == "guardrail"
    finally:
        await client.close()
        admin.stop()


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def api(nats_url: str, tmp_path: Path) -> AsyncIterator[WithHistory]:
    async with admin_with_history(nats_url, tmp_path, plan_poll=0.1) as found:
        yield found


async def test_an_a_a_run_goes_through_every_step_and_unexposed_metrics_are_counted_apart(
    api: WithHistory, nats_url: str
) -> None:
    http = api.http
    await seed(http, nats_url)
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.2)
    # Another SDK of the same environment tracks errors for contexts it never evaluated the flag for: a flood that
    # would be a breach if it were counted on the new variation's side.
    stranger = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.2)
    stop = asyncio.Event()

    async def ghosts() -> None:
        i = 0
        while not stop.is_set():
            for _ in range(20):
                stranger.track("errors", {"key": f"ghost-{i % 500}"})
                i += 1
            await asyncio.sleep(0.05)

    try:
        assert await client.start(wait=15)
        assert await stranger.start(wait=15)
        app = SimulatedApp(client, "checkout", rates={}, base=0.02, rate=400, users=2_000)
        ghost_task = asyncio.create_task(ghosts())
        async with app_running(app):
            body = {
                "flag": "checkout", "variation": "on", "min_users": 30,
                "steps": [{"percent": 10, "hold": 4}, {"percent": 50, "hold": 4}, {"percent": 100}],
                "guardrails": [{"metric": "errors", "max_change": 0}],
            }  # fmt: skip
            plan = await ok(http, "POST", f"{ENV}/plans", body, 201)

            async def watched_with_ghosts() -> bool:
                found = await plan_of(http, plan["id"])
                watch = found.get("watch")
                if found["status"] != "running" or not watch or not watch["guardrails"]:
                    return found["status"] != "running"
                return bool(watch["guardrails"][0]["unexposed"] > 100 and watch["guardrails"][0]["state"] == "ok")

            await until(watched_with_ghosts, "the guardian judging the step, the strangers' errors counted apart")
            seen = await plan_of(http, plan["id"])
            results = await ok(http, "GET", f"{ENV}/flags/checkout/results", params={"metric": "errors"})
            await until(lambda: _status_in(http, plan["id"], "completed", "rolled_back", "failed"), "the plan's end")
        stop.set()
        await ghost_task
    finally:
        stop.set()
        await client.close()
        await stranger.close()
    done = await plan_of(http, plan["id"])
    assert done["status"] == "completed", done
    assert (await ok(http, "GET", f"{ENV}/flags/checkout"))["flag"]["fallthrough"]["variation"] == "on"
    guard = seen["watch"]["guardrails"][0]
    # Only the app's users are judged: none of the 500 strangers, who were never served the flag.
    assert guard["treatment"]["users"] + guard["control"]["users"] <= 2_000
    assert guard["unexposed"] > 100
    count = next(m for m in results["metrics"] if m["kind"] == "count")
    assert count["unexposed"] > 100
    assert sum(v["users"] for v in count["variations"]) <= 2_000


async def test_a_sample_ratio_mismatch_turns_the_flag_off_when_the_plan_says_so(
    api: WithHistory, nats_url: str
) -> None:
    """An SDK of another build that serves the control to every user it meets (it ignores rollouts) reports its
    exposures beside a correct SDK's: the new variation gets far less than its step's share of the users. No guardrail
    is breached (there is none), the sample ratio test is: the plan rolls back as it says, the flag off."""
    http = api.http
    await seed(http, nats_url)
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.2)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        assert await client.start(wait=15)
        app = SimulatedApp(client, "checkout", rates={}, base=0.0, rate=200, users=1_000)
        async with app_running(app):
            body = {"flag": "checkout", "variation": "on", "rollback": "off", "min_users": 30,
                    "steps": [{"percent": 20, "hold": "1h"}, {"percent": 100}]}  # fmt: skip
            plan = await ok(http, "POST", f"{ENV}/plans", body, 201)

            async def first_step() -> bool:
                return (await plan_of(http, plan["id"]))["step"] >= 0

            await until(first_step, "the first step written")
            step_seq = (await plan_of(http, plan["id"]))["step_seq"]
            # The other build's reports, as its SDK would send them: 600 users, every one served "off" by the
            # rollout under the step's own ruleset.
            now = datetime.now(UTC)
            exposed = tuple(Exposed("checkout", "off", f"web-{i}", 1, step_seq) for i in range(600))
            batch = MetricsBatch(instance_id="other-build", project="default", environment="production",
                                 since=now, until=now, exposed=exposed)  # fmt: skip
            await js.publish(metrics_subject("default", "production"), encode_metrics(batch))
            await until(lambda: _status_in(http, plan["id"], "rolled_back", "failed", "completed"),
                        "the guardian's rollback")  # fmt: skip
    finally:
        await client.close()
        await nc.close()
    done = await plan_of(http, plan["id"])
    assert done["status"] == "rolled_back", done
    evidence = done["evidence"]
    assert (evidence["reason"], evidence["step"], evidence["expected_share"]) == ("sample_ratio", 0, 0.2)
    assert evidence["observed_share"] < 0.2
    assert evidence["control_users"] >= 600  # the other build's users are counted, on the side it served them
    assert "sample ratio mismatch at step 1" in evidence["text"]
    # The flag is off (the plan's rollback), turned off by the guardian; its rollout is left as the step wrote it.
    flag = await ok(http, "GET", f"{ENV}/flags/checkout")
    assert flag["flag"]["on"] is False
    last = (await flag_events(nats_url, "checkout"))[-1]
    assert (last.actor, last.comment.split(":", 1)[0]) == ("guardian", "rolled back")
    assert await client_sees_off(nats_url, done["result_seq"])


async def client_sees_off(nats_url: str, seq: int) -> bool:
    """A fresh SDK serves the flag's off variation to everyone once it has the rollback."""
    client = AsyncFlagstreamClient(nats_url, environment="production")
    try:
        assert await client.start(wait=15)
        assert await client.wait_for_sequence(seq, timeout=15)
        return all(client.variation("checkout", {"key": f"user-{i}"}, True) is False for i in range(200))
    finally:
        await client.close()
