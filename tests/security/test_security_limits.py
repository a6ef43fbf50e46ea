"""Hostile input against the admin API: too many writes, huge lists, deep nesting, a huge body, evil regexes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from flagstream.services.admin.app import create_app
from flagstream.services.changes.limits import MAX_DEPTH, MAX_ITEMS
from flagstream.services.runtime.stream import ensure_stream
from flagstream.services.tokens.rate import RATE_BUCKET, SharedRateLimiter
from tests.helpers import ADMIN_TOKEN, auth_headers

API = "/api/v1/projects/default"
FLAGS = f"{API}/environments/production/flags"
SEGMENTS = f"{API}/environments/production/segments"


@contextlib.asynccontextmanager
async def admin(nats_url: str, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
            assert (await http.post(f"{API}/environments", json={"key": "production"})).status_code == 201
            yield http


@pytest.fixture
async def http(nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with admin(nats_url) as client:
        yield client


async def token(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await http.post("/api/v1/tokens", json={"name": name, "role": "writer"})
    assert r.status_code == 201, r.text
    return auth_headers(r.json()["token"])


async def test_a_token_that_writes_too_fast_gets_429_with_retry_after(nats_url: str) -> None:
    # A refill so slow that no write is refilled during the test: exactly ``burst`` writes pass.
    async with admin(nats_url, write_rate=0.001, write_burst=3) as http:
        flooder = await token(http, "flooder")
        neighbour = await token(http, "neighbour")
        answers = [(await http.post(FLAGS, json={"key": f"f{i}"}, headers=flooder)).status_code for i in range(5)]
        assert answers == [201, 201, 201, 429, 429]
        limited = await http.post(FLAGS, json={"key": "f9"}, headers=flooder)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "flooder" in limited.json()["error"]
        assert (await http.get(f"{FLAGS}/f9", headers=flooder)).status_code == 404, "the refused write did not land"
        assert (await http.get(FLAGS, headers=flooder)).status_code == 200, "reads are not limited"
        assert (await http.post(FLAGS, json={"key": "n1"}, headers=neighbour)).status_code == 201, "per token"
        assert (await http.post(FLAGS, json={"key": "op"})).status_code == 201, "the operator token is not limited"


async def test_replicas_share_one_write_rate_per_token(nats_url: str) -> None:
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, write_rate=0.001, write_burst=3)
    transport = httpx.ASGITransport(app=app)
    async with (
        admin(nats_url, write_rate=0.001, write_burst=3) as one,
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://admin-2", headers=auth_headers()) as two,
    ):
        # Alternating between the replicas: three writes in all, not three on each.
        alternating = await token(one, "alternating")
        answers = []
        for i in range(6):
            r = await (one, two)[i % 2].post(FLAGS, json={"key": f"a{i}"}, headers=alternating)
            answers.append(r.status_code)
        assert answers == [201, 201, 201, 429, 429, 429]

        # All at once on both: still three (the replicas race on the bucket's revision).
        racing = await token(one, "racing")
        writes = [(one, two)[i % 2].post(FLAGS, json={"key": f"r{i}"}, headers=racing) for i in range(10)]
        statuses = sorted(r.status_code for r in await asyncio.gather(*writes))
        assert statuses == [201] * 3 + [429] * 7

        # The shared bucket gone (deleted by an operator): each replica limits on its own, never not at all.
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().delete_key_value(RATE_BUCKET)
        finally:
            await nc.close()
        alone = await token(two, "alone")
        answers = [(await two.post(FLAGS, json={"key": f"l{i}"}, headers=alone)).status_code for i in range(4)]
        assert answers == [201, 201, 201, 429]


@pytest.mark.parametrize("key", ["ci\n", "person:u_0123456789abcdef", "0123456789ab"])
async def test_any_key_is_limited_through_the_shared_bucket(nats_url: str, key: str) -> None:
    """Two replicas share one write of ``key`` whatever its text: one the bucket cannot hold as a key is hashed.
    Before, a key ending in a newline passed the key pattern (its ``$``), its bucket write failed and each replica
    limited it alone (counted in ``fallbacks``)."""
    nc = await nats.connect(nats_url)
    try:
        await ensure_stream(nc.jetstream())
        replicas = [SharedRateLimiter(rate=0.001, burst=1) for _ in range(2)]
        for replica in replicas:
            await replica.attach(nc)
        assert await replicas[0].take(key) == 0
        assert await replicas[1].take(key) > 0, "the other replica's write was spent"
        assert [r.fallbacks for r in replicas] == [0, 0]
    finally:
        await nc.close()


def flag(**fields: Any) -> dict[str, Any]:
    return {"key": "hostile", **fields}


def clause(values: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"attribute": "country", "op": "in", "values": values or ["NO"], **fields}


ON = {"variation": "on"}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


LONG_LISTS: list[tuple[str, dict[str, Any], str]] = [
    ("rules", flag(rules=[{"id": "r", "clauses": [clause()], "serve": {"variation": "on"}}] * (MAX_ITEMS["rules"] + 1)),
     "$.rules"),
    ("clauses", flag(rules=[{"id": "r", "clauses": [clause()] * (MAX_ITEMS["clauses"] + 1), "serve": ON}]),
     "$.rules[0].clauses"),
    ("values", flag(rules=[{"id": "r", "clauses": [clause([f"v{i}" for i in range(MAX_ITEMS["values"] + 1)])],
                            "serve": {"variation": "on"}}]), "$.rules[0].clauses[0].values"),
    ("variations", flag(kind="number", variations=[{"key": f"v{i}", "value": i} for i in range(101)]),
     "$.variations"),
    ("tags", flag(tags=[f"t{i}" for i in range(MAX_ITEMS["tags"] + 1)]), "$.tags"),
    ("depth", flag(kind="json", variations=[{"key": "deep", "value": nested(MAX_DEPTH + 5)}]),
     "$.variations[0].value"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body", "path"), LONG_LISTS, ids=[c[0] for c in LONG_LISTS])
async def test_too_long_lists_are_422_naming_the_path(
    http: httpx.AsyncClient, what: str, body: dict[str, Any], path: str
) -> None:
    for method, url in (("POST", FLAGS), ("PUT", f"{FLAGS}/hostile"), ("PATCH", f"{FLAGS}/hostile")):
        if method != "POST" and what == "depth":
            continue
        r = await http.request(method, url, json=body)
        assert r.status_code == 422, (method, r.text[:300])
        problems = r.json()["problems"]
        assert problems[0]["path"].startswith(path), problems[0]
        assert path in r.json()["error"]
    assert (await http.get(f"{FLAGS}/hostile")).status_code == 404, "nothing was written"


async def test_a_segment_listing_too_many_keys_is_refused(http: httpx.AsyncClient) -> None:
    body = {"key": "everyone", "rules": [{"id": "r", "clauses": [clause()]}] * (MAX_ITEMS["rules"] + 1)}
    r = await http.post(SEGMENTS, json=body)
    assert r.status_code == 422
    assert r.json()["problems"][0]["path"] == "$.rules"


async def test_a_huge_body_is_413(http: httpx.AsyncClient) -> None:
    r = await http.post(FLAGS, content=b'{"key": "x", "description": "' + b"x" * 2_000_000 + b'"}')
    assert r.status_code == 413


async def test_a_regex_that_could_not_stay_linear_is_refused(http: httpx.AsyncClient) -> None:
    for pattern, why in [
        (r"(?=admin)a", "lookarounds and backreferences are not supported"),
        (r"(a)\1", "lookarounds and backreferences are not supported"),
        ("x" * 501, "longer than 500 characters"),
    ]:
        body = flag(rules=[{"id": "r", "clauses": [clause([pattern], op="matches")], "serve": {"variation": "on"}}])
        r = await http.post(FLAGS, json=body)
        assert r.status_code == 422, (pattern, r.text)
        assert r.json()["problems"][0]["path"] == "$.rules[0].clauses[0].values[0]", r.json()
        assert why in r.json()["problems"][0]["message"], r.json()


async def test_a_classic_catastrophic_regex_is_harmless_and_evaluates_at_once(http: httpx.AsyncClient) -> None:
    rule = {"id": "r", "clauses": [clause(["(a+)+$"], op="matches")], "serve": {"variation": "on"}}
    r = await http.post(FLAGS, json=flag(on=True, rules=[rule], fallthrough={"variation": "off"}))
    assert r.status_code == 201, r.text  # RE2: linear in the value's length, whatever the pattern
    evaluate = f"{API}/environments/production/evaluate"
    for country, variation in (("a" * 100_000 + "!", "off"), ("a" * 100_000, "on")):
        answer = await http.post(evaluate, json={"context": {"key": "u", "country": country}, "flags": ["hostile"]})
        assert answer.status_code == 200, answer.text
        assert [(e["flag"], e["variation"]) for e in answer.json()["results"]] == [("hostile", variation)]


async def test_deeply_nested_json_is_a_clear_400(http: httpx.AsyncClient) -> None:
    r = await http.post(FLAGS, content=b"[" * 300_000 + b"]" * 300_000)
    assert r.status_code == 400, r.text
