"""The rules of change requests, each enforced by the server, each through the API."""

from __future__ import annotations

from typing import Any

from flagstream import AsyncFlagstreamClient
from tests.requests.conftest import API, DEV, PROD, Team

USER = {"key": "user-1"}


async def _flag(team: Team, key: str = "checkout") -> None:
    answer = await team.op.post(f"{API}/flags", json={"key": key, "name": key})
    assert answer.status_code == 201, answer.text


async def _request(team: Team, who: str, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
    answer = await team[who].request(method, path, json=body if body is not None else {}, **kw)
    assert answer.status_code == 202, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _one(request: dict[str, Any]) -> str:
    return f"{API}/requests/{request['id']}"


async def test_a_change_to_production_is_held_until_approved_and_applied(team: Team) -> None:
    await _flag(team)
    await team.gate()
    before = await team.flag("checkout")
    answer = await team["ann"].post(f"{PROD}/flags/checkout/on", json={"comment": "launch"})
    assert answer.status_code == 202, answer.text
    request = answer.json()
    assert request["status"] == "open"
    assert request["missing"] == {"production": 1}
    assert not request["approved"]
    assert [(c["kind"], c["key"], c["environment"]) for c in request["changes"]] == [("flag", "checkout", "production")]
    assert request["changes"][0]["lines"] == ["turned on"]
    assert request["changes"][0]["base"] == before["version"]
    assert request["author"]["name"] == "ann"
    assert request["title"] == "launch"
    assert answer.headers["location"] == _one(request)
    assert (await team.flag("checkout"))["version"] == before["version"]  # nothing changed yet

    refused = await team["ann"].post(f"{_one(request)}/apply", json={})
    assert refused.status_code == 409
    assert "needs 1 more in production" in refused.json()["error"]
    approved = await team["bob"].post(f"{_one(request)}/approve", json={"comment": "looks right"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approved"] is True
    assert approved.json()["approvals"][0]["by"]["name"] == "bob"
    applied = await team["ann"].post(f"{_one(request)}/apply", json={})
    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "applied"
    assert len(applied.json()["applied"]) == 1
    now = await team.flag("checkout")
    assert now["flag"]["on"] is True
    assert now["comment"] == "launch"
    assert now["version"] == applied.json()["applied"][0]
    assert now["actor"] == "ann"  # the author's change, applied through the request
    again = await team.op.post(f"{_one(request)}/apply", json={})
    assert again.status_code == 409
    assert "applied" in again.json()["error"]


async def test_nothing_reaches_an_sdk_until_the_request_is_applied(team: Team, nats_url: str) -> None:
    await _flag(team)
    await team.gate()
    client = AsyncFlagstreamClient(nats_url, environment="production")
    await client.start()
    try:
        assert await client.wait_until_ready(30)
        request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
        # The client has followed the stream past the request's own event: the flag is still off there.
        assert await client.wait_for_sequence(request["version"], 30)
        assert client.bool_variation("checkout", USER, False) is False
        await team["bob"].post(f"{_one(request)}/approve", json={})
        assert await client.wait_for_sequence((await team.last_seq()), 30)
        assert client.bool_variation("checkout", USER, False) is False  # approved is not applied
        applied = await team["ann"].post(f"{_one(request)}/apply", json={})
        assert applied.status_code == 200, applied.text
        assert await client.wait_for_sequence(applied.json()["version"], 30)
        assert client.bool_variation("checkout", USER, False) is True
    finally:
        await client.close()


async def test_development_is_not_held(team: Team) -> None:
    await _flag(team)
    await team.gate()
    answer = await team["ann"].post(f"{DEV}/flags/checkout/on", json={})
    assert answer.status_code == 200, answer.text
    assert (await team.flag("checkout", "development"))["flag"]["on"] is True


async def test_nobody_approves_their_own_request(team: Team) -> None:
    await _flag(team)
    await team.gate()
    request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
    refused = await team["ann"].post(f"{_one(request)}/approve", json={})
    assert refused.status_code == 403
    assert "nobody approves their own" in refused.json()["error"]
    rejected = await team["ann"].post(f"{_one(request)}/reject", json={})
    assert rejected.status_code == 403
    still = (await team.op.get(_one(request))).json()
    assert still["approvals"] == []
    assert still["status"] == "open"
    assert (await team["ann"].post(f"{_one(request)}/apply", json={})).status_code == 409


async def test_an_edit_after_an_approval_drops_every_approval(team: Team) -> None:
    await _flag(team)
    await _flag(team, "search")
    await team.gate(approvals=2)
    request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
    for who in ("bob", "carl"):
        assert (await team[who].post(f"{_one(request)}/approve", json={})).status_code == 200
    assert (await team.op.get(_one(request))).json()["approved"] is True
    # The author adds a change to the approved request: what was approved is not what it is now.
    added = await _request(
        team, "ann", "POST", f"{PROD}/flags/search/on", headers={"Flagstream-Request": request["id"]}
    )
    assert added["id"] == request["id"]
    assert added["revision"] == 2
    assert added["approvals"] == []
    assert added["missing"] == {"production": 2}
    assert [c["key"] for c in added["changes"]] == ["checkout", "search"]
    refused = await team["ann"].post(f"{_one(request)}/apply", json={})
    assert refused.status_code == 409
    assert "not approved" in refused.json()["error"]
    assert (await team.flag("search"))["flag"]["on"] is False
    # Any edit: the title too.
    assert (await team["bob"].post(f"{_one(request)}/approve", json={})).status_code == 200
    edited = await team["ann"].patch(_one(request), json={"title": "checkout and search"})
    assert edited.status_code == 200
    assert edited.json()["approvals"] == []
    # Only its author edits it.
    assert (await team["bob"].patch(_one(request), json={"title": "mine"})).status_code == 403
    for who in ("bob", "carl"):
        assert (await team[who].post(f"{_one(request)}/approve", json={})).status_code == 200
    applied = await team["ann"].post(f"{_one(request)}/apply", json={})
    assert applied.status_code == 200, applied.text
    assert len(applied.json()["applied"]) == 2
    assert (await team.flag("search"))["flag"]["on"] is True
    assert (await team.flag("checkout"))["flag"]["on"] is True


async def test_a_stale_base_is_refused_naming_what_changed_and_the_author_rebases(team: Team) -> None:
    await _flag(team)
    await team.gate()
    rules = [{"id": "no", "clauses": [{"attribute": "country", "op": "in", "values": ["NO"]}],
              "serve": {"variation": "on"}}]  # fmt: skip
    first = await _request(team, "ann", "PATCH", f"{PROD}/flags/checkout", {"rules": rules})
    second = await _request(team, "bob", "PATCH", f"{PROD}/flags/checkout", {"targets": [
        {"variation": "on", "values": ["qa-1"]}]})  # fmt: skip
    assert (await team["bob"].post(f"{_one(first)}/approve", json={})).status_code == 200
    assert (await team["ann"].post(f"{_one(second)}/approve", json={})).status_code == 200
    assert (await team["bob"].post(f"{_one(second)}/apply", json={})).status_code == 200
    moved = await team.flag("checkout")

    refused = await team["ann"].post(f"{_one(first)}/apply", json={})
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]
    assert "flag checkout in production changed since the request was made" in message
    assert f"version {first['changes'][0]['base']}, now version {moved['version']}" in message
    assert (await team.flag("checkout"))["version"] == moved["version"]  # nothing applied

    # Rebasing is its author's: the same merge patch, on top of the current state; the approval is dropped.
    assert (await team["bob"].post(f"{_one(first)}/rebase", json={})).status_code == 403
    rebased = await team["ann"].post(f"{_one(first)}/rebase", json={})
    assert rebased.status_code == 200, rebased.text
    assert rebased.json()["changes"][0]["base"] == moved["version"]
    assert rebased.json()["approvals"] == []
    assert (await team["bob"].post(f"{_one(first)}/approve", json={})).status_code == 200
    assert (await team["ann"].post(f"{_one(first)}/apply", json={})).status_code == 200
    flag = (await team.flag("checkout"))["flag"]
    assert flag["rules"][0]["id"] == "no"
    assert flag["targets"][0]["values"] == ["qa-1"]


async def test_applying_is_all_or_nothing(team: Team) -> None:
    await _flag(team)
    await _flag(team, "search")
    await team.gate()
    created = await team["ann"].post(f"{API}/requests", json={"title": "two flags", "changes": [
        {"method": "POST", "path": f"{PROD}/flags/checkout/on", "body": {"comment": "a"}},
        {"method": "POST", "path": f"{PROD}/flags/search/on", "body": {"comment": "b"}},
    ]})  # fmt: skip
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["title"] == "two flags"
    assert len(request["changes"]) == 2
    assert (await team["bob"].post(f"{_one(request)}/approve", json={})).status_code == 200
    # search moves (another request, applied first): the whole request is refused, checkout included.
    other = await _request(team, "bob", "PATCH", f"{PROD}/flags/search", {"description": "moved"})
    assert (await team["ann"].post(f"{_one(other)}/approve", json={})).status_code == 200
    assert (await team["bob"].post(f"{_one(other)}/apply", json={})).status_code == 200
    seq = await team.last_seq()
    refused = await team["ann"].post(f"{_one(request)}/apply", json={})
    assert refused.status_code == 409
    assert "flag search in production changed" in refused.json()["error"]
    assert "checkout" not in refused.json()["error"].split("changed")[0]
    assert await team.last_seq() == seq
    assert (await team.flag("checkout"))["flag"]["on"] is False


async def test_the_kill_switch_turns_a_flag_off_at_once_and_nothing_else_skips_approval(team: Team) -> None:
    await _flag(team)
    await team.gate()
    request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
    await team["bob"].post(f"{_one(request)}/approve", json={})
    assert (await team["ann"].post(f"{_one(request)}/apply", json={})).status_code == 200
    # Without the environment allowing it, off is a change like any other.
    held = await team["ann"].post(f"{PROD}/flags/checkout/off", json={"comment": "errors spiking"})
    assert held.status_code == 202, held.text
    await team.gate(approvals=1, emergency_off=True)  # itself a change to production: a request, approved below
    pending = (await team.op.get(f"{API}/requests")).json()["items"]
    settings = next(r for r in pending if r["changes"][0]["kind"] == "environment")
    await team["bob"].post(f"{_one(settings)}/approve", json={})
    assert (await team["ann"].post(f"{_one(settings)}/apply", json={})).status_code == 200

    no_reason = await team["dev"].post(f"{DEV}/flags/checkout/off", json={})
    assert no_reason.status_code == 200  # development: not held at all
    # Off only through the kill switch: a patch turning it off is a change like any other.
    assert (await team["ann"].patch(f"{PROD}/flags/checkout", json={"on": False, "comment": "x"})).status_code == 202
    missing_reason = await team["ann"].post(f"{PROD}/flags/checkout/off", json={})
    assert missing_reason.status_code == 422
    assert "needs a reason" in missing_reason.json()["error"]
    off = await team["ann"].post(f"{PROD}/flags/checkout/off", json={"comment": "errors spiking"})
    assert off.status_code == 200, off.text
    assert (await team.flag("checkout"))["flag"]["on"] is False
    events = await _events(team, "flagstream.default.production.flag.checkout")
    assert events[-1].emergency is True
    assert events[-1].comment == "errors spiking"
    # Off only: turning it back on, or anything else, waits for approval.
    assert (await team["ann"].post(f"{PROD}/flags/checkout/on", json={"comment": "fixed"})).status_code == 202
    assert (await team["ann"].patch(f"{PROD}/flags/checkout", json={"name": "x", "comment": "x"})).status_code == 202


async def _events(team: Team, subject: str) -> list[Any]:
    from nats.js.errors import NotFoundError

    from flagstream.events import STREAM, decode_event

    js = team.nc.jetstream()
    found, seq = [], 0
    while True:
        try:
            msg = await js.get_msg(STREAM, seq=seq + 1, subject=subject, next=True, direct=True)
        except NotFoundError:
            return found
        assert msg.seq is not None
        seq = msg.seq
        found.append(decode_event(msg.data or b""))


async def test_approvers_are_the_roles_and_groups_the_environment_names(team: Team) -> None:
    await _flag(team)
    await team.gate(approvers=["admin"])
    request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
    for who in ("bob", "rita", "dev"):
        refused = await team[who].post(f"{_one(request)}/approve", json={})
        assert refused.status_code == 403, (who, refused.text)
    assert (await team["carl"].post(f"{_one(request)}/approve", json={})).status_code == 200
    assert (await team["carl"].post(f"{_one(request)}/approve", json={})).status_code == 409  # once each


async def test_a_reader_cannot_apply_and_a_rejected_request_is_closed(team: Team) -> None:
    await _flag(team)
    await team.gate()
    request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
    await team["bob"].post(f"{_one(request)}/approve", json={})
    assert (await team["rita"].post(f"{_one(request)}/apply", json={})).status_code == 403
    assert (await team["dev"].post(f"{_one(request)}/apply", json={})).status_code == 403
    rejected = await team["carl"].post(f"{_one(request)}/reject", json={"comment": "not this week"})
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert (await team["ann"].post(f"{_one(request)}/apply", json={})).status_code == 409
    assert (await team.flag("checkout"))["flag"]["on"] is False


async def test_comments_and_cancel(team: Team) -> None:
    await _flag(team)
    await team.gate()
    request = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on")
    said = await team["rita"].post(f"{_one(request)}/comments", json={"text": "which release?"})
    assert said.status_code == 201
    assert said.json()["comments"][0]["by"]["name"] == "rita"
    assert (await team["bob"].post(f"{_one(request)}/cancel", json={})).status_code == 403
    cancelled = await team["ann"].post(f"{_one(request)}/cancel", json={})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    listed = (await team.op.get(f"{API}/requests")).json()["items"]
    assert listed == []
    everything = (await team.op.get(f"{API}/requests", params={"status": "all"})).json()["items"]
    assert [r["id"] for r in everything] == [request["id"]]


async def test_a_retried_write_opens_one_request(team: Team) -> None:
    await _flag(team)
    await team.gate()
    headers = {"Idempotency-Key": "launch-1"}
    first = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on", headers=headers)
    again = await _request(team, "ann", "POST", f"{PROD}/flags/checkout/on", headers=headers)
    assert again["id"] == first["id"]
    assert again["version"] == first["version"]
    assert len((await team.op.get(f"{API}/requests")).json()["items"]) == 1


async def test_a_write_that_fails_its_own_checks_opens_no_request(team: Team) -> None:
    await _flag(team)
    await team.gate()
    seq = await team.last_seq()
    bad = await team["ann"].patch(f"{PROD}/flags/checkout", json={"fallthrough": {"variation": "nope"}})
    assert bad.status_code == 422, bad.text
    stale = await team["ann"].post(f"{PROD}/flags/checkout/on", json={}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409, stale.text
    missing = await team["ann"].post(f"{PROD}/flags/nope/on", json={})
    assert missing.status_code == 404
    assert await team.last_seq() == seq


async def test_a_request_scheduled_at_a_time_applies_then_if_approved(team: Team) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.helpers import until

    await _flag(team)
    await _flag(team, "search")
    await team.gate()
    due = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    body = {"due": due, "flag": "checkout", "action": "on", "comment": "at three"}
    approved = await _request(team, "ann", "POST", f"{PROD}/schedules", body)
    assert approved["apply_at"] is not None
    assert approved["calls"][0]["path"].endswith("/flags/checkout/on")
    body = {"due": due, "flag": "search", "action": "on"}
    unapproved = await _request(team, "ann", "POST", f"{PROD}/schedules", body)
    await team["bob"].post(f"{_one(approved)}/approve", json={})

    async def settled() -> bool:
        states = [(await team.op.get(_one(r))).json()["status"] for r in (approved, unapproved)]
        return "open" not in states

    await until(settled, "both scheduled requests reached their time")
    assert (await team.op.get(_one(approved))).json()["status"] == "applied"
    failed = (await team.op.get(_one(unapproved))).json()
    assert failed["status"] == "failed"
    assert "not approved" in failed["error"]
    assert (await team.flag("checkout"))["flag"]["on"] is True
    assert (await team.flag("search"))["flag"]["on"] is False


async def test_the_approval_setting_itself_is_held(team: Team) -> None:
    await team.gate()
    answer = await team["ann"].patch(f"{API}/environments/production", json={"approvals": 0})
    assert answer.status_code == 202, answer.text
    env = (await team.op.get(f"{API}/environments/production")).json()["environment"]
    assert env["approvals"] == 1
    bad = await team.op.patch(f"{API}/environments/development", json={"approvers": ["root"]})
    assert bad.status_code == 422
    assert "approvers[0]" in bad.text
