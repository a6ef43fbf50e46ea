"""History and time travel over a scripted life of a flag and a segment: the audit log with field-level diffs,
state as of a time or a sequence (also between two events of the same second), evaluation as of an instant,
the diff of an environment between two instants, and a revert. Real nats-server, admin app, projector, SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstream.services.projector.projector import Projector
from tests.helpers import admin_with_history, auth_headers

ENV = "/api/v1/projects/default/environments/production"


@dataclass
class History:
    http: httpx.AsyncClient
    projector: Projector
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def caught_up(self) -> int:
        return await self.projector.wait_caught_up(30)

    async def call(self, method: str, path: str, actor: str = "ada", **kwargs: Any) -> dict[str, Any]:
        headers = {**auth_headers(), "X-Flagstream-Actor": actor}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        assert response.is_success, response.text
        return response.json()  # type: ignore[no-any-return]

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        await self.caught_up()
        return await self.call("GET", path, params=params)


@pytest.fixture
async def history(nats_url: str, tmp_path: Path) -> AsyncIterator[History]:
    async with admin_with_history(nats_url, tmp_path, headers={}) as found:
        yield History(found.http, found.projector)


def rollout(on_weight: int) -> dict[str, Any]:
    return {"rollout": {"variations": [{"variation": "on", "weight": on_weight},
                                       {"variation": "off", "weight": 100_000 - on_weight}]}}  # fmt: skip


async def scripted(h: History) -> dict[str, dict[str, Any]]:
    """create env, segment, flag; toggle; change rollout; change the segment; archive; restore."""
    s = h.steps
    await h.call("POST", "/api/v1/projects/default/environments", json={"key": "production"})
    s["segment"] = await h.call("POST", f"{ENV}/segments", json={"key": "beta", "included": ["u1"]}, actor="bob")
    flag = {
        "key": "new-checkout",
        "rules": [{"id": "beta-users", "clauses": [{"op": "in_segment", "values": ["beta"]}],
                   "serve": {"variation": "on"}}],
        "fallthrough": rollout(10_000),
        "comment": "first version",
    }  # fmt: skip
    s["create"] = await h.call("POST", f"{ENV}/flags", json=flag)
    s["toggle"] = await h.call("POST", f"{ENV}/flags/new-checkout/on", json={"comment": "launch"})
    s["rollout"] = await h.call("PATCH", f"{ENV}/flags/new-checkout", json={"fallthrough": rollout(20_000)})
    s["segment2"] = await h.call("PATCH", f"{ENV}/segments/beta", json={"included": ["u1", "u2"]}, actor="bob")
    s["archive"] = await h.call("POST", f"{ENV}/flags/new-checkout/archive", json={"comment": "done"})
    s["restore"] = await h.call("POST", f"{ENV}/flags/new-checkout/restore", json={})
    return s


def at(step: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(step["at"])


async def test_audit_log_lists_changes_newest_first_with_field_level_diffs(history: History) -> None:
    s = await scripted(history)
    page = await history.get(f"{ENV}/flags/new-checkout/history")
    items = page["items"]
    assert [i["type"] for i in items] == [
        "flag.restored", "flag.archived", "flag.updated", "flag.toggled", "flag.created"
    ]  # fmt: skip
    assert [i["seq"] for i in items] == [s[k]["version"] for k in ("restore", "archive", "rollout", "toggle", "create")]
    assert items[3]["lines"] == ["turned on"]  # a flag's changes read as sentences
    assert items[3]["changes"][0]["text"] == "on: false -> true"  # and field by field
    assert items[3]["comment"] == "launch"
    assert "ada" in items[3]["actor"]
    assert items[2]["lines"] == ["Default: rollout on 10% -> 20%, off 90% -> 80%"]
    assert items[1]["lines"] == ["archived"]
    assert items[4]["previous"] == 0
    assert items[4]["changes"][0]["op"] == "added"

    segment = (await history.get(f"{ENV}/segments/beta/history"))["items"]
    assert segment[0]["lines"] == ['included: added "u2"']
    assert "bob" in segment[0]["actor"]

    # Whole environment, filtered by actor, paginated with the cursor.
    by_bob = await history.get(f"{ENV}/history", actor=s["segment"]["actor"])
    assert [i["seq"] for i in by_bob["items"]] == [s["segment2"]["version"], s["segment"]["version"]]
    first = await history.get(f"{ENV}/history", limit=3)
    assert len(first["items"]) == 3
    assert first["next_before"] == first["items"][-1]["seq"]
    rest = await history.get(f"{ENV}/history", limit=100, before=first["next_before"])
    seqs = [i["seq"] for i in first["items"] + rest["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) == 8
    assert rest["next_before"] is None
    # Time range: since inclusive, until exclusive.
    ranged = await history.get(f"{ENV}/history", since=s["toggle"]["at"], until=s["segment2"]["at"])
    assert [i["seq"] for i in ranged["items"]] == [s["rollout"]["version"], s["toggle"]["version"]]


async def test_state_as_of_a_sequence_or_a_time_even_within_one_second(history: History) -> None:
    s = await scripted(history)
    flag = f"{ENV}/flags/new-checkout/state"
    by_seq = await history.get(flag, seq=s["toggle"]["version"])
    assert by_seq["record"]["state"]["on"] is True
    assert by_seq["record"]["state"]["fallthrough"]["rollout"]["variations"][0]["weight"] == 10_000
    assert (await history.get(flag, seq=s["segment"]["version"]))["record"] is None  # did not exist yet

    # Exactly at an event's time: that event is included.
    exact = await history.get(flag, at=s["rollout"]["at"])
    assert exact["seq"] == s["rollout"]["version"]
    assert exact["record"]["version"] == s["rollout"]["version"]
    # Between two events (microseconds apart, usually within one second): the earlier one.
    t1, t2 = at(s["toggle"]), at(s["rollout"])
    assert t2 > t1
    middle = t1 + (t2 - t1) / 2
    between = await history.get(flag, at=middle.isoformat())
    assert between["seq"] == s["toggle"]["version"]
    assert between["record"]["state"]["fallthrough"]["rollout"]["variations"][0]["weight"] == 10_000

    # A whole environment.
    env = await history.get(f"{ENV}/state", seq=s["archive"]["version"])
    assert [f["state"]["archived"] for f in env["flags"]] == [True]
    assert env["segments"][0]["state"]["included"] == ["u1", "u2"]
    now = await history.get(f"{ENV}/state")
    assert now["flags"][0]["state"]["archived"] is False
    before_anything = await history.get(f"{ENV}/state", at=(at(s["segment"]) - timedelta(days=1)).isoformat())
    assert before_anything["flags"] == []
    assert before_anything["segments"] == []


async def test_evaluate_as_of_uses_segments_as_they_stood_then(history: History) -> None:
    s = await scripted(history)
    await history.caught_up()

    async def u2(**when: Any) -> dict[str, Any]:
        body = {"context": {"key": "u2"}, "flags": ["new-checkout"], **when}
        return (await history.call("POST", f"{ENV}/evaluate", json=body))["results"][0]

    before = await u2(seq=s["rollout"]["version"])  # u2 not yet in the segment: the 20% rollout decides
    assert before["reason"]["kind"] == "FALLTHROUGH"
    assert before["reason"]["in_rollout"] is True
    after = await u2(as_of=s["segment2"]["at"])
    assert after == {**after, "value": True, "variation": "on", "seq": s["segment2"]["version"]}
    assert after["reason"] == {"kind": "RULE_MATCH", "rule_index": 0, "rule_id": "beta-users", "in_rollout": False} or (
        after["reason"]["kind"] == "RULE_MATCH" and after["reason"]["rule_id"] == "beta-users"
    )
    off = await u2(seq=s["create"]["version"])
    assert off["value"] is False
    assert off["reason"]["kind"] == "OFF"
    archived = await u2(seq=s["archive"]["version"])
    assert archived["reason"]["kind"] == "ERROR"
    assert archived["value"] is None
    now = (await history.call("POST", f"{ENV}/evaluate", json={"context": {"key": "u2"}}))["results"]
    assert [(r["flag"], r["variation"]) for r in now] == [("new-checkout", "on")]


async def test_diff_between_two_instants(history: History) -> None:
    s = await scripted(history)
    result = await history.get(f"{ENV}/diff", **{"from": s["create"]["version"], "to": s["segment2"]["at"]})
    items = {(i["kind"], i["key"]): i for i in result["items"]}
    assert items[("flag", "new-checkout")]["change"] == "changed"
    assert [c["text"] for c in items[("flag", "new-checkout")]["changes"]] == [
        "on: false -> true",
        "fallthrough.rollout.variations[0].weight: 10% -> 20%",
        "fallthrough.rollout.variations[1].weight: 90% -> 80%",
    ]
    assert items[("segment", "beta")]["changes"][0]["added"] == ["u2"]
    archived = await history.get(f"{ENV}/diff", **{"from": s["rollout"]["version"], "to": s["archive"]["version"]})
    assert [(i["key"], i["change"]) for i in archived["items"]] == [("new-checkout", "archived"), ("beta", "changed")]
    created = await history.get(f"{ENV}/diff", **{"from": s["segment"]["version"]})
    assert {(i["key"], i["change"]) for i in created["items"]} == {("new-checkout", "created"), ("beta", "changed")}


async def test_revert_a_flag_appends_events_naming_the_instant(history: History) -> None:
    s = await scripted(history)
    await history.caught_up()
    target = s["toggle"]["version"]
    result = await history.call("POST", f"{ENV}/flags/new-checkout/revert", json={"seq": target, "comment": "oops"})
    assert [w["action"] for w in result["written"]] == ["replace"]
    assert result["comment"].startswith(f"revert flag new-checkout to its state at seq {target} (")
    assert result["comment"].endswith("): oops")
    now = await history.call("GET", f"{ENV}/flags/new-checkout")
    then = await history.get(f"{ENV}/flags/new-checkout/state", seq=target)
    assert now["flag"] == then["record"]["state"]
    assert now["comment"] == result["comment"]
    assert now["event"] == "flag.updated"
    # Nothing to do the second time.
    again = await history.call("POST", f"{ENV}/flags/new-checkout/revert", json={"seq": target})
    assert again["written"] == []
    # A segment, by time.
    segment = await history.call("POST", f"{ENV}/segments/beta/revert", json={"to": s["segment"]["at"]})
    assert [(w["kind"], w["action"]) for w in segment["written"]] == [("segment", "replace")]
    assert (await history.call("GET", f"{ENV}/segments/beta"))["segment"]["included"] == ["u1"]
    # A flag that never existed: 404.
    missing = await history.http.post(f"{ENV}/flags/ghost/revert", json={"seq": target}, headers=auth_headers())
    assert missing.status_code == 404


async def test_bad_requests_name_the_problem(history: History) -> None:
    await scripted(history)
    await history.caught_up()
    headers = auth_headers()
    cases = [
        ("GET", f"{ENV}/history", {"params": {"limit": "0"}}, 400, "limit"),
        ("GET", f"{ENV}/history", {"params": {"since": "yesterday"}}, 400, "since"),
        ("GET", f"{ENV}/history", {"params": {"key": "x"}}, 400, "kind"),
        ("GET", f"{ENV}/state", {"params": {"seq": "99999"}}, 422, "beyond"),
        ("GET", f"{ENV}/state", {"params": {"seq": "1", "at": "2026-01-01T00:00:00Z"}}, 400, "one of"),
        ("GET", f"{ENV}/flags/nope/state", {}, 404, "nope"),
        ("POST", f"{ENV}/evaluate", {"json": {"context": {}, "seq": 1, "as_of": "2026-01-01T00:00:00Z"}}, 400,
         "not both"),
        ("POST", f"{ENV}/evaluate", {"json": {"contxt": {}}}, 422, "contxt"),
        ("POST", f"{ENV}/revert", {"json": {}}, 400, '"to"'),
        ("GET", f"{ENV}/diff", {}, 400, "from"),
    ]  # fmt: skip
    for method, path, kwargs, status, needle in cases:
        response = await history.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, (path, kwargs, response.text)
        assert needle in response.json()["error"], response.text


async def test_without_a_read_model_history_answers_503(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        response = await http.get(f"{ENV}/history")
    assert response.status_code == 503
    assert "read model" in response.json()["error"]
