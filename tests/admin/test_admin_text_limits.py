"""Free text has a size: a name, a description or a change comment longer than its limit is a 422 naming the
field (its JSON path) and the limit, and nothing is written. Flag values are data, not text: they are not cut."""

from __future__ import annotations

from typing import Any

from flagstream.services.changes import MAX_TEXT
from tests.admin.conftest import API, Admin

ENV = f"{API}/environments/development"
FLAGS = f"{ENV}/flags"


def too_long(field: str) -> str:
    return "x" * (MAX_TEXT[field] + 1)


async def _refused(admin: Admin, method: str, url: str, body: Any, path: str) -> None:
    before = await admin.last_seq()
    response = await admin.http.request(method, url, json=body)
    assert response.status_code == 422, (method, url, path, response.text[:300])
    answer = response.json()
    assert answer["problems"][0]["path"] == path, answer
    field = path.rsplit(".", 1)[1].split("[")[0]
    assert f"at most {MAX_TEXT[field if field in MAX_TEXT else 'tag']:,} characters" in answer["error"], answer
    assert await admin.last_seq() == before, "nothing was written"


async def test_the_limits_are_the_documented_ones() -> None:
    assert MAX_TEXT == {"name": 200, "description": 2000, "comment": 1000, "tag": 64}


async def test_long_free_text_is_refused_naming_the_field(admin: Admin) -> None:
    await admin.create_env()
    nine_hundred_kb = "d" * 900_000
    await _refused(admin, "POST", FLAGS, {"key": "big", "description": nine_hundred_kb}, "$.description")
    await _refused(admin, "POST", FLAGS, {"key": "big", "name": too_long("name")}, "$.name")
    await _refused(admin, "POST", FLAGS, {"key": "big", "comment": too_long("comment")}, "$.comment")
    await _refused(admin, "POST", FLAGS, {"key": "big", "tags": ["web", too_long("tag")]}, "$.tags[1]")
    variations = [{"key": "on", "value": True, "description": too_long("description")}, {"key": "off", "value": False}]
    await _refused(admin, "POST", FLAGS, {"key": "big", "variations": variations}, "$.variations[0].description")
    rule = {"id": "r", "description": too_long("description"), "serve": {"variation": "on"}}
    await _refused(admin, "POST", FLAGS, {"key": "big", "rules": [rule]}, "$.rules[0].description")

    created = await admin.http.post(FLAGS, json={"key": "ok", "name": "n" * MAX_TEXT["name"]})
    assert created.status_code == 201, "at the limit is fine"
    await _refused(admin, "PATCH", f"{FLAGS}/ok", {"description": too_long("description")}, "$.description")
    whole = {**created.json()["flag"], "name": too_long("name")}
    await _refused(admin, "PUT", f"{FLAGS}/ok", whole, "$.name")
    await _refused(admin, "POST", f"{FLAGS}/ok/on", {"comment": too_long("comment")}, "$.comment")
    segment = {"key": "s", "description": too_long("description")}
    await _refused(admin, "POST", f"{ENV}/segments", segment, "$.description")
    await _refused(admin, "PATCH", ENV, {"name": too_long("name")}, "$.name")
    due = "2999-01-01T00:00:00Z"
    schedule = {"due": due, "flag": "ok", "action": "patch", "changes": {"name": too_long("name")}}
    await _refused(admin, "POST", f"{ENV}/schedules", schedule, "$.changes.name")
    schedule = {"due": due, "flag": "ok", "action": "on", "comment": too_long("comment")}
    await _refused(admin, "POST", f"{ENV}/schedules", schedule, "$.comment")


async def test_flag_values_are_data_and_keep_their_size(admin: Admin) -> None:
    await admin.create_env()
    value = {"name": "n" * 5000, "description": "d" * 50_000, "comment": "c" * 5000}
    body = {"key": "config", "kind": "json", "variations": [{"key": "v1", "value": value}], "off_variation": "v1",
            "fallthrough": {"variation": "v1"}}  # fmt: skip
    created = await admin.http.post(FLAGS, json=body)
    assert created.status_code == 201, created.text[:300]
    assert created.json()["flag"]["variations"][0]["value"] == value
