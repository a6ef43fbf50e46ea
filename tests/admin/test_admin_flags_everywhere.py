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


async def test_the_whole_flag_in_one_document_edited_with_one_merge_patch(admin: Admin) -> None:
    await three(admin)
    created = await admin.http.post(f"{API}/flags", json={"key": "checkout", "name": "Checkout", "tags": ["web"]})
    assert created.status_code == 201, created.text
    doc = created.json()
    assert sorted(doc["environments"]) == sorted(ENVS)
    assert {env: c["summary"] for env, c in doc["environments"].items()} == dict.fromkeys(ENVS, "off")
    assert created.headers["etag"] == f'"{doc["version"]}"'
    patch = {
        "description": "one page",
        "environments": {
            "staging": {"on": True},
            "production": {"on": True, "fallthrough": {"variation": "off"}, "rules": [
                {"id": "ca", "clauses": [{"attribute": "state", "op": "in", "values": ["CA"]}],
                 "serve": {"rollout": {"variations": [{"variation": "on", "weight": 10000},
                                                      {"variation": "off", "weight": 90000}]}}}]},
        },
        "comment": "launch",
    }  # fmt: skip
    stale = await admin.http.patch(f"{API}/flags/checkout", json=patch, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    before = await admin.last_seq()
    patched = await admin.http.patch(f"{API}/flags/checkout", json=patch, headers={"If-Match": f'"{doc["version"]}"'})
    assert patched.status_code == 200, patched.text
    assert await admin.last_seq() == before + 3, "the description everywhere, with the two configurations"
    doc = patched.json()
    assert doc["definition"]["description"] == "one page"
    summaries = {env: c["summary"] for env, c in doc["environments"].items()}
    assert summaries == {
        "development": "off",
        "staging": "on to everyone",
        "production": "10% on for state is CA; else off",
    }
    assert doc["environments"]["production"]["lines"] == [
        "Rule 1: If state is CA, serve on to 10%, off to 90%",
        "Otherwise serve off",
    ]
    # One environment's configuration on its own route, with its own version.
    config = await admin.http.get(f"{API}/flags/checkout/environments/staging")
    assert config.json()["on"] is True
    whole = await admin.http.put(f"{API}/flags/checkout/environments/staging", json={"on": False})
    assert whole.status_code == 422
    assert "missing: off_variation, off_default, fallthrough, targets, rules, prerequisites" in whole.json()["error"]
    wrong = await admin.http.patch(f"{API}/flags/checkout/environments/staging", json={"name": "x"})
    assert wrong.status_code == 422
    assert "project-wide" in wrong.json()["error"]
    off = await admin.http.patch(
        f"{API}/flags/checkout/environments/staging", json={"on": False},
        headers={"If-Match": f'"{config.json()["version"]}"'},
    )  # fmt: skip
    assert off.status_code == 200, off.text
    listed = (await admin.http.get(f"{API}/flags")).json()
    assert listed["environments"] == sorted(ENVS)
    assert [i["key"] for i in listed["items"]] == ["checkout"]


async def test_a_token_of_some_environments_reads_only_theirs_in_the_project_view(admin: Admin) -> None:
    await three(admin)
    assert (await admin.http.post(f"{API}/flags", json={"key": "checkout"})).status_code == 201
    minted = await admin.http.post(
        "/api/v1/tokens", json={"name": "dev-reader", "role": "reader", "environments": ["development"]}
    )
    dev = auth_headers(minted.json()["token"])
    doc = (await admin.http.get(f"{API}/flags/checkout", headers=dev)).json()
    assert list(doc["environments"]) == ["development"]
    assert (await admin.http.get(f"{API}/flags", headers=dev)).json()["environments"] == ["development"]
    assert (await admin.http.get(f"{API}/flags/checkout/environments/production", headers=dev)).status_code == 403
    params = {"from": "development", "to": "production"}
    compared = await admin.http.get(f"{API}/flags/checkout/compare", params=params, headers=dev)
    assert compared.status_code == 403


async def test_promoting_twenty_flags_is_all_or_none(admin: Admin) -> None:
    await admin.create_env("staging")
    await admin.create_env("production")
    beta = {"key": "beta", "included": ["ann"]}
    assert (await admin.http.post(f"{API}/environments/staging/segments", json=beta)).status_code == 201
    keys = [f"f{i:02}" for i in range(20)]
    for key in keys:
        assert (await admin.http.post(f"{API}/flags", json={"key": key})).status_code == 201
        config = {"on": True, "targets": [{"variation": "on", "values": [f"qa-{key}"]}]}
        if key == "f07":  # its rule uses a segment production does not have
            config["rules"] = [
                {"id": "b", "clauses": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}
            ]
        assert (await admin.http.patch(f"{API}/flags/{key}/environments/staging", json=config)).status_code == 200

    compare = await admin.http.get(f"{API}/flags/f01/compare", params={"from": "staging", "to": "production"})
    assert compare.status_code == 200, compare.text
    assert compare.json()["flags"][0]["lines"] == [
        "on: false -> true",
        'targets[0]: added {"variation":"on","values":["qa-f01"],"context_kind":"user"}',
    ]

    before = await admin.last_seq()
    body = {"from": "staging", "to": "production", "flags": keys, "comment": "release 42"}
    refused = await admin.http.post(f"{API}/promotions", json=body)
    assert refused.status_code == 422
    assert refused.json()["error"].startswith("invalid flag 'f07' in production: ")
    assert "beta" in refused.json()["error"]
    assert await admin.last_seq() == before, "none applied"

    assert (await admin.http.post(f"{API}/environments/production/segments", json=beta)).status_code == 201
    preview = await admin.http.post(f"{API}/promotions", json={**body, "dry_run": True})
    assert preview.status_code == 200, preview.text
    assert preview.json()["applied"] is False
    expected = {f["key"]: f["version"] for f in preview.json()["flags"]}
    assert sorted(expected) == keys
    # Someone changes one of them in production after the preview: nothing is promoted.
    assert (await admin.http.post(f"{API}/environments/production/flags/f13/on")).status_code == 200
    before = await admin.last_seq()
    stale = await admin.http.post(f"{API}/promotions", json={**body, "expected": expected})
    assert stale.status_code == 409
    assert "f13" in stale.json()["error"]
    assert await admin.last_seq() == before, "none applied"

    fresh = (await admin.http.post(f"{API}/promotions", json={**body, "dry_run": True})).json()
    expected = {f["key"]: f["version"] for f in fresh["flags"]}
    done = await admin.http.post(f"{API}/promotions", json={**body, "expected": expected})
    assert done.status_code == 200, done.text
    assert done.json()["applied"] is True
    assert await admin.last_seq() == before + 20
    for key in keys:
        events = await admin.events(f"flagstream.default.production.flag.{key}")
        assert events[-1].comment == "release 42"
        assert events[-1].change == done.json()["change"]
        staging = (await admin.http.get(f"{API}/flags/{key}/environments/staging")).json()
        production = (await admin.http.get(f"{API}/flags/{key}/environments/production")).json()
        assert (production["on"], production["targets"], production["rules"]) == (
            staging["on"],
            staging["targets"],
            staging["rules"],
        )
    again = await admin.http.post(f"{API}/promotions", json=body)
    assert (again.json()["applied"], again.json()["flags"]) == (False, []), "nothing differs any more"
