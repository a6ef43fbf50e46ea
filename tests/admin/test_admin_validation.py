"""Bad input gets a clear 4xx naming what is wrong, and nothing is written."""

from __future__ import annotations

import pytest

from tests.admin.conftest import API, Admin

FLAGS = f"{API}/environments/development/flags"


@pytest.fixture
async def ready(admin: Admin) -> Admin:
    await admin.create_env()
    created = await admin.http.post(FLAGS, json={"key": "checkout"})
    assert created.status_code == 201
    return admin


async def _refused(admin: Admin, method: str, path: str, status: int, **kwargs: object) -> dict:
    before = await admin.last_seq()
    response = await admin.http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert await admin.last_seq() == before, "nothing is written on an error"
    return response.json()


async def test_malformed_json_is_400(ready: Admin) -> None:
    body = await _refused(
        ready, "POST", FLAGS, 400, content=b'{"key": "x",', headers={"content-type": "application/json"}
    )
    assert "malformed JSON" in body["error"]


async def test_unknown_field_is_named(ready: Admin) -> None:
    body = await _refused(ready, "POST", FLAGS, 422, json={"key": "new", "colour": "red"})
    assert "$.colour" in body["error"]
    nested = await _refused(
        ready,
        "PATCH",
        f"{FLAGS}/checkout",
        422,
        json={"rules": [{"id": "r1", "serve": {"variation": "on", "weight": 3}}]},
    )
    assert nested["problems"] == [{"path": "$.rules[0].serve.weight", "message": "unknown field"}]


async def test_wrong_type_names_the_path(ready: Admin) -> None:
    body = await _refused(ready, "POST", FLAGS, 422, json={"key": "new", "rules": [{"id": "r1", "serve": 3}]})
    assert body["error"] == "Expected `object`, got `int` - at `$.rules[0].serve`"
    assert body["problems"][0]["path"] == "$.rules[0].serve"
    wrong = await _refused(ready, "PATCH", f"{FLAGS}/checkout", 422, json={"on": "yes"})
    assert "$.on" in wrong["error"]


async def test_bad_keys_explain_the_rule(ready: Admin) -> None:
    in_body = await _refused(ready, "POST", FLAGS, 422, json={"key": "new checkout!"})
    assert "letters, digits, '-' or '_'" in in_body["error"]
    assert "$.key" in in_body["error"]
    in_url = await _refused(ready, "PUT", f"{FLAGS}/bad%20key", 400, json={})
    assert "letters, digits, '-' or '_'" in in_url["error"]
    assert "'bad key'" in in_url["error"]
    env = await _refused(ready, "GET", f"{API}/environments/a.b/flags", 400)
    assert "environment" in env["error"]


NEWLINE = "ending in a newline"
TWO_WAYS = [{"key": "on", "value": True}, {"key": "off", "value": False}]


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        # A key in the body: Python's ``$`` matches before a final newline, so these passed the key pattern.
        ("POST", FLAGS, {"key": "new\n"}, "$.key"),
        ("POST", f"{API}/environments", {"key": "qa\n"}, "$.key"),
        ("POST", f"{API}/environments", {"key": "qa", "copy_from": "development\n"}, "$.copy_from"),
        ("POST", f"{API}/environments/development/segments", {"key": "beta\n"}, "$.key"),
        ("POST", FLAGS, {"key": "new", "variations": [{"key": "on\n", "value": True}, TWO_WAYS[1]],
                         "fallthrough": {"variation": "on\n"}}, "$.variations[0].key"),
        ("PATCH", f"{FLAGS}/checkout", {"rules": [{"id": "r1\n", "clauses": [], "serve": {"variation": "on"}}]},
         "$.rules[0].id"),
        ("PATCH", f"{FLAGS}/checkout", {"fallthrough": {"variation": "on\n"}}, "$.fallthrough.variation"),
    ],
)  # fmt: skip
async def test_a_key_ending_in_a_newline_is_refused_naming_where(
    ready: Admin, method: str, path: str, body: dict, where: str
) -> None:
    headers = {"content-type": "application/merge-patch+json"} if method == "PATCH" else {}
    refused = await _refused(ready, method, path, 422, json=body, headers=headers)
    assert NEWLINE in refused["error"], refused
    assert f"`{where}`" in refused["error"]
    assert refused["problems"][0]["path"] == where


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{FLAGS}/checkout%0A"),
        ("POST", f"{FLAGS}/checkout%0A/off"),
        ("PATCH", f"{FLAGS}/checkout%0A"),
        ("GET", f"{API}/environments/development%0A/flags"),
        ("GET", "/api/v1/projects/default%0A/environments/development/flags/checkout"),
    ],
)
async def test_a_key_ending_in_a_newline_in_the_url_is_a_400_not_a_500(ready: Admin, method: str, path: str) -> None:
    refused = await _refused(ready, method, path, 400, json={} if method != "GET" else None)
    assert "\\n'" in refused["error"], refused  # the key as it came, newline shown
    assert "letters, digits, '-' or '_'" in refused["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{FLAGS}/checkout/on%0A"),
        ("GET", f"{FLAGS}%0A"),
        ("GET", f"{API}/environments%0A"),
        ("GET", "/api/v1/tokens%0A"),
        ("GET", "/api/v1/whoami%0A"),
    ],
)
async def test_a_path_ending_in_a_newline_is_no_route(ready: Admin, method: str, path: str) -> None:
    """Starlette's route patterns end in ``$``, which also matched before a final newline: the path without it was
    served (``.../checkout/on%0A`` switched the flag on), a path a proxy's rule on the exact path does not cover."""
    await _refused(ready, method, path, 404)
    assert (await ready.http.get(f"{FLAGS}/checkout")).json()["flag"]["on"] is False


ENV_API = f"{API}/environments/development"


@pytest.mark.parametrize(
    ("collection", "body", "what"),
    [
        ("/api/v1/tokens", {"name": "ci\n", "role": "reader"}, "a token name"),
        (f"{ENV_API}/client-keys", {"name": "web\n"}, "a key name"),
        (f"{ENV_API}/sdk-credentials", {"name": "app\n"}, "a credential name"),
    ],
)
async def test_a_name_ending_in_a_newline_is_refused(ready: Admin, collection: str, body: dict, what: str) -> None:
    """Names of API tokens, client-side keys and SDK credentials: the name pattern's ``$`` matched before a final
    newline, so "ci" and a newline was a token name (and the ``actor`` of every event the token wrote)."""
    before = (await ready.http.get(collection)).json()["items"]
    refused = await ready.http.post(collection, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"].startswith(what), refused.json()
    assert repr(body["name"]) in refused.json()["error"], "the name as it came, newline shown"
    assert (await ready.http.get(collection)).json()["items"] == before, "nothing was created"
    made = await ready.http.post(collection, json={**body, "name": body["name"].strip()})
    assert made.status_code == 201, made.text


async def test_reference_to_a_missing_variation_is_422_with_problems(ready: Admin) -> None:
    body = await _refused(ready, "PATCH", f"{FLAGS}/checkout", 422, json={"fallthrough": {"variation": "maybe"}})
    assert {"path": "$.fallthrough.variation", "message": "unknown variation 'maybe'"} in body["problems"]
    created = await _refused(ready, "POST", FLAGS, 422, json={"key": "new", "off_variation": "nope"})
    assert created["problems"][0]["path"] == "$.off_variation"


async def test_body_key_must_match_the_url(ready: Admin) -> None:
    for method in ("PUT", "PATCH"):
        body = await _refused(ready, method, f"{FLAGS}/checkout", 422, json={"key": "other"})
        assert "'other'" in body["error"]
        assert "'checkout'" in body["error"]


async def test_a_body_that_is_not_an_object(ready: Admin) -> None:
    body = await _refused(ready, "POST", FLAGS, 422, json=["checkout"])
    assert "object" in body["error"]
    empty = await _refused(ready, "POST", FLAGS, 400, content=b"")
    assert "JSON body" in empty["error"]


async def test_a_body_over_the_limit_is_413(ready: Admin) -> None:
    huge = {"key": "big", "description": "x" * (1024 * 1024 + 1)}
    body = await _refused(ready, "POST", FLAGS, 413, json=huge)
    assert "larger than" in body["error"]


async def test_archived_cannot_be_set_by_an_update(ready: Admin) -> None:
    body = await _refused(ready, "PATCH", f"{FLAGS}/checkout", 422, json={"archived": True})
    assert body["problems"][0]["path"] == "$.archived"


async def test_bad_list_filter(ready: Admin) -> None:
    response = await ready.http.get(FLAGS, params={"archived": "maybe"})
    assert response.status_code == 400
    assert "archived" in response.json()["error"]
