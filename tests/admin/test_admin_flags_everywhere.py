"""One flag across all environments: created once, present in every environment (and every environment's SDK);
what it is (name, variations...) written everywhere at once, what it does per environment; deleted as a
tombstone. Real nats-server, the admin app, real SDK clients per environment."""

from __future__ import annotations

import asyncio

from flagstream import AsyncFlagstreamClient
from flagstream.events import FlagDeleted
from tests.admin.conftest import API, Admin
from tests.helpers import auth_headers, eventually

ENVS = ("development", "staging", "production")
ON_OFF = [{"key": "on", "value": True}, {"key": "off", "value": False}]


def flags(env: str) -> str:
    return f"{API}/environments/{env}/flags"


async def three(admin: Admin) -> None:
    for env in ENVS:
        await admin.create_env(env)


async def test_created_once_the_flag_is_in_every_environment_and_every_sdk_sees_it(admin: Admin, nats_url: str) -> None:
    await three(admin)
    clients = [AsyncFlagstreamClient(nats_url, environment=env) for env in ENVS]
    try:
        await asyncio.gather(*(c.start(wait=30) for c in clients))
        before = await admin.last_seq()
        created = await admin.http.post(flags("staging"), json={"key": "checkout", "name": "Checkout", "on": True})
        assert created.status_code == 201, created.text
        assert await admin.last_seq() == before + 3, "one event per environment, written together"
        for env in ENVS:
            got = (await admin.http.get(f"{flags(env)}/checkout")).json()
            assert got["flag"]["name"] == "Checkout"
            assert got["flag"]["on"] is (env == "staging"), "elsewhere it starts off"
        await eventually(lambda: all("checkout" in c.ruleset.flags for c in clients), what="every SDK has it")
        answers = [c.bool_variation("checkout", {"key": "u"}, True) for c in clients]
        assert answers == [False, True, False]  # off: the off variation; on in staging: the default rule
        # One change, three events: they carry one change id.
        events = [(await admin.events(f"flagstream.default.{env}.flag.checkout"))[0] for env in ENVS]
        assert len({e.change for e in events}) == 1
        assert events[0].change
        again = await admin.http.post(flags("production"), json={"key": "checkout"})
        assert again.status_code == 409
        assert "already exists in project 'default'" in again.json()["error"]
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_what_a_flag_is_changes_everywhere_what_it_does_in_one_environment(admin: Admin) -> None:
    await three(admin)
    assert (await admin.http.post(flags("development"), json={"key": "checkout"})).status_code == 201
    renamed = await admin.http.patch(f"{flags('production')}/checkout", json={"name": "One-page checkout"})
    assert renamed.status_code == 200, renamed.text
    on = await admin.http.post(f"{flags('production')}/checkout/on")
    assert on.status_code == 200
    for env in ENVS:
        flag = (await admin.http.get(f"{flags(env)}/checkout")).json()["flag"]
        assert flag["name"] == "One-page checkout", env
        assert flag["on"] is (env == "production"), env
    # Targeting in one environment stays there.
    targeted = await admin.http.patch(
        f"{flags('staging')}/checkout", json={"targets": [{"variation": "on", "values": ["qa-team"]}]}
    )
    assert targeted.status_code == 200, targeted.text
    assert [(await admin.http.get(f"{flags(env)}/checkout")).json()["flag"]["targets"] != [] for env in ENVS] == [
        False,
        True,
        False,
    ]


async def test_a_variation_served_somewhere_cannot_be_removed(admin: Admin) -> None:
    await three(admin)
    body = {
        "key": "theme",
        "kind": "string",
        "variations": [{"key": "light", "value": "l"}, {"key": "dark", "value": "d"}, {"key": "blue", "value": "b"}],
        "off_variation": "light",
        "fallthrough": {"variation": "light"},
    }
    assert (await admin.http.post(flags("development"), json=body)).status_code == 201
    served = await admin.http.patch(
        f"{flags('production')}/theme",
        json={"rules": [{"id": "vip", "clauses": [{"attribute": "plan", "op": "in", "values": ["vip"]}],
                         "serve": {"variation": "blue"}}]},
    )  # fmt: skip
    assert served.status_code == 200, served.text
    before = await admin.last_seq()
    refused = await admin.http.patch(
        f"{flags('development')}/theme",
        json={"variations": body["variations"][:2]},  # drops "blue"
    )
    assert refused.status_code == 422
    assert refused.json()["error"] == "variation 'blue' is served in production by rule 1 (vip): change that first"
    assert await admin.last_seq() == before, "nothing written"
    # Not served anywhere: it goes, in every environment.
    dropped = await admin.http.patch(
        f"{flags('development')}/theme", json={"variations": [body["variations"][i] for i in (0, 2)]}
    )
    assert dropped.status_code == 200, dropped.text
    for env in ENVS:
        flag = (await admin.http.get(f"{flags(env)}/theme")).json()["flag"]
        assert [v["key"] for v in flag["variations"]] == ["light", "blue"]


async def test_archive_and_delete_act_everywhere_and_delete_is_a_tombstone(admin: Admin, nats_url: str) -> None:
    await three(admin)
    assert (await admin.http.post(flags("development"), json={"key": "old", "on": True})).status_code == 201
    client = AsyncFlagstreamClient(nats_url, environment="development")
    try:
        await client.start(wait=30)
        assert client.bool_variation("old", {"key": "u"}, False) is True
        deleted = await admin.http.delete(f"{API}/flags/old")
        assert deleted.status_code == 409
        assert "archive it before deleting it" in deleted.json()["error"]
        assert (await admin.http.post(f"{flags('production')}/old/archive")).status_code == 200
        for env in ENVS:
            assert (await admin.http.get(f"{flags(env)}/old")).json()["flag"]["archived"] is True
        deleted = await admin.http.delete(f"{API}/flags/old")
        assert deleted.status_code == 200, deleted.text
        await eventually(lambda: "old" not in client.ruleset.flags, what="the SDK dropped the deleted flag")
        assert client.bool_variation("old", {"key": "u"}, False) is False  # the caller's default: not found
        for env in ENVS:
            assert (await admin.http.get(f"{flags(env)}/old")).status_code == 404
            assert "old" not in [
                i["key"] for i in (await admin.http.get(flags(env), params={"archived": "all"})).json()["items"]
            ]
            events = await admin.events(f"flagstream.default.{env}.flag.old")
            assert isinstance(events[-1], FlagDeleted)  # history stays: the tombstone is the last of them
            assert [type(e).__name__ for e in events[:-1]] == ["FlagCreated", "FlagArchived"]
        # The key can be used again.
        assert (await admin.http.post(flags("staging"), json={"key": "old"})).status_code == 201
    finally:
        await client.close()


async def test_a_new_environment_gets_every_flag_off_or_copied(admin: Admin) -> None:
    await admin.create_env("staging")
    assert (
        await admin.http.post(f"{API}/environments/staging/segments", json={"key": "beta", "included": ["ann"]})
    ).status_code == 201
    rule = {"id": "beta", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}
    assert (await admin.http.post(flags("staging"), json={"key": "a", "on": True, "rules": [rule]})).status_code == 201
    assert (await admin.http.post(flags("staging"), json={"key": "b", "name": "B"})).status_code == 201
    assert (await admin.http.post(f"{API}/environments", json={"key": "qa"})).status_code == 201
    qa = {i["key"]: i["flag"] for i in (await admin.http.get(flags("qa"))).json()["items"]}
    assert sorted(qa) == ["a", "b"]
    assert (qa["a"]["on"], qa["a"]["rules"], qa["b"]["name"]) == (False, [], "B")

    copied = await admin.http.post(f"{API}/environments", json={"key": "production", "copy_from": "staging"})
    assert copied.status_code == 201, copied.text
    prod = {i["key"]: i["flag"] for i in (await admin.http.get(flags("production"))).json()["items"]}
    staging = {i["key"]: i["flag"] for i in (await admin.http.get(flags("staging"))).json()["items"]}
    assert prod == staging
    segment = (await admin.http.get(f"{API}/environments/production/segments/beta")).json()["segment"]
    assert segment["included"] == ["ann"], "the segments the rules use come along"
    missing = await admin.http.post(f"{API}/environments", json={"key": "x", "copy_from": "nowhere"})
    assert missing.status_code == 404


async def test_a_token_of_some_environments_changes_only_what_they_serve(admin: Admin) -> None:
    await three(admin)
    assert (await admin.http.post(flags("development"), json={"key": "checkout"})).status_code == 201
    minted = await admin.http.post(
        "/api/v1/tokens", json={"name": "dev-bot", "role": "writer", "environments": ["development"]}
    )
    dev = auth_headers(minted.json()["token"])
    # Its own environment's configuration: yes. Descriptive fields, written everywhere: yes.
    assert (await admin.http.post(f"{flags('development')}/checkout/on", headers=dev)).status_code == 200
    assert (
        await admin.http.patch(f"{flags('development')}/checkout", json={"name": "Checkout"}, headers=dev)
    ).status_code == 200
    assert (await admin.http.get(f"{flags('production')}/checkout")).json()["flag"]["name"] == "Checkout"
    # What production serves: no, whatever the route.
    before = await admin.last_seq()
    for method, path, body in [
        ("PATCH", f"{flags('development')}/checkout", {"variations": [*ON_OFF, {"key": "x", "value": False}]}),
        ("POST", f"{flags('development')}/checkout/archive", None),
        ("PATCH", f"{flags('production')}/checkout", {"on": True}),
        ("POST", f"{flags('production')}/checkout/on", None),
        ("PATCH", f"{API}/flags/checkout", {"name": "X"}),
        ("DELETE", f"{API}/flags/checkout", None),
    ]:  # fmt: skip
        response = await admin.http.request(method, path, json=body, headers=dev)
        assert response.status_code == 403, (method, path, response.text)
    assert await admin.last_seq() == before, "nothing written"
    denied = await admin.http.post(f"{flags('development')}/checkout/archive", headers=dev)
    assert "production" in denied.json()["error"]
    assert "staging" in denied.json()["error"]


async def test_data_written_per_environment_before_stays_served_and_converges_on_the_next_change(
    admin: Admin,
) -> None:
    """Before flags were project-wide, the same key could be created per environment with its own name and
    variations (here written straight to the stream, as the old admin did). Nothing is rewritten: each
    environment keeps serving what it served; the project view names the differences; the next project-wide
    change writes one definition everywhere, refused while it would drop a variation one of them serves."""
    from datetime import UTC, datetime

    from flagstream.events import Flag, FlagCreated, Serve, Variation, encode_event, subject

    await admin.create_env("development")
    await admin.create_env("production")
    js = admin.nc.jetstream()
    now = datetime.now(UTC)
    three_variations = (
        Variation(key="on", value=True),
        Variation(key="off", value=False),
        Variation(key="beta", value=True),
    )
    dev = Flag(key="legacy", name="Dev name", variations=three_variations, fallthrough=Serve(variation="beta"), on=True)
    prod = Flag(key="legacy", name="Prod name")
    for env, flag in (("development", dev), ("production", prod)):
        event = FlagCreated(project="default", environment=env, actor="old", at=now, flag=flag)
        await js.publish(subject("default", env, "flag", "legacy"), encode_event(event))
    view = (await admin.http.get(f"{API}/flags/legacy")).json()
    assert view["definition"]["name"] == "Prod name", "the definition is the one written last"
    assert view["diverged"] == {"development": ["name", "variations"]}
    # Each environment's own variations stay reachable where they differ from the definition.
    assert [v["key"] for v in view["environments"]["development"]["variations"]] == ["on", "off", "beta"]
    assert "variations" not in view["environments"]["production"]
    refused = await admin.http.patch(f"{API}/flags/legacy", json={"description": "one flag now"})
    assert refused.status_code == 422
    assert "variation 'beta' is served in development by the default rule" in refused.json()["error"]
    variations = [{"key": "on", "value": True}, {"key": "off", "value": False}, {"key": "beta", "value": True}]
    converged = await admin.http.patch(f"{API}/flags/legacy", json={"name": "Legacy", "variations": variations})
    assert converged.status_code == 200, converged.text
    view = (await admin.http.get(f"{API}/flags/legacy")).json()
    assert view["diverged"] == {}
    assert (await admin.http.get(f"{flags('development')}/legacy")).json()["flag"]["fallthrough"]["variation"] == "beta"
