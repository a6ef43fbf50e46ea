"""Release plans through the admin API over real NATS: bad input refused naming the field, steps written by the runner
(each once, through the write path), a person's pause, resume, advance and abort, users who stay in the rollout as
it grows, the timeline."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.events.tracking import MetricsBatch, Unexposed, encode_metrics, metrics_subject
from tests.helpers import WithHistory, admin_with_history, until
from tests.release.helpers import ENV, flag_events, ok, plan_of, seed

pytestmark = pytest.mark.slow


@pytest.fixture
async def api(nats_url: str, tmp_path: Path) -> AsyncIterator[WithHistory]:
    async with admin_with_history(nats_url, tmp_path, plan_poll=0.05) as found:
        yield found


async def refused(http: httpx.AsyncClient, body: dict[str, Any], status: int, field: str) -> str:
    response = await http.post(f"{ENV}/plans", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in error, error
    return str(error)


async def test_bad_plans_are_refused_naming_the_field(api: WithHistory, nats_url: str) -> None:
    http = api.http
    await seed(http, nats_url)
    base = {"flag": "checkout", "variation": "on", "steps": [{"percent": 5, "hold": "1h"}, {"percent": 100}]}
    await refused(http, {**base, "steps": [{"percent": 5}, {"percent": 5}]}, 422, "$.steps[1].percent")
    await refused(http, {**base, "steps": [{"percent": 50}, {"percent": 25}]}, 422, "$.steps[1].percent")
    await refused(http, {**base, "steps": [{"percent": 5}, {"percent": 120}]}, 422, "$.steps[1].percent")
    await refused(http, {**base, "steps": [{"percent": 0}]}, 422, "$.steps[0].percent")
    await refused(http, {**base, "steps": []}, 422, "$.steps")
    await refused(http, {**base, "steps": [{"percent": 5, "hold": "soon"}]}, 422, "$.steps[0].hold")
    await refused(http, {**base, "variation": "blue"}, 422, "$.variation")
    await refused(http, {**base, "variation": "off"}, 422, "$.variation")  # what the rule already serves
    await refused(http, {**base, "flag": "nope"}, 422, "$.flag")
    await refused(http, {**base, "rule": "r9"}, 422, "$.rule")
    metric = {"metric": "errrors", "max_change": 0.01}
    error = await refused(http, {**base, "guardrails": [metric]}, 422, "$.guardrails[0].metric")
    assert "errors" in error  # what the applications did track, named
    await refused(http, {**base, "guardrails": [{"metric": "errors"}]}, 422, "$.guardrails[0]")
    await refused(http, {**base, "guardrails": [{"metric": "errors", "max_change": 1, "kind": "p95"}]}, 422,
                  "$.guardrails[0].kind")  # fmt: skip
    await refused(http, {**base, "guardrails": [{"promql": "up", "threshold": 1}]}, 422, "$.guardrails[0].promql")
    await refused(http, {**base, "error_rate": 0.9}, 422, "$.error_rate")
    await refused(http, {**base, "rollback": "later"}, 422, "$.rollback")
    await refused(http, {**base, "surprise": 1}, 422, "surprise")
    # An archived flag cannot be planned.
    await ok(http, "POST", f"{ENV}/flags/old/archive", {})
    await refused(http, {**base, "flag": "old"}, 422, "$.flag")
    # A second active plan on the same flag is a conflict; on another flag it is fine.
    first = await ok(http, "POST", f"{ENV}/plans", base, 201)
    await refused(http, base, 409, "$.flag")
    await ok(http, "POST", f"{ENV}/plans", {**base, "flag": "banner", "variation": "b"}, 201)
    await ok(http, "POST", f"{ENV}/plans/{first['id']}/abort", {})

    async def ended() -> bool:  # aborted, and the flag serving what it served before (a step in flight undone)
        flag = await ok(http, "GET", f"{ENV}/flags/checkout")
        status = (await plan_of(http, first["id"]))["status"]
        return status == "aborted" and flag["flag"]["fallthrough"]["variation"] == "off"

    await until(ended, "the first plan aborted")
    await ok(http, "POST", f"{ENV}/plans", base, 201)  # once the first ended, a new one may start
    # The same flag in another environment is another plan's to roll out, beside this one.
    staging = ENV.replace("/production", "/staging")
    await ok(http, "POST", "/api/v1/projects/default/environments", {"key": "staging"}, 201)
    made = await http.post(
        f"{staging}/flags", json={"key": "checkout", "on": True, "fallthrough": {"variation": "off"}}
    )
    assert made.status_code in (201, 409), made.text  # 409: the flag is already in every environment
    await ok(http, "PATCH", f"{staging}/flags/checkout", {"fallthrough": {"variation": "off"}})
    other = await ok(http, "POST", f"{staging}/plans", base, 201)
    assert other["flag"] == "checkout"
    await refused(http, base, 409, "$.flag")  # and production still has its own


async def test_steps_are_written_once_each_and_users_stay_in_the_rollout(api: WithHistory, nats_url: str) -> None:
    http = api.http
    await seed(http, nats_url)
    client = AsyncFlagstreamClient(nats_url, environment="production")
    users = [{"key": f"user-{i}"} for i in range(2_000)]
    try:
        assert await client.start(wait=15)
        steps = [{"percent": 10, "hold": 0.5}, {"percent": 30, "hold": 0.5}, {"percent": 60, "hold": 0.5},
                 {"percent": 100}]  # fmt: skip
        created = await ok(http, "POST", f"{ENV}/plans", {"flag": "checkout", "variation": "on", "steps": steps,
                                                          "comment": "new checkout"}, 201)  # fmt: skip
        assert (created["status"], created["step"], created["control"]) == ("running", -1, "off")
        seen: list[set[str]] = []

        async def step_reached(index: int) -> bool:
            plan = await plan_of(http, created["id"])
            if plan["step"] < index:
                return False
            assert await client.wait_for_sequence(plan["step_seq"], timeout=15)
            return True

        for index in range(len(steps)):
            await until(lambda i=index: step_reached(i), f"step {index + 1} written")  # type: ignore[misc]
            on = {u["key"] for u in users if client.bool_variation("checkout", u, False)}
            seen.append(on)
        await until(lambda: _status(http, created["id"], "completed"), "the plan completed")
    finally:
        await client.close()
    # Each step's set holds the one before: nobody who had the new checkout loses it as the rollout grows.
    for before, after in itertools.pairwise(seen):
        assert before <= after
    assert len(seen[-1]) == len(users)
    assert 0.05 < len(seen[0]) / len(users) < 0.15  # about 10% at the first step
    # Exactly one flag event per step, through the write path: by the plan, with the step in the comment.
    events = [e for e in await flag_events(nats_url, "checkout") if e.actor.startswith("release plan")]
    assert [e.comment.split(": ", 1)[0].rsplit(", ", 1)[1] for e in events] == [f"step {i} of 4" for i in range(1, 5)]
    timeline = await ok(http, "GET", f"{ENV}/plans/{created['id']}/timeline")
    types = [e["type"] for e in timeline["entries"]]
    assert (types[0], types[-1]) == ("plan.created", "plan.completed")
    assert types.count("plan.advanced") == 4
    assert timeline["entries"][0]["comment"] == "new checkout"


async def _status(http: httpx.AsyncClient, plan_id: str, status: str) -> bool:
    return (await plan_of(http, plan_id))["status"] == status


async def test_a_person_pauses_resumes_advances_and_aborts(api: WithHistory, nats_url: str) -> None:
    http = api.http
    await seed(http, nats_url)
    steps = [{"percent": 5}, {"percent": 50, "hold": "manual"}, {"percent": 100}]
    plan = await ok(http, "POST", f"{ENV}/plans", {"flag": "checkout", "variation": "on", "steps": steps}, 201)
    pid = plan["id"]
    await until(lambda: _at_step(http, pid, 0), "the first step written")
    first = await plan_of(http, pid)
    assert first["next_step_in"] is None  # manual: waits for a person
    assert (await ok(http, "GET", f"{ENV}/flags/checkout"))["flag"]["fallthrough"]["rollout"]["variations"] == [
        {"variation": "on", "weight": 5_000}, {"variation": "off", "weight": 95_000},
    ]  # fmt: skip
    paused = await ok(http, "POST", f"{ENV}/plans/{pid}/pause", {"comment": "looking at the dashboards"})
    assert paused["status"] == "paused"
    refused_advance = await http.post(f"{ENV}/plans/{pid}/advance", json={})
    assert refused_advance.status_code == 409
    assert "resume it first" in refused_advance.json()["error"]
    assert (await http.post(f"{ENV}/plans/{pid}/pause", json={})).status_code == 409
    await ok(http, "POST", f"{ENV}/plans/{pid}/resume", {})
    await ok(http, "POST", f"{ENV}/plans/{pid}/advance", {"comment": "dashboards fine"})
    await until(lambda: _at_step(http, pid, 1), "the second step written")
    aborted = await ok(http, "POST", f"{ENV}/plans/{pid}/abort", {"comment": "not today"})
    assert aborted["status"] == "aborted"
    flag = await ok(http, "GET", f"{ENV}/flags/checkout")
    assert flag["flag"]["fallthrough"]["variation"] == "off"  # what it served before the plan
    assert flag["actor"] == "operator"  # the abort's write back is the person's
    assert (await http.post(f"{ENV}/plans/{pid}/resume", json={})).status_code == 409
    listed = await ok(http, "GET", f"{ENV}/plans", params={"status": "ended"})
    assert [p["id"] for p in listed["items"]] == [pid]


async def _at_step(http: httpx.AsyncClient, plan_id: str, step: int) -> bool:
    return (await plan_of(http, plan_id))["step"] >= step


async def test_two_plans_created_at_once_on_one_flag_one_is_refused(api: WithHistory, nats_url: str) -> None:
    """Two people create a plan on the same flag at the same moment: both pass the check of active plans before
    either is stored; the one stored second is withdrawn and answered 409, and only the other's steps are written."""
    http = api.http
    await seed(http, nats_url)
    body = {"flag": "checkout", "variation": "on", "steps": [{"percent": 5, "hold": "1h"}, {"percent": 100}]}
    answers = await asyncio.gather(*(http.post(f"{ENV}/plans", json={**body, "comment": who}) for who in "ab"))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 201).json()
    lost = next(a for a in answers if a.status_code == 409).json()
    assert lost["error"].startswith("$.flag: ")
    assert won["id"] in lost["error"]
    active = await ok(http, "GET", f"{ENV}/plans", params={"status": "active", "flag": "checkout"})
    assert [p["id"] for p in active["items"]] == [won["id"]]
    await until(lambda: _at_step(http, won["id"], 0), "the first step of the plan that stayed")
    written = {e.actor for e in await flag_events(nats_url, "checkout") if e.actor.startswith("release plan")}
    assert written == {f"release plan {won['id']}"}


async def test_a_metric_name_ending_in_a_newline_is_refused(api: WithHistory, nats_url: str) -> None:
    """An SDK before this version sent "errors" and a newline as a metric name (its check's ``$`` took a final
    newline): the admin still reads that batch and lists the name, but a plan may not guard it (a 422 naming the
    field; before, the plan was created on a name no current SDK can send)."""
    http = api.http
    await seed(http, nats_url)
    nc = await nats.connect(nats_url)
    try:
        batch = MetricsBatch(
            instance_id="sdk-before", project="default", environment="production", since=datetime.now(UTC),
            until=datetime.now(UTC), unexposed=(Unexposed(metric="errors\n", count=1),),
        )  # fmt: skip
        await nc.jetstream().publish(metrics_subject("default", "production"), encode_metrics(batch))
    finally:
        await nc.close()

    async def listed() -> bool:
        return "errors\n" in (await ok(http, "GET", f"{ENV}/metrics"))["metrics"]

    await until(listed, "the earlier SDK's metric name read")
    base = {"flag": "checkout", "variation": "on", "steps": [{"percent": 5, "hold": "1h"}, {"percent": 100}]}
    error = await refused(http, {**base, "guardrails": [{"metric": "errors\n", "max_change": 1}]}, 422,
                          "$.guardrails[0].metric")  # fmt: skip
    assert "must be a metric name" in error
    assert "'errors\\n'" in error
    assert (await ok(http, "GET", f"{ENV}/plans"))["items"] == [], "no plan was made"
