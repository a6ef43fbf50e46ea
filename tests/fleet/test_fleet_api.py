"""Fleet telemetry end to end: real SDK clients report to the real admin service over a real nats-server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.events.telemetry import EvaluationCounts, FlagCount, counts_subject, encode_telemetry
from flagstream.services.admin.app import create_app
from tests.helpers import ADMIN_TOKEN, auth_headers, until

ENVS = "/api/v1/projects/default/environments"
FLEET = f"{ENVS}/production/fleet"
USER = {"key": "user-1"}


@pytest.fixture
async def http(admin_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as client:
        assert (await client.post(ENVS, json={"key": "production"})).status_code == 201
        for key in ("checkout", "banner", "forgotten"):
            response = await client.post(f"{ENVS}/production/flags", json={"key": key, "on": True})
            assert response.status_code == 201, response.text
        yield client


@contextlib.asynccontextmanager
async def sdk(nats_url: str, n: int = 1) -> AsyncIterator[list[AsyncFlagstreamClient]]:
    clients = [AsyncFlagstreamClient(nats_url, environment="production", telemetry_interval=0.05) for _ in range(n)]
    try:
        for client in clients:
            assert await client.start(wait=30)
        yield clients
    finally:
        for client in clients:
            await client.close()


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_connected_instances_and_the_convergence_of_a_change(http: httpx.AsyncClient, nats_url: str) -> None:
    async with sdk(nats_url, 2) as clients:
        seq = clients[0].seq
        body: dict[str, Any] = {}

        async def both_connected() -> bool:
            body.update(await get(http, FLEET))
            return len(body["instances"]) == 2 and all(i["seq"] == seq for i in body["instances"])

        await until(both_connected, "both SDK instances are listed")
        assert {i["instance_id"] for i in body["instances"]} == {c._telemetry.instance_id for c in clients}  # type: ignore[union-attr]
        assert all(i["sdk_version"] and i["status"] == "READY" for i in body["instances"])
        assert body["changes"][0]["change"]["key"] == "forgotten"  # newest first

        off = await http.post(f"{ENVS}/production/flags/checkout/off", json={})
        version = off.json()["version"]

        async def converged() -> bool:
            body.update(await get(http, FLEET, changes=1))
            [latest] = body["changes"]
            return latest["change"]["seq"] == version and latest["applied"] == 2 and latest["measured"] == 2

        await until(converged, "both instances applied the change")
        [latest] = body["changes"]
        assert latest["change"]["type"] == "flag.toggled"
        assert latest["pending"] == 0
        assert latest["p50_ms"] is not None
        assert latest["p99_ms"] >= latest["p50_ms"]
        assert latest["change"]["actor"]

        await clients[1].close()
        gone = clients[1]._telemetry.instance_id  # type: ignore[union-attr]

        async def one_left() -> bool:
            body.update(await get(http, FLEET))
            return [i["instance_id"] for i in body["instances"]] != [] and gone not in {
                i["instance_id"] for i in body["instances"]
            }

        await until(one_left, "the closed instance is no longer listed")


async def test_evaluation_counts_per_flag_and_variation(http: httpx.AsyncClient, nats_url: str) -> None:
    async with sdk(nats_url) as [client]:
        for _ in range(5):
            client.bool_variation("checkout", USER, False)
        client.bool_variation("banner", USER, False)
        client.bool_variation("no-such-flag", USER, False)
        flags: dict[str, Any] = {}

        async def counted() -> bool:
            report = await get(http, f"{FLEET}/evaluations", window=60)
            flags.clear()
            flags.update({f["flag"]: f for f in report["flags"]})
            return sum(f["total"] for f in flags.values()) == 7

        await until(counted, "the evaluation counts arrive")
    assert flags["checkout"]["total"] == 5
    assert flags["checkout"]["recent"] == 5
    assert flags["checkout"]["variations"] == [{"variation": "on", "total": 5, "recent": 5}]
    assert flags["no-such-flag"]["variations"] == [{"variation": None, "total": 1, "recent": 1}]
    assert flags["checkout"]["last_evaluated"]


async def test_attribute_names_the_fleet_has_seen(http: httpx.AsyncClient, nats_url: str) -> None:
    async with sdk(nats_url) as [client]:
        client.bool_variation("checkout", {"key": "u1", "state": "CA", "os": "iOS"}, False)
        client.bool_variation("checkout", {"kind": "organization", "key": "o1", "tier": "gold"}, False)
        report: dict[str, Any] = {}

        async def seen() -> bool:
            report.update(await get(http, f"{FLEET}/attributes"))
            return len(report["kinds"]) == 2

        await until(seen, "the attribute names arrive")
    assert report["kinds"] == [
        {"kind": "organization", "attributes": ["key", "tier"]},
        {"kind": "user", "attributes": ["key", "os", "state"]},
    ]
    assert report["observed_since"]
    assert "CA" not in str(report)
    # Another environment's fleet has seen nothing; an unknown environment is a 404.
    assert (await http.post(ENVS, json={"key": "staging"})).status_code == 201
    assert (await get(http, f"{ENVS}/staging/fleet/attributes"))["kinds"] == []
    assert (await http.get(f"{ENVS}/nowhere/fleet/attributes")).status_code == 404


async def test_stale_flags_and_their_last_evaluation_survive_a_restart(http: httpx.AsyncClient, nats_url: str) -> None:
    # An instance reports a key no flag can have (one no KV key can be): skipped when storing, holding up nothing.
    nc = await nats.connect(nats_url)
    now = datetime.now(UTC)
    odd = FlagCount(flag="checkout\n", variation="on", count=1)
    counts = EvaluationCounts(instance_id="odd", project="default", environment="production", since=now, until=now,
                              counts=(odd,))  # fmt: skip
    await nc.publish(counts_subject("default", "production"), encode_telemetry(counts))
    await nc.close()
    async with sdk(nats_url) as [client]:
        client.bool_variation("checkout", USER, False)
        client.bool_variation("banner", USER, False)
        report: dict[str, Any] = {}

        async def evaluated_ones_are_fresh() -> bool:
            report.update(await get(http, f"{FLEET}/stale", days=1))
            return [f["key"] for f in report["flags"]] == ["forgotten"]

        await until(evaluated_ones_are_fresh, "only the unevaluated flag is stale")
    assert report["persistent"] is True
    assert report["flags"][0]["last_evaluated"] is None
    assert report["flags"][0]["last_changed"]
    every = await get(http, f"{FLEET}/stale", days=0)
    assert [f["key"] for f in every["flags"]] == ["banner", "checkout", "forgotten"]

    # A new admin process (nothing in memory) knows what the first one stored.
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as fresh:

            async def remembered() -> bool:
                stale = await get(fresh, f"{FLEET}/stale", days=1)
                return [f["key"] for f in stale["flags"]] == ["forgotten"]

            await until(remembered, "the restarted admin knows the last evaluations")


async def test_bad_queries_and_unknown_environments(http: httpx.AsyncClient) -> None:
    for path, params in (
        (f"{FLEET}/stale", {"days": "soon"}),
        (f"{FLEET}/stale", {"days": "-1"}),
        (f"{FLEET}/evaluations", {"window": "0"}),
        (FLEET, {"changes": "1000"}),
    ):
        response = await http.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"]
    for path in (f"{ENVS}/staging/fleet", f"{ENVS}/staging/fleet/stale", "/api/v1/environments/staging/fleet"):
        response = await http.get(path)
        assert response.status_code == 404
        assert "staging" in response.json()["error"]
    short = await http.get("/api/v1/environments/production/fleet")
    assert short.status_code == 200
    assert short.json()["instances"] == []


async def test_two_replicas_show_the_same_fleet_aggregated_once_and_take_over_from_each_other(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One replica aggregates; the other handles no heartbeat and shows what the first one aggregated; when the
    first stops, the other takes the lease over and aggregates, from what was reported after the first stopped."""
    from flagstream.services.fleet import lead

    monkeypatch.setattr(lead, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(lead, "RENEW_EVERY", 0.1)
    apps = [create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack, contextlib.AsyncExitStack() as first:
        https = []
        for i, app in enumerate(apps):
            await (first if i == 0 else stack).enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            https.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url=f"http://admin-{i}", headers=auth_headers())
                )
            )
        assert (await https[0].post(ENVS, json={"key": "production"})).status_code == 201
        response = await https[0].post(f"{ENVS}/production/flags", json={"key": "checkout", "on": True})
        assert response.status_code == 201
        fleets = [app.state.fleet for app in apps]
        assert [f.leading for f in fleets] == [True, False]  # the first one up took the lease
        clients = await stack.enter_async_context(sdk(nats_url, 3))
        for i, client in enumerate(clients):
            for n in range(10 + i):
                client.bool_variation("checkout", {"key": f"user-{n}"}, False)
        ids = {c._telemetry.instance_id for c in clients}  # type: ignore[union-attr]

        async def same_on_both() -> bool:
            views = [await get(h, FLEET) for h in https]
            totals = [{f["flag"]: f["total"] for f in (await get(h, f"{FLEET}/evaluations"))["flags"]} for h in https]
            return all({i["instance_id"] for i in v["instances"]} == ids for v in views) and all(
                t.get("checkout") == 33 for t in totals
            )

        await until(same_on_both, "three instances and 33 evaluations, the same on both replicas")
        assert fleets[0].handled > 0
        assert fleets[1].handled == 0  # the second replica never handled a heartbeat

        await first.aclose()  # the first replica stops (and gives its lease up)
        for n in range(7):  # reported while no replica aggregates: the stream keeps them for the next one
            clients[0].bool_variation("checkout", {"key": f"late-{n}"}, False)

        async def taken_over() -> bool:
            response = await https[1].get(FLEET)
            if response.status_code == 503:  # until the lease is free and taken: a clear "try again"
                assert "no admin replica aggregates" in response.json()["error"]
                return False
            assert response.status_code == 200, response.text
            return fleets[1].leading and {i["instance_id"] for i in response.json()["instances"]} == ids

        await until(taken_over, "the second replica aggregating the three instances")
        assert fleets[1].handled > 0

        async def late_ones_counted() -> bool:
            flags = (await get(https[1], f"{FLEET}/evaluations"))["flags"]
            return {f["flag"]: f["total"] for f in flags}.get("checkout") == 33 + 7

        # The new aggregator counts on from the totals the first one stored as it stopped, and nothing reported in
        # between is lost.
        await until(late_ones_counted, "the evaluations made while no replica aggregated, counted on by the new one")


async def test_a_slow_consumer_of_the_admins_nats_connection_is_logged_and_counted_in_its_metrics(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever subscription of the admin's connection falls behind (here one that holds a message at most and
    never finishes reading it), the messages nats-py drops show in /metrics and in the log."""
    import asyncio

    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
            nc = app.state.nc
            stuck = asyncio.Event()

            async def never_done(msg: Any) -> None:
                await stuck.wait()

            sub = await nc.subscribe("slow.test", cb=never_done, pending_msgs_limit=1)
            for _ in range(5):
                await nc.publish("slow.test", b"x")
            await nc.flush()

            async def counted() -> bool:
                text = (await http.get("/metrics")).text
                line = next(x for x in text.splitlines() if x.startswith("flagstream_nats_slow_consumers_total "))
                return float(line.split()[1]) >= 1

            await until(counted, "the slow consumer counted")
            stuck.set()
            await sub.unsubscribe()
    assert any("slow consumer on slow.test" in r.getMessage() for r in caplog.records)


async def test_without_the_telemetry_stream_the_aggregator_subscribes_as_before(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream cannot be made (say, NATS permissions): telemetry is still aggregated, by subscription, and the
    log says what is lost that way."""
    from flagstream.services.fleet import feed

    async def refused(js: Any) -> None:
        raise PermissionError("no stream for you")

    monkeypatch.setattr(feed, "ensure_fleet_stream", refused)
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
            assert (await http.post(ENVS, json={"key": "production"})).status_code == 201
            assert app.state.fleet.pulling is False
            async with sdk(nats_url) as [client]:
                for _ in range(3):
                    client.bool_variation("checkout", USER, False)

                async def counted() -> bool:
                    flags = (await get(http, f"{FLEET}/evaluations"))["flags"]
                    return {f["flag"]: f["total"] for f in flags}.get("checkout") == 3

                await until(counted, "the evaluations counted by subscription")
    assert any("no telemetry stream" in r.getMessage() for r in caplog.records)
