"""Evaluate-as-of agrees with what a live SDK client answered at that moment: answers are recorded with the
sequence they were evaluated at while the flags change, then asked again of the API as of that sequence."""

from __future__ import annotations

from typing import Any

import msgspec

from flagstream import AsyncFlagstreamClient
from tests.helpers import WithHistory, eventually

ENV = "/api/v1/projects/default/environments/staging"
USERS = [
    {"key": f"user-{i}", "country": "fr" if i % 3 else "de", "plan": "pro" if i % 2 else "free"} for i in range(30)
]


def weights(on: int) -> dict[str, Any]:
    return {
        "rollout": {"variations": [{"variation": "on", "weight": on}, {"variation": "off", "weight": 100_000 - on}]}
    }


async def test_evaluate_as_of_matches_what_the_sdk_answered_then(api: WithHistory, nats_url: str) -> None:
    http, projector = api.http, api.projector

    async def ok(method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await http.request(method, path, json=body)
        assert response.is_success, response.text
        return response.json()  # type: ignore[no-any-return]

    await ok("POST", "/api/v1/projects/default/environments", {"key": "staging"})
    changes: list[tuple[str, str, Any]] = [
        ("POST", f"{ENV}/segments", {"key": "germans", "rules": [{"id": "de", "clauses": [
            {"attribute": "country", "op": "in", "values": ["de"]}]}]}),
        ("POST", f"{ENV}/flags", {"key": "checkout", "fallthrough": weights(30_000), "rules": [
            {"id": "g", "clauses": [{"op": "in_segment", "values": ["germans"]}], "serve": {"variation": "off"}}]}),
        ("POST", f"{ENV}/flags", {"key": "banner", "kind": "string", "variations": [
            {"key": "a", "value": "red"}, {"key": "b", "value": "blue"}], "off_variation": "a",
            "fallthrough": {"variation": "b"}, "prerequisites": [{"flag": "checkout", "variation": "on"}]}),
        ("POST", f"{ENV}/flags/checkout/on", {}),
        ("POST", f"{ENV}/flags/banner/on", {}),
        ("PATCH", f"{ENV}/flags/checkout", {"fallthrough": weights(70_000)}),
        ("PATCH", f"{ENV}/segments/germans", {"included": ["user-1", "user-2"]}),
        ("PATCH", f"{ENV}/flags/banner", {"targets": [{"variation": "a", "values": ["user-5"]}]}),
        ("POST", f"{ENV}/flags/checkout/off", {}),
    ]  # fmt: skip
    recorded: list[tuple[int, str, str, dict[str, Any]]] = []
    async with AsyncFlagstreamClient(nats_url, environment="staging", telemetry=False) as client:
        await client.wait_until_ready(30)
        for method, path, body in changes:
            version = (await ok(method, path, body))["version"]
            await eventually(lambda v=version: client.variation_detail("checkout", USERS[0]).seq >= v, what="SDK")
            for flag in ("checkout", "banner"):
                for user in USERS:
                    detail = client.variation_detail(flag, user)
                    recorded.append((detail.seq, flag, user["key"], msgspec.to_builtins(detail)))

    await projector.wait_caught_up(30)
    by_user = {u["key"]: u for u in USERS}
    seqs = sorted({seq for seq, *_ in recorded})
    assert len(seqs) == len(changes)
    for seq in seqs:
        answers = (await ok("POST", f"{ENV}/evaluate", {"context": by_user["user-0"], "seq": seq}))["seq"]
        assert answers == seq
    compared = 0
    for seq, flag, user, sdk in recorded:
        result = await ok("POST", f"{ENV}/evaluate", {"context": by_user[user], "flags": [flag], "seq": seq})
        api_detail = result["results"][0]
        # The SDK answered with default None for a flag it did not know yet: the API does the same.
        assert {k: api_detail[k] for k in ("value", "variation", "reason", "seq")} == sdk, (seq, flag, user)
        compared += 1
    assert compared == len(changes) * 2 * len(USERS)
    kinds = {sdk["reason"]["kind"] for *_, sdk in recorded}
    assert {"OFF", "RULE_MATCH", "FALLTHROUGH", "PREREQUISITE_FAILED", "TARGET_MATCH"} <= kinds
