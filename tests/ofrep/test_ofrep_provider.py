"""OFREP through the published OpenFeature OFREP provider, against the real admin service over a real nats-server.

The provider is synchronous (``requests``): its calls run in a thread while the admin serves on the test's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason

from tests.helpers import auth_headers, flag_in, until

API = "/api/v1/projects/default"

FLAGS: list[dict[str, Any]] = [
    {
        "key": "new-checkout",
        "on": True,
        "fallthrough": {"variation": "off"},
        "rules": [
            {
                "id": "nordics",
                "clauses": [{"attribute": "country", "op": "in", "values": ["NO", "SE"]}],
                "serve": {"variation": "on"},
            }
        ],
    },
    {
        "key": "banner",
        "kind": "string",
        "on": True,
        "variations": [{"key": "plain", "value": "plain"}, {"key": "gold", "value": "gold"}],
        "off_variation": "plain",
        "fallthrough": {"variation": "plain"},
        "targets": [{"variation": "gold", "values": ["vip-1"]}],
    },
    {
        "key": "limit",
        "kind": "number",
        "on": True,
        "variations": [{"key": "small", "value": 10}, {"key": "big", "value": 100}],
        "off_variation": "small",
        "fallthrough": {"variation": "big"},
    },
    {
        "key": "ratio",
        "kind": "number",
        "on": True,
        "variations": [{"key": "half", "value": 0.5}],
        "off_variation": "half",
        "fallthrough": {"variation": "half"},
    },
    {
        "key": "theme",
        "kind": "json",
        "on": True,
        "variations": [{"key": "dark", "value": {"bg": "black", "fg": ["white"]}}],
        "off_variation": "dark",
        "fallthrough": {"variation": "dark"},
    },
    {
        "key": "split",
        "on": True,
        "fallthrough": {
            "rollout": {"variations": [{"variation": "on", "weight": 100000}, {"variation": "off", "weight": 0}]}
        },
    },
    {"key": "dark-launch", "on": False},
    {
        "key": "needs-dark-launch",
        "on": True,
        "fallthrough": {"variation": "on"},
        "prerequisites": [{"flag": "dark-launch", "variation": "on"}],
    },
    {
        "key": "org-beta",
        "on": True,
        "fallthrough": {"variation": "off"},
        "targets": [{"variation": "on", "values": ["acme"], "context_kind": "organization"}],
    },
]


async def seed(admin_url: str, environment: str = "production", flags: list[dict[str, Any]] = FLAGS) -> None:
    async with httpx.AsyncClient(base_url=f"{admin_url}{API}", headers=auth_headers(), timeout=30) as http:
        created = await http.post("/environments", json={"key": environment})
        assert created.status_code == 201, created.text
        for flag in flags:
            response = await flag_in(http, "/environments", environment, flag)
            assert response.is_success, response.text


@pytest.fixture(autouse=True)
def _openfeature() -> Iterator[None]:
    yield
    api.shutdown()


def ofrep_client(admin_url: str, domain: str = "ofrep", **headers: str) -> OpenFeatureClient:
    provider = OFREPProvider(base_url=admin_url, headers_factory=lambda: {**auth_headers(), **headers})
    api.set_provider(provider, domain)
    return api.get_client(domain)


@pytest.fixture
async def of(admin_url: str) -> OpenFeatureClient:
    await seed(admin_url)
    return ofrep_client(admin_url)


async def call(method: Callable[..., FlagEvaluationDetails[Any]], *args: Any) -> FlagEvaluationDetails[Any]:
    return await asyncio.to_thread(method, *args)


USER = EvaluationContext("user-1", {"country": "NO"})


async def test_boolean_rule_match_and_default(of: OpenFeatureClient) -> None:
    matched = await call(of.get_boolean_details, "new-checkout", False, USER)
    assert (matched.value, matched.reason, matched.variant) == (True, Reason.TARGETING_MATCH, "on")
    assert matched.error_code is None
    assert matched.flag_metadata["rule_id"] == "nordics"
    assert matched.flag_metadata["rule_index"] == 0
    assert matched.flag_metadata["seq"] >= matched.flag_metadata["version"] > 0

    other = await call(of.get_boolean_details, "new-checkout", True, EvaluationContext("user-2", {"country": "FR"}))
    assert (other.value, other.reason, other.variant) == (False, Reason.DEFAULT, "off")


async def test_every_value_type(of: OpenFeatureClient) -> None:
    vip = EvaluationContext("vip-1")
    banner = await call(of.get_string_details, "banner", "none", vip)
    assert (banner.value, banner.reason, banner.variant) == ("gold", Reason.TARGETING_MATCH, "gold")
    assert (await call(of.get_string_details, "banner", "none", USER)).value == "plain"
    assert (await call(of.get_integer_details, "limit", 1, USER)).value == 100
    assert (await call(of.get_float_details, "ratio", 1.0, USER)).value == 0.5
    theme = await call(of.get_object_details, "theme", {}, USER)
    assert theme.value == {"bg": "black", "fg": ["white"]}


async def test_disabled_split_and_no_context(of: OpenFeatureClient) -> None:
    off = await call(of.get_boolean_details, "dark-launch", True, USER)
    assert (off.value, off.reason, off.variant) == (False, Reason.DISABLED, "off")
    split = await call(of.get_boolean_details, "split", False, USER)
    assert (split.value, split.reason, split.variant) == (True, Reason.SPLIT, "on")
    # No context at all: flags still serve; nothing can match a rule.
    anonymous = await call(of.get_boolean_details, "new-checkout", True)
    assert (anonymous.value, anonymous.reason) == (False, Reason.DEFAULT)


async def test_a_failed_prerequisite_serves_the_off_value(of: OpenFeatureClient) -> None:
    detail = await call(of.get_boolean_details, "needs-dark-launch", True, USER)
    assert (detail.value, detail.reason, detail.variant) == (False, Reason.UNKNOWN, "off")
    assert detail.flag_metadata["reason_kind"] == "PREREQUISITE_FAILED"
    assert detail.flag_metadata["prerequisite"] == "dark-launch"


async def test_errors_give_the_code_default(of: OpenFeatureClient) -> None:
    missing = await call(of.get_boolean_details, "no-such-flag", True, USER)
    assert (missing.value, missing.error_code, missing.reason) == (True, ErrorCode.FLAG_NOT_FOUND, Reason.ERROR)
    wrong = await call(of.get_string_details, "new-checkout", "default", USER)
    assert (wrong.value, wrong.error_code) == ("default", ErrorCode.TYPE_MISMATCH)
    no_key = await call(of.get_boolean_details, "new-checkout", True, EvaluationContext(None, {"country": "NO"}))
    assert (no_key.value, no_key.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)


async def test_other_kinds_and_multi_kind_contexts(of: OpenFeatureClient) -> None:
    org = EvaluationContext("acme", {"kind": "organization"})
    assert (await call(of.get_boolean_details, "org-beta", False, org)).reason == Reason.TARGETING_MATCH
    multi = EvaluationContext("user-9", {"kind": "multi", "organization": {"key": "acme"}, "country": "NO"})
    assert (await call(of.get_boolean_value, "org-beta", False, multi)) is True
    assert (await call(of.get_boolean_value, "new-checkout", False, multi)) is True  # user member: country NO
    bad = EvaluationContext("user-9", {"kind": "multi", "organization": {"name": "no key"}})
    assert (await call(of.get_boolean_details, "org-beta", False, bad)).error_code == ErrorCode.INVALID_CONTEXT


async def test_a_change_over_the_admin_api_reaches_the_next_answer(admin_url: str, of: OpenFeatureClient) -> None:
    assert await call(of.get_boolean_value, "new-checkout", False, USER) is True
    async with httpx.AsyncClient(base_url=f"{admin_url}{API}", headers=auth_headers()) as http:
        response = await http.post("/environments/production/flags/new-checkout/off", json={"comment": "stop"})
        assert response.status_code == 200, response.text
        version = response.json()["version"]

    answers: list[FlagEvaluationDetails[Any]] = []

    async def evaluate() -> None:
        answers.append(await call(of.get_boolean_details, "new-checkout", True, USER))

    async def off() -> bool:
        await evaluate()
        return answers[-1].reason == Reason.DISABLED

    await until(off, what="the flag is off in OFREP answers")
    assert answers[-1].value is False
    assert answers[-1].flag_metadata["version"] == version


async def test_the_environment_comes_from_a_header(admin_url: str, of: OpenFeatureClient) -> None:
    await seed(admin_url, "development", [{"key": "new-checkout", "on": True, "fallthrough": {"variation": "on"}}])
    dev = ofrep_client(admin_url, "dev", **{"X-Flagstream-Environment": "development"})
    anywhere = EvaluationContext("user-2", {"country": "FR"})
    assert await call(dev.get_boolean_value, "new-checkout", False, anywhere) is True
    assert await call(of.get_boolean_value, "new-checkout", True, anywhere) is False
    assert (await call(dev.get_boolean_details, "nowhere", False, anywhere)).error_code == ErrorCode.FLAG_NOT_FOUND
    unknown = ofrep_client(admin_url, "qa", **{"X-Flagstream-Environment": "qa"})
    assert (await call(unknown.get_boolean_details, "new-checkout", False, USER)).error_code == ErrorCode.FLAG_NOT_FOUND
