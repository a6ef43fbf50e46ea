"""The evaluator pool behind OFREP: one live ruleset per environment, bounded, loaded on first use."""

from __future__ import annotations

import httpx
import pytest

from flagstream.services.ofrep.evaluator import EvaluatorPool, NotLoaded
from tests.helpers import auth_headers, eventually, flag_in

ENVS = "/api/v1/projects/default/environments"


async def test_environments_load_on_first_use_and_the_least_recent_is_closed(admin_url: str, nats_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as http:
        for env, on in (("development", True), ("production", False)):
            assert (await http.post(ENVS, json={"key": env})).status_code == 201
            response = await flag_in(http, ENVS, env, {"key": "checkout", "on": on})
            assert response.is_success, response.text
        pool = EvaluatorPool(nats_url, capacity=1)
        try:
            dev = await pool.client("default", "development")
            assert dev.bool_variation("checkout", {"key": "u"}, False) is True
            prod = await pool.client("default", "production")
            assert prod.bool_variation("checkout", {"key": "u"}, True) is False
            assert len(pool) == 1
            assert not pool.holds("default", "development")
            await eventually(lambda: dev.status.value == "CLOSED", what="the evicted client is closed")
            again = await pool.client("default", "development")
            assert again is not dev
            assert again.bool_variation("checkout", {"key": "u"}, False) is True

            # Live: a change is in the pooled ruleset without asking again.
            assert (await http.post(f"{ENVS}/development/flags/checkout/off", json={})).status_code == 200
            await eventually(lambda: again.bool_variation("checkout", {"key": "u"}, True) is False, what="change")
        finally:
            await pool.close()
    with pytest.raises(NotLoaded):
        await pool.client("default", "development")


async def test_a_followed_environment_is_not_closed_until_its_followers_leave(admin_url: str, nats_url: str) -> None:
    """An OFREP event stream pins its environment: closing it would leave the stream silent."""
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as http:
        for env in ("development", "production"):
            assert (await http.post(ENVS, json={"key": env})).status_code == 201
            assert (await flag_in(http, ENVS, env, {"key": "checkout", "on": True})).is_success
        pool = EvaluatorPool(nats_url, capacity=1)
        try:
            dev = await pool.client("default", "development")
            release = pool.pin("default", "development")
            prod = await pool.client("default", "production")
            assert pool.held("default", "development") is dev
            assert pool.held("default", "production") is prod
            assert prod.bool_variation("checkout", {"key": "u"}, False) is True  # the new one is not evicted either
            assert (await http.post(f"{ENVS}/development/flags/checkout/off", json={})).status_code == 200
            await eventually(lambda: dev.bool_variation("checkout", {"key": "u"}, True) is False, what="still live")
            release()
            release()  # a second call changes nothing
            assert pool.held("default", "development") is None
            assert len(pool) == 1
            await eventually(lambda: dev.status.value == "CLOSED", what="closed once nobody follows it")
        finally:
            await pool.close()


async def test_an_unreachable_nats_is_not_loaded_in_time() -> None:
    pool = EvaluatorPool("nats://127.0.0.1:1", load_timeout=0.2)
    try:
        with pytest.raises(NotLoaded, match="not loaded"):
            await pool.client("default", "production")
    finally:
        await pool.close()
