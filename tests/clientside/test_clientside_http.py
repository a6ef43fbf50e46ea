"""Client-side keys over real HTTP: created and revoked through the API, the client door shows only the flags
available to client-side apps (a flag that is not answers as one that does not exist), CORS per key, bad input."""

from __future__ import annotations

import httpx

from flagstream.services.admin.app import create_app
from flagstream.services.clientkeys import ClientLimits
from tests.clientside.conftest import ENVS, PAGE, make_key
from tests.helpers import ADMIN_TOKEN, auth_headers, serving, until


async def test_a_key_evaluates_only_the_flags_marked_for_client_side_apps(api: httpx.AsyncClient) -> None:
    key = await make_key(api)
    door = f"/client/{key}/ofrep/v1/evaluate/flags"
    bulk = await api.post(
        door, json={"context": {"targetingKey": "u1", "country": "NO"}}, headers={"Authorization": ""}
    )
    assert bulk.status_code == 200, bulk.text
    body = bulk.json()
    assert [f["key"] for f in body["flags"]] == ["banner", "new-checkout"]
    banner = body["flags"][0]
    assert (banner["value"], banner["variant"], banner["reason"]) == ("nordic", "nordic", "TARGETING_MATCH")
    # nothing about rules, versions, sequences or the environment's other flags
    assert "metadata" not in banner
    assert body.get("metadata", {}) == {}
    for secret in ("secret-rule-name", "internal-kill-switch", "retired", "rule_id", "seq"):
        assert secret not in bulk.text
    assert body["eventStreams"][0]["endpoint"]["requestUri"] == f"/client/{key}/ofrep/v1/events"

    one = await api.post(f"{door}/new-checkout", json={"context": {"targetingKey": "u1"}})
    assert (one.status_code, one.json()["value"]) == (200, True)


async def test_a_flag_not_available_answers_exactly_as_a_flag_that_does_not_exist(api: httpx.AsyncClient) -> None:
    door = f"/client/{await make_key(api)}/ofrep/v1/evaluate/flags"
    answers = {}
    for flag in ("internal-kill-switch", "retired", "no-such-flag"):
        answer = await api.post(f"{door}/{flag}", json={"context": {"targetingKey": "u1"}})
        body = answer.json()
        answers[flag] = (answer.status_code, body.pop("key"), body["errorDetails"].replace(repr(flag), "<key>"), body)
    assert {a[0] for a in answers.values()} == {404}
    assert len({a[2] for a in answers.values()}) == 1, answers
    assert answers["internal-kill-switch"][3]["errorCode"] == "FLAG_NOT_FOUND"
    # and with an API token, the same flag is there (the door hides it, not the environment)
    token = await api.post("/ofrep/v1/evaluate/flags/internal-kill-switch", json={"context": {"targetingKey": "u1"}})
    assert (token.status_code, token.json()["value"]) == (200, True)


async def test_marking_a_flag_makes_it_appear_and_unmarking_hides_it(api: httpx.AsyncClient) -> None:
    door = f"/client/{await make_key(api)}/ofrep/v1/evaluate/flags"
    before = await api.post(door, json={})
    marked = await api.patch(f"{ENVS}/production/flags/internal-kill-switch", json={"client_side": True})
    assert marked.status_code == 200, marked.text

    async def door_says(status: int) -> bool:  # the door follows the log: the change reaches it shortly after
        return (await api.post(f"{door}/internal-kill-switch", json={})).status_code == status

    await until(lambda: door_says(200), "the marked flag is served at the door")
    shown = await api.post(door, json={}, headers={"If-None-Match": before.headers["etag"]})
    assert shown.status_code == 200
    assert "internal-kill-switch" in [f["key"] for f in shown.json()["flags"]]
    assert (await api.post(door, json={}, headers={"If-None-Match": shown.headers["etag"]})).status_code == 304

    await api.patch(f"{ENVS}/production/flags/internal-kill-switch", json={"client_side": False})
    await until(lambda: door_says(404), "the unmarked flag is no longer served at the door")
    hidden = await api.post(door, json={}, headers={"If-None-Match": shown.headers["etag"]})
    assert hidden.status_code == 200, "a flag that is no longer available is a change, not a 304"
    assert hidden.headers["etag"] == before.headers["etag"]


async def test_unknown_revoked_and_malformed_keys_are_one_same_401(api: httpx.AsyncClient) -> None:
    key = await make_key(api)
    revoked = await api.delete(f"{ENVS}/production/client-keys/{key}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_by"] == "operator"
    bodies = []
    for candidate in (key, "fsc_" + "A" * 22, "not-a-key", ADMIN_TOKEN):
        answer = await api.post(f"/client/{candidate}/ofrep/v1/evaluate/flags", json={})
        assert answer.status_code == 401, (candidate, answer.text)
        assert "access-control-allow-origin" not in answer.headers
        bodies.append(answer.json())
    assert all(b == bodies[0] for b in bodies), bodies
    # the listing shows it revoked; the revoked key no longer listed by default
    listed = (await api.get(f"{ENVS}/production/client-keys")).json()["items"]
    assert key not in [k["key"] for k in listed]
    listed = (await api.get(f"{ENVS}/production/client-keys", params={"revoked": "true"})).json()["items"]
    assert [k["revoked_at"] is not None for k in listed if k["key"] == key] == [True]


async def test_a_key_of_another_environment_sees_only_its_own(api: httpx.AsyncClient) -> None:
    dev = await make_key(api, "development")
    door = f"/client/{dev}/ofrep/v1/evaluate/flags"
    # The same flags (marking one for client-side apps is project-wide), as development configures them: off.
    flags = (await api.post(door, json={"context": {"targetingKey": "u1", "country": "NO"}})).json()["flags"]
    assert {f["key"]: (f["value"], f["reason"]) for f in flags} == {
        "banner": ("plain", "DISABLED"),
        "new-checkout": (False, "DISABLED"),
    }
    asked = await api.post(door, json={}, headers={"X-Flagstream-Environment": "production"})
    assert asked.status_code == 403
    assert "development" in asked.json()["errorDetails"]
    assert "nordic" not in asked.text


async def test_cors_per_key_exact_origins_preflight_and_etag_exposed(api: httpx.AsyncClient) -> None:
    key = await make_key(api, origins=[PAGE, "http://localhost:3000"])
    door = f"/client/{key}/ofrep/v1/evaluate/flags"
    ask = {"Origin": PAGE, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type,if-none-match"}  # fmt: skip
    pre = await api.options(door, headers=ask)
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == PAGE
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "if-none-match" in pre.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in pre.headers

    answer = await api.post(door, json={}, headers={"Origin": PAGE})
    assert answer.headers["access-control-allow-origin"] == PAGE
    assert "etag" in answer.headers["access-control-expose-headers"].lower()
    assert "origin" in answer.headers["vary"].lower()
    again = await api.post(door, json={}, headers={"Origin": PAGE, "If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304

    for origin in ("https://evil.example.com", "https://shop.example.com.evil.com", "http://shop.example.com",
                   "null", "https://shop.example.com:8443"):  # fmt: skip
        refused = await api.options(door, headers={**ask, "Origin": origin})
        assert refused.status_code == 403, origin
        assert "access-control-allow-origin" not in refused.headers
        post = await api.post(door, json={}, headers={"Origin": origin})
        assert post.status_code == 403
        assert "access-control-allow-origin" not in post.headers
        assert "banner" not in post.text


async def test_origins_are_checked_when_a_key_is_created(api: httpx.AsyncClient) -> None:
    for bad in ("*", "https://*.example.com", "https://shop.example.com/path", "ftp://x.example.com", "shop.com",
                "https://user:pw@shop.example.com"):  # fmt: skip
        answer = await api.post(f"{ENVS}/production/client-keys", json={"name": "x", "origins": [bad]})
        assert answer.status_code == 422, bad
        assert "origins[0]" in answer.json()["error"]
    made = await api.post(
        f"{ENVS}/production/client-keys", json={"name": "x", "origins": ["HTTPS://Shop.Example.com:443"]}
    )
    assert made.json()["origins"] == [PAGE]
    missing = await api.post(f"{ENVS}/staging/client-keys", json={"name": "x"})
    assert missing.status_code == 404


async def test_an_oversized_context_is_413(api: httpx.AsyncClient) -> None:
    door = f"/client/{await make_key(api)}/ofrep/v1/evaluate/flags"
    big = {"context": {"targetingKey": "u1", "blob": "x" * 40_000}}
    answer = await api.post(door, json=big, headers={"Origin": PAGE})
    assert answer.status_code == 413, answer.text
    assert answer.headers["access-control-allow-origin"] == PAGE  # the page can read why
    assert (await api.post(door, json={"context": {"targetingKey": "u1", "blob": "x" * 1000}})).status_code == 200


async def test_a_client_side_key_opens_nothing_else(api: httpx.AsyncClient) -> None:
    key = await make_key(api)
    for method, path in (("GET", f"{ENVS}/production/flags"), ("GET", "/api/v1/whoami"),
                         ("POST", "/ofrep/v1/evaluate/flags")):  # fmt: skip
        answer = await api.request(method, path, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 401, path


async def test_only_admin_tokens_manage_keys(api: httpx.AsyncClient) -> None:
    made = await api.post("/api/v1/tokens", json={"name": "writer", "role": "writer"})
    writer = made.json()["token"]
    answer = await api.post(f"{ENVS}/production/client-keys", json={"name": "x"}, headers=auth_headers(writer))
    assert answer.status_code == 403


async def test_rate_limited_per_client_address_and_per_key(nats_url: str) -> None:
    limits = ClientLimits(per_address=0.01, address_burst=5, per_key=0.01, key_burst=8)
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, client_limits=limits)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=30) as api:
        assert (await api.post(ENVS, json={"key": "production"})).status_code == 201
        key = await make_key(api)
        door = f"/client/{key}/ofrep/v1/evaluate/flags"
        statuses = [(await api.post(door, json={})).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        # another address (the loopback range is all this machine's) still gets in, until the key's own limit
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as other:
            statuses = [(await other.post(door, json={})).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            limited = await other.post(door, json={})
            assert int(limited.headers["retry-after"]) >= 1


async def test_changes_to_flags_a_key_cannot_see_cannot_be_noticed(api: httpx.AsyncClient) -> None:
    key = await make_key(api)
    door = f"/client/{key}/ofrep/v1/evaluate/flags"
    before = await api.post(door, json={})
    events = f"/client/{key}/ofrep/v1/events"
    async with api.stream("GET", events, headers={"Accept": "text/event-stream", "Origin": PAGE}) as stream:
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == PAGE
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        hidden = await api.patch(f"{ENVS}/production/flags/internal-kill-switch", json={"on": False})
        assert hidden.status_code == 200
        same = await api.post(door, json={}, headers={"If-None-Match": before.headers["etag"]})
        assert same.status_code == 304, "a change the key cannot see changes no ETag"
        shown = await api.patch(f"{ENVS}/production/flags/new-checkout", json={"on": False})
        ids = []
        async for line in lines:
            if line.startswith("id: "):
                ids.append(int(line.removeprefix("id: ")))
                break
    # the first event is the visible change's: the hidden one, made before it, sent nothing
    assert ids == [shown.json()["version"]]
    assert ids[0] > hidden.json()["version"]
