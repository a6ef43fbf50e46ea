"""Scheduled changes: stored as events, listed, cancellable, visible in evaluations of a future instant, and
applied exactly once -- also with two real ``flagstream admin`` processes, one of them SIGKILLed at the due time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

from flagstream.events import Environment, EnvironmentCreated, Flag, FlagCreated, decode_event, subject
from flagstream.events.catalog import Schedule, ScheduleClaimed, ScheduleCreated, ScheduledChange
from flagstream.services.changes.decide import ENVIRONMENT, FLAG
from flagstream.services.changes.service import AdminService, WriteRequest
from flagstream.services.changes.store import EventStore
from flagstream.services.history.schedules import ScheduleRunner, schedule_subject
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import AdminProcess, WithHistory, admin_with_history

ENV = "/api/v1/projects/default/environments/production"


@pytest.fixture
async def api(nats_url: str, tmp_path: Path) -> AsyncIterator[WithHistory]:
    async with admin_with_history(nats_url, tmp_path, schedule_poll=0.1) as found:
        yield found


async def test_a_scheduled_change_applies_at_its_time_and_shows_in_future_evaluations(
    api: WithHistory,
) -> None:
    http, projector = api.http, api.projector

    async def ok(method: str, path: str, body: Any = None, status: int = 200, **kw: Any) -> dict[str, Any]:
        response = await http.request(method, path, json=body, **kw)
        assert response.status_code == status, response.text
        return response.json()  # type: ignore[no-any-return]

    await ok("POST", "/api/v1/projects/default/environments", {"key": "production"}, 201)
    await ok("POST", f"{ENV}/flags", {"key": "launch"}, 201)
    variations = [{"key": "a", "value": "red"}, {"key": "b", "value": "blue"}]
    banner_flag = {"key": "banner", "kind": "string", "off_variation": "a", "variations": variations,
                   "fallthrough": {"variation": "a"}}  # fmt: skip
    await ok("POST", f"{ENV}/flags", banner_flag, 201)
    await ok("POST", f"{ENV}/flags/banner/on", {})
    due = datetime.now(UTC) + timedelta(seconds=3)
    on = await ok("POST", f"{ENV}/schedules", {"due": due.isoformat(), "flag": "launch", "action": "on",
                                               "comment": "go live"}, 201)  # fmt: skip
    patch = await ok("POST", f"{ENV}/schedules", {"due": (due + timedelta(seconds=1)).isoformat(), "flag": "banner",
                                                  "action": "patch", "changes": {"fallthrough": {"variation": "b"}}},
                     201)  # fmt: skip
    later = await ok("POST", f"{ENV}/schedules", {"due": (due + timedelta(days=1)).isoformat(), "flag": "launch",
                                                  "action": "off"}, 201)  # fmt: skip
    assert on["status"] == "pending"
    assert on["description"] == "on flag launch"

    # Before it is due: now the flag is off; as of a time after the due time, the pending changes apply.
    await projector.wait_caught_up(30)
    ctx = {"context": {"key": "u1"}}
    now = (await ok("POST", f"{ENV}/evaluate", {**ctx, "as_of": datetime.now(UTC).isoformat()}))["results"]
    assert [(r["flag"], r["value"]) for r in now] == [("banner", "red"), ("launch", False)]
    soon = await ok("POST", f"{ENV}/evaluate", {**ctx, "as_of": (due + timedelta(seconds=5)).isoformat()})
    assert [(r["flag"], r["value"]) for r in soon["results"]] == [("banner", "blue"), ("launch", True)]
    tomorrow = await ok("POST", f"{ENV}/evaluate", {**ctx, "as_of": (due + timedelta(days=2)).isoformat()})
    assert [(r["flag"], r["value"]) for r in tomorrow["results"]] == [("banner", "blue"), ("launch", False)]
    state = await ok("GET", f"{ENV}/state", params={"at": (due + timedelta(seconds=5)).isoformat()})
    assert [f["state"]["on"] for f in state["flags"]] == [True, True]
    one = await ok("GET", f"{ENV}/flags/banner/state", params={"at": (due + timedelta(seconds=5)).isoformat()})
    assert one["record"]["state"]["fallthrough"]["variation"] == "b"
    assert (await ok("GET", f"{ENV}/flags/banner/state"))["record"]["state"]["fallthrough"]["variation"] == "a"

    # Cancel one; it cannot be cancelled twice.
    cancelled = await ok("POST", f"{ENV}/schedules/{later['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    again = await ok("POST", f"{ENV}/schedules/{later['id']}/cancel", status=409)
    assert "cancelled" in again["error"]

    async def status(sid: str) -> str:
        return (await ok("GET", f"{ENV}/schedules/{sid}"))["status"]

    statuses: dict[str, str] = {}

    async def both_applied() -> bool:
        statuses.update({sid: await status(sid) for sid in (on["id"], patch["id"])})
        return set(statuses.values()) == {"applied"}

    deadline = asyncio.get_running_loop().time() + 30
    while not await both_applied():
        assert asyncio.get_running_loop().time() < deadline, statuses
        await asyncio.sleep(0.05)
    flag = await ok("GET", f"{ENV}/flags/launch")
    assert flag["flag"]["on"] is True
    assert flag["event"] == "flag.toggled"
    assert flag["comment"] == f"scheduled change {on['id']}: on flag launch"
    applied = await ok("GET", f"{ENV}/schedules/{on['id']}")
    assert applied["result_seq"] == flag["version"]
    banner = await ok("GET", f"{ENV}/flags/banner")
    assert banner["flag"]["fallthrough"]["variation"] == "b"
    assert banner["flag"]["fallthrough"]["rollout"] is None
    listed = await ok("GET", f"{ENV}/schedules", params={"status": "applied"})
    assert {i["id"] for i in listed["items"]} == {on["id"], patch["id"]}
    # The schedule's own life is in the audit log of the environment.
    await projector.wait_caught_up(30)
    types = [i["type"] for i in (await ok("GET", f"{ENV}/history", params={"kind": "schedule"}))["items"]]
    assert types.count("schedule.created") == 3
    assert types.count("schedule.claimed") == 2
    assert types.count("schedule.applied") == 2
    assert types.count("schedule.cancelled") == 1


async def test_bad_schedules_are_refused_naming_the_problem(api: WithHistory) -> None:
    http = api.http
    await http.post("/api/v1/projects/default/environments", json={"key": "production"})
    await http.post(f"{ENV}/flags", json={"key": "launch"})
    await http.post(f"{ENV}/segments", json={"key": "beta"})
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cases = [
        ({"due": "2001-01-01T00:00:00Z", "flag": "launch", "action": "on"}, 422, "future"),
        ({"due": "tomorrow", "flag": "launch", "action": "on"}, 400, "due"),
        ({"due": future, "action": "on"}, 400, '"flag" or "segment"'),
        ({"due": future, "flag": "nope", "action": "on"}, 404, "nope"),
        ({"due": future, "segment": "beta", "action": "on"}, 422, "action"),
        ({"due": future, "flag": "launch", "action": "patch"}, 422, "changes"),
        ({"due": future, "flag": "launch", "action": "patch", "changes": {"colour": 1}}, 422, "colour"),
        ({"due": future, "flag": "launch", "action": "patch", "changes": {"on": "yes"}}, 422, "on"),
        ({"due": future, "flag": "launch", "action": "on", "when": 1}, 422, "when"),
    ]
    for body, status, needle in cases:
        response = await http.post(f"{ENV}/schedules", json=body)
        assert response.status_code == status, (body, response.text)
        assert needle in response.json()["error"], response.text
    assert (await http.get(f"{ENV}/schedules/nope")).status_code == 404
    assert (await http.get(f"{ENV}/schedules", params={"status": "done"})).status_code == 400


async def test_applied_exactly_once_by_two_admin_processes_when_one_is_killed_at_the_due_time(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    await ensure_stream(nc.jetstream())
    store = EventStore(nc)
    now = datetime.now(UTC)
    common = {"project": "default", "environment": "production", "actor": "test", "at": now}
    await store.append(subject("default", "production", "environment", "production"),
                       EnvironmentCreated(**common, env={"key": "production"}), expected_seq=0, msg_id=None)  # type: ignore[arg-type]  # fmt: skip
    keys = [f"f{i}" for i in range(8)]
    for key in keys:
        await store.append(subject("default", "production", "flag", key), FlagCreated(**common, flag=Flag(key=key)),
                           expected_seq=0, msg_id=None)  # fmt: skip
    procs = [AdminProcess(nats_url).start(), AdminProcess(nats_url).start()]
    try:
        due = datetime.now(UTC) + timedelta(seconds=2)
        ids = []
        for i, key in enumerate(keys):
            schedule = Schedule(id=f"s{i}", due=due + timedelta(milliseconds=5 * i),
                                change=ScheduledChange(key=key, action="on"))  # fmt: skip
            await store.append(schedule_subject("default", "production", schedule.id),
                               ScheduleCreated(**common, schedule=schedule), expected_seq=0, msg_id=None)  # fmt: skip
            ids.append(schedule.id)
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))  # the instant to kill at
        procs[0].kill()

        async def statuses() -> list[str]:
            found = []
            for sid in ids:
                stored = await store.last(schedule_subject("default", "production", sid))
                assert stored is not None
                found.append(stored.event.schedule.status)
            return found

        seen: list[str] = []

        async def all_applied() -> bool:
            seen[:] = await statuses()
            return all(s == "applied" for s in seen)

        deadline = asyncio.get_running_loop().time() + 60
        while not await all_applied():
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.1)
        for i, key in enumerate(keys):
            events = await _events(store, subject("default", "production", "flag", key))
            toggles = [e for e in events if e.comment.startswith(f"scheduled change s{i}:")]
            assert len(toggles) == 1, (key, [e.comment for e in events])
            assert events[-1].flag.on is True
    finally:
        for proc in procs:
            proc.stop()
        await nc.close()


async def _events(store: EventStore, subj: str) -> list[Any]:
    found = []
    seq = 0
    while True:
        try:
            msg = await store.js.get_msg(store.stream, seq=seq + 1, subject=subj, next=True, direct=True)
        except NotFoundError:
            return found
        assert msg.seq is not None
        seq = msg.seq
        found.append(decode_event(msg.data or b""))


async def test_a_claim_left_by_a_crashed_process_is_taken_over_and_applied_once(nats_url: str) -> None:
    """Crash after the claim: before the change (it is applied), or after it (it is found, not written again)."""
    nc = await nats.connect(nats_url)
    await ensure_stream(nc.jetstream())
    store = EventStore(nc)
    service = AdminService(store)
    long_ago = datetime.now(UTC) - timedelta(minutes=1)
    common = {"project": "default", "environment": "production", "actor": "test", "at": long_ago}
    try:
        env = Environment(key="production")
        await service.create(ENVIRONMENT, "default", "production", env, WriteRequest(actor="test"))
        for key in ("before-change", "after-change"):
            await service.create(FLAG, "default", "production", Flag(key=key), WriteRequest(actor="test"))
            schedule = Schedule(id=f"s-{key}", due=long_ago, change=ScheduledChange(key=key, action="on"),
                                status="claimed", claimed_by="dead-process")  # fmt: skip
            subj = schedule_subject("default", "production", schedule.id)
            await store.append(subj, ScheduleCreated(**common, schedule=Schedule(
                id=schedule.id, due=long_ago, change=schedule.change)), expected_seq=0, msg_id=None)  # fmt: skip
            last = await store.last(subj)
            assert last is not None
            await store.append(subj, ScheduleClaimed(**common, version=2, schedule=schedule), expected_seq=last.seq,
                               msg_id=None)  # fmt: skip
        # The dead process had made the change of "after-change" (with the schedule's idempotency key).
        await service.toggle("default", "production", "after-change", True, WriteRequest(
            actor="schedule s-after-change", comment="scheduled change s-after-change: on flag after-change",
            idempotency_key="schedule:s-after-change"))  # fmt: skip

        runner = ScheduleRunner(service, name="survivor", lease=10)
        await runner.pass_once()
        assert sorted(runner.applied) == ["s-after-change", "s-before-change"]
        for key in ("before-change", "after-change"):
            events = await _events(store, subject("default", "production", "flag", key))
            assert [type(e).__name__ for e in events] == ["FlagCreated", "FlagToggled"]
            final = await store.last(schedule_subject("default", "production", f"s-{key}"))
            assert final is not None
            assert final.event.schedule.status == "applied"
            assert final.event.schedule.claimed_by == "survivor"
            flag = await store.last(subject("default", "production", "flag", key))
            assert flag is not None
            assert final.event.schedule.result_seq == flag.seq
        await runner.pass_once()  # nothing left to do
        assert len(runner.applied) == 2
    finally:
        await nc.close()
