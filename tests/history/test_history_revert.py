"""Reverting a whole environment of 200 flags gives back exactly its earlier state: the read model's state hash
after the revert equals the hash of the as-of states at the instant reverted to; history only grows."""

from __future__ import annotations

from typing import Any

from flagstream.services.projector.readmodel import ReadModel
from tests.helpers import WithHistory

ENV = "/api/v1/projects/default/environments/production"
FLAGS = 200


async def test_revert_of_an_environment_with_200_flags_restores_the_exact_state(
    api: WithHistory,
) -> None:
    http, projector, db = api.http, api.projector, api.db

    async def ok(method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await http.request(method, path, json=body)
        assert response.is_success, response.text
        return response.json()  # type: ignore[no-any-return]

    await ok("POST", "/api/v1/projects/default/environments", {"key": "production"})
    await ok("POST", f"{ENV}/segments", {"key": "staff", "included": ["ada"]})
    for i in range(FLAGS):
        rules = [{"id": "staff", "clauses": [{"op": "in_segment", "values": ["staff"]}], "serve": {"variation": "on"}}]
        await ok("POST", f"{ENV}/flags", {"key": f"f{i:03}", "tags": ["t"], "rules": rules if i % 10 == 0 else []})
    for i in range(0, FLAGS, 4):
        await ok("POST", f"{ENV}/flags/f{i:03}/on", {})
    target = await projector.wait_caught_up(30)
    async with await ReadModel.open(db, readonly=True) as model:
        hash_then = await model.state_hash("default", "production")

    # Afterwards: toggles, edits, archives, a restore, a new flag, a changed segment.
    for i in range(0, FLAGS, 3):
        await ok("POST", f"{ENV}/flags/f{i:03}/{'off' if i % 4 == 0 else 'on'}", {})
    for i in range(1, FLAGS, 7):
        await ok("PATCH", f"{ENV}/flags/f{i:03}", {"description": "edited", "tags": ["t", "later"]})
    for i in range(5, FLAGS, 10):
        await ok("POST", f"{ENV}/flags/f{i:03}/archive", {})
    await ok("POST", f"{ENV}/flags/f005/restore", {})
    await ok("PATCH", f"{ENV}/segments/staff", {"included": ["ada", "bob"]})
    await projector.wait_caught_up(30)
    as_of = (await http.get(f"{ENV}/state", params={"seq": target})).json()
    assert as_of["hash"] == hash_then, "the as-of states hash like the read model did at that instant"
    async with await ReadModel.open(db, readonly=True) as model:
        assert await model.state_hash("default", "production") != hash_then

    result = await ok("POST", f"{ENV}/revert", {"seq": target, "comment": "bad afternoon"})
    assert result["comment"].startswith(f"revert environment production to its state at seq {target} (")
    assert result["comment"].endswith("): bad afternoon")
    actions = [(w["kind"], w["key"], w["action"]) for w in result["written"]]
    assert ("segment", "staff", "replace") in actions
    assert ("flag", "f001", "replace") in actions
    assert not any(key == "f005" for _, key, _ in actions), "archived and restored since: nothing to do"
    assert ("flag", "f015", "restore") in actions
    assert len(actions) == len(set(actions))
    await projector.wait_caught_up(30)
    async with await ReadModel.open(db, readonly=True) as model:
        assert await model.state_hash("default", "production") == hash_then
    assert (await http.get(f"{ENV}/diff", params={"from": target})).json()["items"] == []

    # A flag born after the instant cannot be deleted: reverting archives it.
    await ok("POST", f"{ENV}/flags", {"key": "brand-new"})
    again = await ok("POST", f"{ENV}/revert", {"seq": target})
    assert [(w["key"], w["action"]) for w in again["written"]] == [("brand-new", "archive")]
    await projector.wait_caught_up(30)
    diff = (await http.get(f"{ENV}/diff", params={"from": target})).json()["items"]
    assert [(i["key"], i["change"]) for i in diff] == [("brand-new", "created")]
    assert diff[0]["changes"][0]["new"]["archived"] is True
    # History only grew: every earlier event is still there.
    history = (await http.get(f"{ENV}/flags/f000/history")).json()["items"]
    assert [i["type"] for i in history][-1] == "flag.created"
    assert history[0]["comment"] == result["comment"]
