"""End to end: ``flagstream import unleash FILE`` against a real admin API, then an SDK client answers as Unleash
would (expected answers from Unleash's documented normalisation, computed here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import mmh3
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.services.cli import main
from tests.helpers import ADMIN_TOKEN, auth_headers, eventually

DATA = Path(__file__).parent / "data"


def unleash_in_rollout(group: str, user: str, rollout: int) -> bool:
    return mmh3.hash(f"{group}:{user}", 0, signed=False) % 100 + 1 <= rollout


async def test_import_unleash_then_an_sdk_client_answers_as_unleash(
    nats_url: str, admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth_headers()) as http:
        created = await http.post("/api/v1/projects/default/environments", json={"key": "production"})
        assert created.status_code == 201, created.text

    argv = ["import", "unleash", str(DATA / "unleash-features.json"), "--env", "production", "--api", admin_url,
            "--token", ADMIN_TOKEN, "--user-id-attribute", "key"]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "created segment Beta-testers in production" in out
    assert "created flag checkout-v2 in production" in out
    assert "2 flag(s) not imported (host-only, coin-flip)" in out
    assert "UNMAPPED     flag host-only" in out
    assert "created flag office in production" in out  # remoteAddress with CIDR ranges: in_cidr

    client = AsyncFlagstreamClient(nats_url, environment="production")
    await client.start()
    try:
        assert await client.wait_until_ready(30)
        await eventually(lambda: client.variation("beta-child", {"key": "x"}, None) is not None, within=10,
                         what="the imported flags reach the client")  # fmt: skip
        users = [f"user-{i}" for i in range(400)]
        for user in users:
            nordic = {"key": user, "country": "NO"}
            expected = unleash_in_rollout("checkout", user, 30)
            assert client.variation("checkout-v2", nordic, None) is expected, user
            assert client.variation("checkout-v2", {"key": user, "country": "US"}, None) is False
        assert client.variation("checkout-v2", {"key": "u-7"}, None) is True  # userWithId
        beta = {"key": "user-1", "tier": "beta", "plan": "pro"}
        assert client.variation("beta-banner", beta, None) is True  # through the imported segment
        assert client.variation("beta-banner", beta | {"tier": "ga"}, None) is False
        assert client.variation("beta-child", beta, None) is True  # dependency -> prerequisite
        assert client.variation("beta-child", beta | {"plan": "free"}, None) is False
        assert client.variation("old-feature", beta, None) is False
        assert client.variation("coin-flip", beta, "not imported") == "not imported"
    finally:
        await client.close()

    # Importing again updates in place (nothing to create twice).
    assert await asyncio.to_thread(main, argv) == 0
    assert "updated flag checkout-v2 in production" in capsys.readouterr().out


def test_a_dry_run_writes_nothing_and_needs_no_api(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["import", "flagd", str(DATA / "flagd-flags.json"), "--env", "production", "--dry-run",
            "--api", "http://127.0.0.1:9"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "would write flag header-color to production" in out
    assert "1 flag(s) not imported (truthy)" in out
    assert main([*argv, "--fractional", "legacy"]) == 0  # [1, 1, 1] has no exact legacy mapping
    assert "2 flag(s) not imported (truthy, thirds)" in capsys.readouterr().out


def test_a_missing_file_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["import", "unleash", str(tmp_path / "nope.json"), "--env", "production", "--dry-run"]) == 1
    assert "nope.json: cannot read it: No such file or directory" in capsys.readouterr().err


async def test_import_launchdarkly_then_an_sdk_client_answers_as_launchdarkly(
    nats_url: str, admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Segments naming segments, an experiment with a seed, a kind clause, a semver path attribute and an off
    prerequisite go through the admin API and reach an SDK client, which answers as LaunchDarkly's evaluator."""
    import json

    from tests.importers.differential import _ld_evaluator

    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth_headers()) as http:
        created = await http.post("/api/v1/projects/default/environments", json={"key": "production"})
        assert created.status_code == 201, created.text
    path = DATA / "launchdarkly-flags.json"
    argv = ["import", "launchdarkly", str(path), "--env", "production", "--api", admin_url, "--token", ADMIN_TOKEN]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "2 flag(s) and 2 segment(s) mapped; 0 flag(s) not imported" in out
    assert out.index("created segment staff") < out.index("created segment beta")  # named before naming
    assert out.index("created flag platform") < out.index("created flag new-checkout")

    doc = json.loads(path.read_text())
    peer = _ld_evaluator(doc["flags"], doc["segments"])
    client = AsyncFlagstreamClient(nats_url, environment="production")
    await client.start()
    try:
        assert await client.wait_until_ready(30)
        await eventually(lambda: client.variation("new-checkout", {"key": "x"}, None) is not None, within=10,
                         what="the imported flags reach the client")  # fmt: skip
        keys = ("ada", "bob", "eve", "cy", *map(str, range(60)))
        mails = (("a@corp.example", "2.1.0"), ("b@else.org", "1.9"))
        people = [{"key": k, "email": e, "app": {"version": v}} for k in keys for e, v in mails]
        contexts = [{"kind": "user", **p} for p in people] + [{"kind": "org", "key": "acme"}]
        for c in contexts:
            attrs = {k: v for k, v in c.items() if k not in ("kind", "key")}
            theirs = peer("new-checkout", {"key": c["key"], "attrs": attrs, "kind": c["kind"]})
            assert client.variation("new-checkout", c, None) == theirs, c
    finally:
        await client.close()


async def test_import_flagsmith_then_an_sdk_client_answers_as_flagsmith(
    nats_url: str, admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Segments with helper segments, a multivariate feature and an identity override go through the admin API and
    reach an SDK client, which answers as Flagsmith's SDK on the same environment document."""
    import json

    from tests.importers.peer_documents import flagsmith_peer

    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth_headers()) as http:
        created = await http.post("/api/v1/projects/default/environments", json={"key": "production"})
        assert created.status_code == 201, created.text
    path = DATA / "flagsmith-environment.json"
    argv = ["import", "flagsmith", str(path), "--env", "production", "--api", admin_url, "--token", ADMIN_TOKEN]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "4 flag(s) and 4 segment(s) mapped; 0 flag(s) not imported" in out
    assert out.index("created segment beta-testers--1") < out.index("created segment beta-testers in")

    peer = flagsmith_peer(json.loads(path.read_text()))
    client = AsyncFlagstreamClient(nats_url, environment="production")
    await client.start()
    try:
        assert await client.wait_until_ready(30)
        await eventually(lambda: client.variation("search_limit", {"key": "x"}, None) is not None, within=10,
                         what="the imported flags reach the client")  # fmt: skip
        for i in range(200):
            identifier = "ada" if i == 0 else f"user-{i}"
            traits = {"plan": ["beta", "free"][i % 2], "app_version": ["2.0.1", "1.0.0"][i % 3 % 2], "country": "NO"}
            context = {"key": identifier, **traits}
            assert client.variation("checkout", context, None) == peer("checkout", identifier, traits)[0], i
            for name in ("banner_colour", "search_limit"):
                value = client.variation(name, context, None)
                assert (value["enabled"], value["value"]) == peer(name, identifier, traits), (name, i)
    finally:
        await client.close()


async def test_import_growthbook_then_an_sdk_client_answers_as_growthbook(
    nats_url: str, admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A namespace and a filter (helper segments hashing with GrowthBook's scheme), a force rule's coverage with a
    fallback attribute and an experiment go through the admin API; an SDK client answers as GrowthBook's SDK."""
    import json

    from tests.importers.peer_documents import growthbook_peer

    async with httpx.AsyncClient(base_url=admin_url, timeout=10, headers=auth_headers()) as http:
        created = await http.post("/api/v1/projects/default/environments", json={"key": "production"})
        assert created.status_code == 201, created.text
    path = DATA / "growthbook-features.json"
    argv = ["import", "growthbook", str(path), "--env", "production", "--api", admin_url, "--token", ADMIN_TOKEN]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "1 flag(s) not imported (new-search)" in out
    assert "created segment checkout-layout--1 in production" in out

    peer = growthbook_peer(json.loads(path.read_text()))
    client = AsyncFlagstreamClient(nats_url, environment="production")
    await client.start()
    try:
        assert await client.wait_until_ready(30)
        await eventually(lambda: client.variation("max-uploads", {"key": "x"}, None) is not None, within=10,
                         what="the imported flags reach the client")  # fmt: skip
        for i in range(300):
            attributes = {"id": f"user-{i}", "deviceId": f"d-{i}", "country": ["NO", "US"][i % 2], "beta": i % 4 == 0,
                          "plan": ["pro", "free"][i % 3 % 2], "appVersion": "2.1.0",
                          "company": {"size": i}}  # fmt: skip
            if i % 5 == 0:
                del attributes["id"]  # the force rule's fallback attribute buckets them
            for key in ("dark-mode", "checkout-layout", "max-uploads"):
                assert client.variation(key, {"key": f"k{i}", **attributes}, None) == peer(key, attributes), (key, i)
    finally:
        await client.close()
