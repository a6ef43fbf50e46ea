"""The runner's exactly-once, at the worst moments, over a real nats-server: a holder that died between its step's
write and the record of it, two runners racing for one plan, a person's edit of the flag under a step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest

from flagstream.events import Environment, Flag, Serve
from flagstream.events.catalog import PlanCreated
from flagstream.events.release import Plan, PlanStep
from flagstream.services.changes import ENVIRONMENT, FLAG, AdminService, EventStore, WriteRequest
from flagstream.services.release import PlanRunner, plan_subject
from flagstream.services.release.plans import step_changes
from flagstream.services.runtime import ensure_metrics_stream, ensure_stream
from tests.release.helpers import flag_events


@pytest.fixture
async def service(nats_url: str) -> AsyncIterator[AdminService]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await ensure_metrics_stream(js)
    svc = AdminService(EventStore(nc))
    req = WriteRequest(actor="test")
    await svc.create(ENVIRONMENT, "default", "production", Environment(key="production"), req)
    flag = Flag(key="checkout", on=True, fallthrough=Serve(variation="off"))
    await svc.create(FLAG, "default", "production", flag, req)
    yield svc
    await nc.close()


async def plan(service: AdminService, steps: tuple[PlanStep, ...]) -> Plan:
    p = Plan(id="p1", flag="checkout", variation="on", control="off", steps=steps, before=Serve(variation="off"))
    event = PlanCreated(project="default", environment="production", actor="test", at=datetime.now(UTC), plan=p)
    await service.store.append(plan_subject("default", "production", p.id), event, expected_seq=0, msg_id=None)
    return p


async def runner(service: AdminService, name: str) -> PlanRunner:
    r = PlanRunner(service, service.store.nc, name=name, lease=0.3, poll=0.05)
    await r.open()
    return r


async def test_a_step_written_by_a_holder_that_died_before_recording_it_is_not_written_again(
    service: AdminService, nats_url: str
) -> None:
    p = await plan(service, (PlanStep(weight=10_000, hold=3600), PlanStep(weight=100_000)))
    # What a holder does for step 1, up to the flag write, and then it dies: plan.advanced never appended.
    current = await service.get(FLAG, "default", "production", "checkout")
    req = WriteRequest(actor="release plan p1", if_match=current.seq, idempotency_key="plan:p1:step:0")
    written = await service.patch(
        FLAG, "default", "production", "checkout", step_changes(p, current.event.flag, 0), req
    )
    b = await runner(service, "replica-b")
    try:

        async def recorded() -> bool:
            await b.pass_once()
            last = await service.store.last(plan_subject("default", "production", "p1"))
            return last is not None and last.event.plan.step == 0  # type: ignore[attr-defined]

        for _ in range(200):
            if await recorded():
                break
        last = await service.store.last(plan_subject("default", "production", "p1"))
        assert last is not None
        assert last.event.plan.step_seq == written.stored.seq  # type: ignore[attr-defined]  # the dead one's write
    finally:
        await b.close()
    steps = [e for e in await flag_events(nats_url, "checkout") if e.actor == "release plan p1"]
    assert len(steps) == 1


async def test_two_runners_racing_for_one_plan_write_each_step_once(service: AdminService, nats_url: str) -> None:
    await plan(service, (PlanStep(weight=10_000, hold=0), PlanStep(weight=50_000, hold=0), PlanStep(weight=100_000)))
    a, b = await runner(service, "replica-a"), await runner(service, "replica-b")
    try:
        done = False

        async def both() -> None:
            nonlocal done
            await a.pass_once()
            await b.pass_once()
            # The holder's lease is stolen now and then: the other one's next pass takes over.
            if a.leases is not None and b.leases is not None:
                for leases in (a.leases, b.leases):
                    leases._mine.clear()
            last = await service.store.last(plan_subject("default", "production", "p1"))
            done = last is not None and last.event.plan.status == "completed"  # type: ignore[attr-defined]

        for _ in range(400):
            await both()
            if done:
                break
        assert done
    finally:
        await a.close()
        await b.close()
    comments = [e.comment for e in await flag_events(nats_url, "checkout") if e.actor == "release plan p1"]
    assert [c.split(": ")[0].rsplit(", ", 1)[1] for c in comments] == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]


async def test_a_persons_edit_under_a_step_is_kept_and_the_step_follows(service: AdminService, nats_url: str) -> None:
    await plan(service, (PlanStep(weight=20_000, hold=0), PlanStep(weight=100_000)))
    a = await runner(service, "replica-a")
    try:
        await a.pass_once()  # claims and writes step 1
        last = await service.store.last(plan_subject("default", "production", "p1"))
        assert last is not None
        assert last.event.plan.step == 0  # type: ignore[attr-defined]
        # A person adds a description meanwhile: the next step is written on top of it, not over it.
        await service.patch(FLAG, "default", "production", "checkout", {"description": "by hand"},
                            WriteRequest(actor="ada"))  # fmt: skip

        async def completed() -> bool:
            await a.pass_once()
            found = await service.store.last(plan_subject("default", "production", "p1"))
            return found is not None and found.event.plan.status == "completed"  # type: ignore[attr-defined]

        for _ in range(200):
            if await completed():
                break
    finally:
        await a.close()
    flag = (await service.get(FLAG, "default", "production", "checkout")).event.flag  # type: ignore[attr-defined]
    assert (flag.description, flag.fallthrough) == ("by hand", Serve(variation="on"))
    steps = [e for e in await flag_events(nats_url, "checkout") if e.actor == "release plan p1"]
    assert len(steps) == 2
