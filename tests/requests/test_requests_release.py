"""Release plans in an environment that asks for approvals: creating a plan (or asking for its next step before
its hold is over) is a change like any other, held as a request; once the request is applied, the plan's own
steps are written without a request each, and an abort writes the flag back at once."""

from __future__ import annotations

from typing import Any

from tests.helpers import until
from tests.requests.conftest import API, PROD, Team


async def _plan(team: Team, pid: str) -> dict[str, Any]:
    answer = await team.op.get(f"{PROD}/plans/{pid}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _weights(team: Team) -> list[Any]:
    """What the flag's default rule serves: (variation, weight) each."""
    fallthrough = (await team.flag("checkout"))["flag"]["fallthrough"]
    if fallthrough.get("rollout"):
        return [(v["variation"], v["weight"]) for v in fallthrough["rollout"]["variations"]]
    return [(fallthrough["variation"], 100_000)]


async def test_a_release_plan_is_held_then_runs_its_approved_steps(team: Team) -> None:
    assert (await team.op.post(f"{API}/flags", json={"key": "checkout"})).status_code == 201
    off = await team.op.patch(f"{PROD}/flags/checkout", json={"fallthrough": {"variation": "off"}})
    assert off.status_code == 200, off.text
    await team.gate()
    steps = [{"percent": 10}, {"percent": 50, "hold": "manual"}, {"percent": 100}]
    held = await team["ann"].post(f"{PROD}/plans", json={"flag": "checkout", "variation": "on", "steps": steps})
    assert held.status_code == 202, held.text
    request = held.json()
    [change] = request["changes"]
    assert change["kind"] == "plan"
    pid = change["key"]
    assert (await team.op.get(f"{PROD}/plans/{pid}")).status_code == 404  # no plan until applied
    assert await _weights(team) == [("off", 100_000)]

    one = f"{API}/requests/{request['id']}"
    assert (await team["bob"].post(f"{one}/approve", json={})).status_code == 200
    applied = await team["ann"].post(f"{one}/apply", json={})
    assert applied.status_code == 200, applied.text
    assert (await _plan(team, pid))["id"] == pid  # the plan reviewed, with the id it was reviewed with

    async def first_step() -> bool:
        return bool((await _plan(team, pid))["step"] == 0)

    await until(first_step, "the plan's first step written without a request of its own")
    assert await _weights(team) == [("on", 10_000), ("off", 90_000)]

    # Its next step before its (manual) hold is over is a change: held too.
    advance = await team["ann"].post(f"{PROD}/plans/{pid}/advance", json={"comment": "faster"})
    assert advance.status_code == 202, advance.text
    assert (await _plan(team, pid))["step"] == 0

    # An abort is never slowed: the flag is written back at once.
    aborted = await team["ann"].post(f"{PROD}/plans/{pid}/abort", json={"comment": "errors up"})
    assert aborted.status_code == 200, aborted.text
    assert (await _plan(team, pid))["status"] == "aborted"
    assert await _weights(team) == [("off", 100_000)]
    # An id already taken is refused (a held plan fixes its id when the request is made).
    again = await team["ann"].post(f"{PROD}/plans", json={"flag": "checkout", "variation": "on", "steps": steps,
                                                          "id": pid})  # fmt: skip
    assert again.status_code == 409, again.text
