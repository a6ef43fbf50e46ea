"""The life of a flag through the API: each write answers the new state and appends exactly one event."""

from __future__ import annotations

from tests.admin.conftest import API, Admin

FLAGS = f"{API}/environments/development/flags"
SUBJECT = "flagstream.default.development.flag.checkout"


async def test_create_get_list_patch_toggle_archive_restore(admin: Admin) -> None:
    await admin.create_env()
    before = await admin.last_seq()

    created = await admin.http.post(
        FLAGS,
        json={"key": "checkout", "name": "New checkout", "tags": ["web"], "comment": "first cut"},
        headers={"X-Flagstream-Actor": "ann@example.com"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["flag"]["name"] == "New checkout"
    assert body["flag"]["on"] is False
    assert body["flag"]["variations"][0] == {"key": "on", "value": True, "name": "", "description": ""}
    assert body["revision"] == 1
    assert body["version"] == before + 1
    assert created.headers["etag"] == f'"{body["version"]}"'
    assert created.headers["location"] == f"{FLAGS}/checkout"

    got = await admin.http.get(f"{FLAGS}/checkout")
    assert got.status_code == 200
    assert got.json() == body

    patched = await admin.http.patch(
        f"{FLAGS}/checkout", json={"description": "one page", "comment": "doc"}, headers={"X-Flagstream-Actor": "bob"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["flag"]["description"] == "one page"
    assert patched.json()["flag"]["name"] == "New checkout", "a patch keeps the fields it does not name"

    on = await admin.http.post(f"{FLAGS}/checkout/on", json={"comment": "launch"})
    assert on.status_code == 200
    assert on.json()["flag"]["on"] is True
    off = await admin.http.post(f"{FLAGS}/checkout/off")  # no body at all is fine
    assert off.status_code == 200
    assert off.json()["flag"]["on"] is False

    archived = await admin.http.post(f"{FLAGS}/checkout/archive", json={"comment": "done"})
    assert archived.json()["flag"]["archived"] is True
    listed = await admin.http.get(FLAGS)
    assert listed.json()["items"] == [], "archived flags are hidden by default"
    listed = await admin.http.get(FLAGS, params={"archived": "true"})
    assert [i["key"] for i in listed.json()["items"]] == ["checkout"]
    restored = await admin.http.post(f"{FLAGS}/checkout/restore")
    assert restored.json()["flag"]["archived"] is False
    assert restored.json()["revision"] == 6

    events = await admin.events(SUBJECT)
    assert [type(e).__struct_config__.tag for e in events] == [
        "flag.created",
        "flag.updated",
        "flag.toggled",
        "flag.toggled",
        "flag.archived",
        "flag.restored",
    ]
    assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
    # The actor is the token's name (the operator token here); the actor header only adds "(for ...)".
    assert [e.actor for e in events] == [
        "operator (for ann@example.com)",
        "operator (for bob)",
        "operator",
        "operator",
        "operator",
        "operator",
    ]
    assert [e.comment for e in events] == ["first cut", "doc", "launch", "", "done", ""]
    assert all(e.project == "default" and e.environment == "development" for e in events)
    assert await admin.last_seq() == before + 6, "one event per write, nothing else"


async def test_list_filters_by_tag_and_text(admin: Admin) -> None:
    await admin.create_env()
    for key, name, tags in [("checkout", "New checkout", ["web"]), ("search", "Fast search", ["api"])]:
        response = await admin.http.post(FLAGS, json={"key": key, "name": name, "tags": tags})
        assert response.status_code == 201
    assert [i["key"] for i in (await admin.http.get(FLAGS)).json()["items"]] == ["checkout", "search"]
    assert [i["key"] for i in (await admin.http.get(FLAGS, params={"tag": "api"})).json()["items"]] == ["search"]
    assert [i["key"] for i in (await admin.http.get(FLAGS, params={"q": "CHECK"})).json()["items"]] == ["checkout"]
    assert [i["key"] for i in (await admin.http.get(FLAGS, params={"q": "fast"})).json()["items"]] == ["search"]


async def test_turning_on_a_flag_that_is_on_writes_nothing(admin: Admin) -> None:
    await admin.create_env()
    await admin.http.post(FLAGS, json={"key": "checkout", "on": True})
    before = await admin.last_seq()
    again = await admin.http.post(f"{FLAGS}/checkout/on")
    assert again.status_code == 200
    assert again.json()["flag"]["on"] is True
    assert await admin.last_seq() == before


async def test_archived_flag_must_be_restored_before_a_change(admin: Admin) -> None:
    await admin.create_env()
    await admin.http.post(FLAGS, json={"key": "checkout"})
    await admin.http.post(f"{FLAGS}/checkout/archive")
    refused = await admin.http.post(f"{FLAGS}/checkout/on")
    assert refused.status_code == 409
    assert "restore" in refused.json()["error"]


async def test_put_replaces_the_whole_flag(admin: Admin) -> None:
    await admin.create_env()
    created = await admin.http.post(FLAGS, json={"key": "checkout", "name": "Old", "tags": ["web"]})
    whole = {**created.json()["flag"], "name": "New", "tags": []}
    replaced = await admin.http.put(f"{FLAGS}/checkout", json=whole)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["flag"] == whole
    assert replaced.json()["event"] == "flag.updated"
    partial = await admin.http.put(f"{FLAGS}/checkout", json={"name": "Newer"})
    assert partial.status_code == 422, "a PUT that leaves fields out does not reset them (see test_admin_patch.py)"


async def test_missing_environment_and_flag_are_404(admin: Admin) -> None:
    before = await admin.last_seq()
    response = await admin.http.post(f"{API}/environments/staging/flags", json={"key": "checkout"})
    assert response.status_code == 404
    assert "staging" in response.json()["error"]
    await admin.create_env()
    missing = await admin.http.get(f"{FLAGS}/nope")
    assert missing.status_code == 404
    assert "'nope'" in missing.json()["error"]
    assert await admin.last_seq() == before + 1  # only the environment


async def test_environments_and_short_form_routes(admin: Admin) -> None:
    await admin.create_env("development")
    before = await admin.last_seq()
    prod = await admin.http.post(
        "/api/v1/environments", json={"key": "production", "production": True, "comment": "go live"}
    )
    assert prod.status_code == 201, prod.text
    assert prod.json()["environment"]["production"] is True
    events = await admin.events("flagstream.default.production.environment.production")
    assert [(type(e).__struct_config__.tag, e.comment) for e in events] == [("environment.created", "go live")]
    assert await admin.last_seq() == before + 1
    listed = await admin.http.get(f"{API}/environments")
    assert [e["key"] for e in listed.json()["items"]] == ["development", "production"]
    one = await admin.http.get("/api/v1/environments/production")
    assert one.json()["environment"]["key"] == "production"
    again = await admin.http.post(f"{API}/environments", json={"key": "production"})
    assert again.status_code == 409
    assert "already exists" in again.json()["error"]


async def test_segments_have_the_same_life_cycle(admin: Admin) -> None:
    await admin.create_env()
    segments = f"{API}/environments/development/segments"
    created = await admin.http.post(segments, json={"key": "beta", "included": ["u1"]})
    assert created.status_code == 201, created.text
    patched = await admin.http.patch(f"{segments}/beta", json={"excluded": ["u2"]})
    assert patched.json()["segment"] == {**created.json()["segment"], "excluded": ["u2"]}
    archived = await admin.http.post(f"{segments}/beta/archive")
    assert archived.json()["segment"]["archived"] is True
    events = await admin.events("flagstream.default.development.segment.beta")
    assert [type(e).__struct_config__.tag for e in events] == ["segment.created", "segment.updated", "segment.archived"]


async def test_environment_patch(admin: Admin) -> None:
    await admin.create_env("production")
    patched = await admin.http.patch(
        f"{API}/environments/production", json={"production": True, "comment": "careful now"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["environment"] == {
        "key": "production",
        "name": "Production",
        "description": "",
        "production": True,
        "archived": False,
        "approvals": 0,
        "approvers": [],
        "emergency_off": False,
    }
    events = await admin.events("flagstream.default.production.environment.production")
    assert [(type(e).__struct_config__.tag, e.version, e.comment) for e in events] == [
        ("environment.created", 1, ""),
        ("environment.updated", 2, "careful now"),
    ]
    missing = await admin.http.patch(f"{API}/environments/qa", json={"name": "QA"})
    assert missing.status_code == 404


async def test_empty_lists(admin: Admin) -> None:
    assert (await admin.http.get(f"{API}/environments")).json() == {"items": []}
    await admin.create_env()
    assert (await admin.http.get(FLAGS)).json() == {"items": []}
    assert (await admin.http.get(f"{API}/environments/development/segments")).json() == {"items": []}
