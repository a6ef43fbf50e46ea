"""A release plan outlives the admin process holding it: two real ``flagstream admin`` processes, the holder is
SIGKILLed mid-step, the other takes the plan over once the lease runs out and finishes it; no step is written twice.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import admin_processes, auth_headers, until
from tests.release.helpers import ENV, flag_events, ok, plan_of, seed

pytestmark = pytest.mark.slow


async def test_the_holder_is_killed_mid_step_and_another_replica_finishes_the_plan(nats_url: str) -> None:
    with admin_processes(nats_url, 2, "--plan-lease", "2") as admins:
        async with httpx.AsyncClient(base_url=admins[0].url, headers=auth_headers(), timeout=60) as http:
            await seed(http, nats_url)
            steps = [{"percent": 10, "hold": 3}, {"percent": 30, "hold": 3}, {"percent": 60, "hold": 3},
                     {"percent": 100}]  # fmt: skip
            plan = await ok(http, "POST", f"{ENV}/plans", {"flag": "checkout", "variation": "on", "steps": steps}, 201)

            async def first_step_held() -> bool:
                found = await plan_of(http, plan["id"])
                return found["step"] == 0 and bool(found["holder"])

            await until(first_step_held, "the first step written by its holder")
            holder = (await plan_of(http, plan["id"]))["holder"]
            pids = {str(a.proc.pid): a for a in admins if a.proc is not None}
            victim = pids[holder.rsplit(":", 1)[1]]
            survivor = next(a for a in admins if a is not victim)
            victim.kill()  # mid-step: its lease is no longer renewed
        async with httpx.AsyncClient(base_url=survivor.url, headers=auth_headers(), timeout=60) as http:

            async def completed() -> bool:
                return (await plan_of(http, plan["id"]))["status"] == "completed"

            await until(completed, "the other replica finishing the plan")
            timeline = (await ok(http, "GET", f"{ENV}/plans/{plan['id']}/timeline"))["entries"]
    steps_written = [e for e in await flag_events(nats_url, "checkout") if e.actor.startswith("release plan")]
    assert [e.comment.rsplit(", ", 1)[1].split(":")[0] for e in steps_written] == [
        f"step {i} of 4" for i in (1, 2, 3, 4)
    ]
    claims = [e for e in timeline if e["type"] == "plan.claimed"]
    assert claims[-1]["comment"] == f"held by {claims[-1]['actor']} (taken over from {holder})"
    assert claims[-1]["actor"] != holder
    assert [e["step"] for e in timeline if e["type"] == "plan.advanced"] == [0, 1, 2, 3]
