"""OFREP on the wire (raw HTTP): bulk evaluation with ETag / If-None-Match, error bodies and statuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openfeature.evaluation_context import EvaluationContext

from flagstream.openfeature import to_flagstream_context as provider_context
from flagstream.services.admin.ofrep import OfrepFailure, to_flagstream_context
from tests.helpers import auth_headers, flag_in, until
from tests.ofrep.wire import API, BULK, CONTEXT


async def test_bulk_evaluates_every_active_flag(http: httpx.AsyncClient) -> None:
    response = await http.post(BULK, json=CONTEXT)
    assert response.status_code == 200, response.text
    body = response.json()
    by_key = {item["key"]: item for item in body["flags"]}
    assert set(by_key) == {"checkout", "banner"}  # the archived flag is not served
    assert by_key["checkout"]["value"] is True
    assert by_key["checkout"]["reason"] == "TARGETING_MATCH"
    assert by_key["checkout"]["variant"] == "on"
    assert by_key["checkout"]["metadata"]["rule_id"] == "no"
    assert by_key["banner"] == {
        "key": "banner",
        "value": "A",
        "reason": "DEFAULT",
        "variant": "a",
        "metadata": by_key["banner"]["metadata"],
    }
    assert body["metadata"]["environment"] == "production"
    assert response.headers["etag"]


async def test_if_none_match_gives_304_until_the_flags_or_the_context_change(http: httpx.AsyncClient) -> None:
    first = await http.post(BULK, json=CONTEXT)
    etag = first.headers["etag"]
    same = await http.post(BULK, json=CONTEXT, headers={"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == etag

    other_user = await http.post(BULK, json={"context": {"targetingKey": "user-2"}}, headers={"If-None-Match": etag})
    assert other_user.status_code == 200
    assert other_user.headers["etag"] != etag

    assert (await http.post(f"{API}/production/flags/checkout/off", json={})).status_code == 200
    answers: list[httpx.Response] = []

    async def changed() -> bool:
        answers.append(await http.post(BULK, json=CONTEXT, headers={"If-None-Match": etag}))
        return answers[-1].status_code != 304

    await until(changed, "the flag change reaches the bulk answer")
    latest = answers[-1]
    assert latest.status_code == 200
    assert latest.headers["etag"] != etag
    checkout = next(i for i in latest.json()["flags"] if i["key"] == "checkout")
    assert (checkout["value"], checkout["reason"]) == (False, "DISABLED")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "PARSE_ERROR"),
        (b"[1, 2]", 400, "PARSE_ERROR"),
        (b'{"context": "user-1"}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 42}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"country": "NO"}}', 400, "TARGETING_KEY_MISSING"),
        (b'{"context": {"targetingKey": "u1", "kind": ""}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": "u1", "kind": "multi", "org": {"name": "x"}}}', 400, "INVALID_CONTEXT"),
    ],
)
async def test_bad_requests_are_400_with_an_ofrep_error(
    http: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    headers = {"Content-Type": "application/json"}
    for path in (BULK, f"{BULK}/checkout"):
        response = await http.post(path, content=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        error = response.json()
        assert error["errorCode"] == code
        assert error["errorDetails"]
        if path != BULK:
            assert error["key"] == "checkout"


async def test_unknown_flag_and_unknown_environment_are_404(http: httpx.AsyncClient) -> None:
    missing = await http.post(f"{BULK}/nope", json=CONTEXT)
    assert missing.status_code == 404
    assert missing.json()["key"] == "nope"
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    archived = await http.post(f"{BULK}/old", json=CONTEXT)
    assert (archived.status_code, archived.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")

    for headers in ({"X-Flagstream-Environment": "staging"}, {"X-Flagstream-Project": "shop"}):
        single = await http.post(f"{BULK}/checkout", json=CONTEXT, headers=headers)
        assert single.status_code == 404
        assert "not found" in single.json()["errorDetails"]
        bulk = await http.post(BULK, json=CONTEXT, headers=headers)
        assert bulk.status_code == 404
    bad = await http.post(BULK, json=CONTEXT, headers={"X-Flagstream-Environment": "no/such"})
    assert bad.status_code == 400
    query = await http.post(f"{BULK}/checkout?environment=staging", json=CONTEXT)
    assert query.status_code == 404


async def test_ofrep_routes_are_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc["paths"]["/ofrep/v1/evaluate/flags/{key}"]["post"]["operationId"] == "evaluateFlag"
    assert doc["paths"]["/ofrep/v1/evaluate/flags"]["post"]["operationId"] == "evaluateFlagsBulk"
    assert doc["paths"]["/ofrep/v1/events"]["get"]["operationId"] == "ofrepEventStream"
    bulk_query = {p["name"] for p in doc["paths"]["/ofrep/v1/evaluate/flags"]["post"]["parameters"]}
    assert "flagConfigEtag" in bulk_query


@pytest.mark.parametrize(
    "context",
    [
        EvaluationContext("u1"),
        EvaluationContext("u1", {"country": "NO", "age": 30, "tags": ["a"]}),
        EvaluationContext("acme", {"kind": "organization", "size": 5}),
        EvaluationContext("u1", {"kind": "multi", "organization": {"key": "acme"}, "plan": "pro"}),
        EvaluationContext(None, {"kind": "multi", "organization": {"key": "acme"}}),
        EvaluationContext("u1", {"address": {"city": "Oslo"}}),
    ],
)
def test_the_context_mapping_is_the_in_process_providers(context: EvaluationContext) -> None:
    raw: dict[str, Any] = dict(context.attributes)
    if context.targeting_key is not None:
        raw["targetingKey"] = context.targeting_key
    assert to_flagstream_context(raw) == provider_context(context)


def test_a_context_without_any_key_is_refused() -> None:
    with pytest.raises(OfrepFailure) as refused:
        to_flagstream_context({"country": "NO"})
    assert refused.value.code == "TARGETING_KEY_MISSING"
    assert to_flagstream_context({}) is None
    assert to_flagstream_context(None) is None


async def test_a_token_limited_to_one_environment_evaluates_that_one_only(http: httpx.AsyncClient) -> None:
    assert (await http.post(API, json={"key": "development"})).status_code == 201
    flag = {"key": "checkout", "on": True, "fallthrough": {"variation": "on"}}
    assert (await flag_in(http, API, "development", flag)).is_success
    created = await http.post(
        "/api/v1/tokens", json={"name": "web-app", "role": "reader", "environments": ["development"]}
    )
    assert created.status_code == 201, created.text
    sdk = auth_headers(created.json()["token"])

    own = await http.post(f"{BULK}/checkout", json={"context": {"targetingKey": "user-2"}}, headers=sdk)
    assert own.status_code == 200, own.text
    assert own.json()["value"] is True  # development's flag: no header needed
    other = await http.post(BULK, json=CONTEXT, headers={**sdk, "X-Flagstream-Environment": "production"})
    assert other.status_code == 403
    assert other.json()["errorCode"] == "GENERAL"
    assert "production" in other.json()["errorDetails"]
    anonymous = await http.post(BULK, json=CONTEXT, headers={"Authorization": ""})
    assert anonymous.status_code == 401
