"""Partial and whole updates over HTTP: PATCH is a JSON Merge Patch (RFC 7386) applied to the current state and
checked as a whole; PUT is the whole entity, and a PUT that leaves out a field is refused rather than resetting it."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import API, Admin

ENV = f"{API}/environments/development"
FLAGS = f"{ENV}/flags"
MERGE = {"Content-Type": "application/merge-patch+json"}
RULE = {"id": "ca", "clauses": [{"attribute": "state", "op": "in", "values": ["CA"]}], "serve": {"variation": "on"}}


async def _flag(admin: Admin) -> dict[str, Any]:
    await admin.create_env()
    body = {"key": "checkout", "name": "New checkout", "description": "one page", "tags": ["web"], "rules": [RULE],
            "salt": "keep-my-buckets"}  # fmt: skip
    created = await admin.http.post(FLAGS, json=body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def test_a_merge_patch_changes_what_it_names_and_keeps_everything_else(admin: Admin) -> None:
    created = await _flag(admin)
    patch = (
        b'{"description": "two pages", "fallthrough": {"variation": null, "rollout": {"variations": ['
        b'{"variation": "on", "weight": 10000}, {"variation": "off", "weight": 90000}]}}, "comment": "10%"}'
    )
    patched = await admin.http.patch(f"{FLAGS}/checkout", content=patch, headers=MERGE)
    assert patched.status_code == 200, patched.text
    flag = patched.json()["flag"]
    assert flag["description"] == "two pages"
    assert flag["fallthrough"]["variation"] is None
    assert [w["weight"] for w in flag["fallthrough"]["rollout"]["variations"]] == [10000, 90000]
    for kept in ("name", "tags", "rules", "salt", "variations", "on"):
        assert flag[kept] == created["flag"][kept], kept
    assert patched.json()["comment"] == "10%"

    # Nested objects merge; null removes a member, which then has its default.
    deeper = await admin.http.patch(
        f"{FLAGS}/checkout", json={"fallthrough": {"rollout": {"bucket_by": "account"}}, "description": None},
        headers={**MERGE, "If-Match": patched.headers["etag"]},
    )  # fmt: skip
    assert deeper.status_code == 200, deeper.text
    rollout = deeper.json()["flag"]["fallthrough"]["rollout"]
    assert (rollout["bucket_by"], len(rollout["variations"])) == ("account", 2)
    assert deeper.json()["flag"]["description"] == ""


async def test_a_merge_patch_is_checked_as_a_whole_and_nothing_is_written_when_refused(admin: Admin) -> None:
    await _flag(admin)
    before = await admin.last_seq()
    cases = [
        ({"fallthrough": {"rolout": {}}}, 422, "$.fallthrough.rolout"),  # unknown field, with its path
        ({"fallthrough": {"rollout": {"variations": [{"variation": "on", "weight": 100000}]}}}, 422, "serve"),
        ({"off_variation": "nope"}, 422, "nope"),  # the whole flag is validated
        ({"key": None}, 422, "key"),  # a field with no default cannot be removed
        ({"key": "other"}, 422, "differs from the key in the URL"),
        ({"archived": True}, 422, "archive"),
        ({"comment": 5}, 422, "$.comment"),
        (["a", "list"], 422, "JSON object"),
    ]
    for patch, status, words in cases:
        refused = await admin.http.patch(f"{FLAGS}/checkout", json=patch, headers=MERGE)
        assert refused.status_code == status, (patch, refused.text)
        assert words in refused.text, (patch, refused.text)
    json_patch = await admin.http.patch(
        f"{FLAGS}/checkout", json=[{"op": "replace", "path": "/name", "value": "x"}],
        headers={"Content-Type": "application/json-patch+json"},
    )  # fmt: skip
    assert json_patch.status_code == 415, json_patch.text
    assert "application/merge-patch+json" in json_patch.json()["error"]
    assert await admin.last_seq() == before


async def test_plain_json_is_read_as_a_merge_patch_too(admin: Admin) -> None:
    created = await _flag(admin)
    half = {"variations": [{"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}
    both = await admin.http.patch(f"{FLAGS}/checkout", json={"fallthrough": {"rollout": half}})
    assert both.status_code == 422, "merged into the current default rule, which serves a variation: both at once"
    assert "$.fallthrough" in both.text, both.text
    patched = await admin.http.patch(f"{FLAGS}/checkout", json={"name": "Checkout"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["flag"] == {**created["flag"], "name": "Checkout"}


async def test_segments_and_environments_take_a_merge_patch(admin: Admin) -> None:
    await admin.create_env()
    segment = {"key": "beta", "name": "Beta", "included": ["ann"], "rules": [{"id": "r", "clauses": [], "weight": 10}]}
    assert (await admin.http.post(f"{ENV}/segments", json=segment)).status_code == 201
    patched = await admin.http.patch(f"{ENV}/segments/beta", json={"excluded": ["bob"]}, headers=MERGE)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["segment"]["included"], patched.json()["segment"]["excluded"]) == (["ann"], ["bob"])
    assert patched.json()["segment"]["rules"][0]["weight"] == 10

    env = await admin.http.patch(ENV, json={"description": "laptops", "production": True}, headers=MERGE)
    assert env.status_code == 200, env.text
    assert (env.json()["environment"]["name"], env.json()["environment"]["production"]) == ("Development", True)


async def test_a_put_is_the_whole_flag_and_one_missing_a_field_is_refused(admin: Admin) -> None:
    created = await _flag(admin)
    before = await admin.last_seq()
    partial = await admin.http.put(f"{FLAGS}/checkout", json={"description": "only this"})
    assert partial.status_code == 422, partial.text
    error = partial.json()
    missing = {p["path"] for p in error["problems"]}
    assert {"$.name", "$.salt", "$.rules", "$.tags"} <= missing, error
    assert "PATCH" in error["error"], "the answer points to the partial update"
    assert await admin.last_seq() == before, "nothing was written"

    whole = {**created["flag"], "description": "two pages"}
    replaced = await admin.http.put(f"{FLAGS}/checkout", json=whole)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["flag"] == whole
    without_key_and_archived = {k: v for k, v in whole.items() if k not in ("key", "archived")}
    again = await admin.http.put(f"{FLAGS}/checkout", json={**without_key_and_archived, "name": "Renamed"})
    assert again.status_code == 200, "key comes from the URL, archived only changes by archive/restore"
    assert again.json()["flag"]["name"] == "Renamed"
