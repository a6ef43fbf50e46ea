"""A change's path ending in a newline: refused in a new change request, still applied in one stored before.

The write routes were matched with Starlette's patterns, whose ``$`` also matches before a final newline, so an
earlier version took ``.../flags/checkout/off`` followed by a newline as the ``off`` write and stored it so.
"""

from __future__ import annotations

import msgspec

from flagstream.events import STREAM, decode_event, encode_event
from flagstream.events.catalog import RequestEdited
from tests.requests.conftest import API, PROD, Team

OFF = f"{PROD}/flags/checkout/off"


async def _checkout_on_with_approvals(team: Team) -> None:
    made = await team.op.post(f"{PROD}/flags", json={"key": "checkout", "on": True})
    assert made.status_code == 201, made.text
    await team.gate()


async def test_a_new_change_with_a_path_ending_in_a_newline_is_refused(team: Team) -> None:
    await _checkout_on_with_approvals(team)
    before = await team.last_seq()
    refused = await team["ann"].post(f"{API}/requests", json={"changes": [{"method": "POST", "path": f"{OFF}\n"}]})
    assert refused.status_code == 422, refused.text
    assert "is not a write the admin API takes" in refused.json()["error"]
    assert repr(f"{OFF}\n") in refused.json()["error"], "the path as it came, newline shown"
    assert await team.last_seq() == before, "no request was stored"


async def test_a_request_stored_with_such_a_path_still_applies(team: Team) -> None:
    await _checkout_on_with_approvals(team)
    opened = await team["ann"].post(f"{API}/requests", json={"changes": [{"method": "POST", "path": OFF}]})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]

    # The request as an earlier version stored it: its call's path ends in a newline (a request.edited carrying
    # the same request, as that version's API would have written it).
    js = team.nc.jetstream()
    subject = f"flagstream.default.production.request.{rid}"
    last = decode_event((await js.get_msg(STREAM, subject=subject, direct=True)).data or b"")
    request = last.change_request  # type: ignore[attr-defined]
    calls = tuple(msgspec.structs.replace(c, path=c.path + "\n") for c in request.calls)
    edited = RequestEdited(
        project=last.project, environment=last.environment, actor=last.actor, at=last.at, author=last.author,
        version=last.version + 1,
        change_request=msgspec.structs.replace(request, calls=calls, revision=request.revision + 1),
    )  # fmt: skip
    await js.publish(subject, encode_event(edited))
    shown = await team.op.get(f"{API}/requests/{rid}")
    assert [c["path"] for c in shown.json()["calls"]] == [f"{OFF}\n"], shown.text

    approved = await team["bob"].post(f"{API}/requests/{rid}/approve", json={})
    assert approved.status_code == 200, approved.text
    applied = await team["ann"].post(f"{API}/requests/{rid}/apply", json={})
    assert applied.status_code == 200, applied.text
    assert (await team.flag("checkout"))["flag"]["on"] is False
