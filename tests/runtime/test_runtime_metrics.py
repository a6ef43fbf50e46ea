"""Observability: the admin's /metrics, the projector's metrics (its own listener) and the SDK's collector, each
scraped as Prometheus would and checked to move with what the user did."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flagstream import AsyncFlagstreamClient
from flagstream.events import EnvironmentCreated, encode_event, subject
from flagstream.events.model import Environment
from flagstream.metrics import register_metrics
from flagstream.services.projector.projector import Projector
from flagstream.services.runtime.metrics import ProjectorMetrics, serve
from flagstream.services.runtime.natsd import NatsServer, free_port
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import FLAGSTREAM, auth_headers, eventually

API = "/api/v1/projects/default/environments"
FLAGS = "/api/v1/projects/{project}/environments/{environment}/flags"


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly these labels in a Prometheus text exposition (None: absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def scrape(url: str, **kwargs: object) -> str:
    async with httpx.AsyncClient() as http:
        r = await http.get(url, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        return r.text


# -- admin -------------------------------------------------------------------------------------------------


async def test_admin_metrics_move_with_requests(admin_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        assert (await http.get("/metrics", headers={"Authorization": ""})).status_code == 401
        assert (await http.post(API, json={"key": "production"})).status_code == 201
        flags = f"{API}/production/flags"
        assert (await http.post(flags, json={"key": "checkout"})).status_code == 201
        assert (await http.post(flags, json={"key": "checkout"})).status_code == 409  # exists
        assert (await http.post(f"{flags}/checkout/on", json={})).status_code == 200
        stale = await http.post(f"{flags}/checkout/off", json={}, headers={"If-Match": '"1"'})
        assert stale.status_code == 409
        for _ in range(3):
            assert (await http.get(f"{flags}/checkout")).status_code == 200
        assert (await http.get("/no/such/page")).status_code == 404

        text = await scrape(f"{admin_url}/metrics", headers=auth_headers())

    requests = "flagstream_admin_requests_total"
    one = FLAGS + "/{key}"
    assert value(text, requests, route=FLAGS, method="POST", status="201") == 1
    assert value(text, requests, route=FLAGS, method="POST", status="409") == 1
    assert value(text, requests, route=one, method="GET", status="200") == 3
    assert value(text, requests, route=one + "/off", method="POST", status="409") == 1
    assert value(text, requests, route="unmatched", method="GET", status="404") == 1
    assert value(text, "flagstream_admin_conflicts_total") == 2
    assert value(text, "flagstream_admin_events_appended_total", type="environment.created") == 1
    assert value(text, "flagstream_admin_events_appended_total", type="flag.created") == 1
    assert value(text, "flagstream_admin_events_appended_total", type="flag.toggled") == 1
    assert value(text, "flagstream_admin_request_duration_seconds_count", route=one, method="GET") == 3


async def test_admin_metrics_count_connected_sdk_instances(admin_url: str, nats_url: str) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        assert (await http.post(API, json={"key": "production"})).status_code == 201
        clients = [AsyncFlagstreamClient(nats_url, environment="production", telemetry_interval=0.1) for _ in range(2)]
        try:
            for client in clients:
                assert await client.start(wait=30)
            seen: list[float | None] = [None]

            async def both_seen() -> None:
                while seen[0] != 2:
                    text = await scrape(f"{admin_url}/metrics", headers=auth_headers())
                    seen[0] = value(
                        text, "flagstream_sdk_instances_connected", project="default", environment="production"
                    )
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(both_seen(), 30)
        finally:
            for client in clients:
                await client.close()


# -- projector ---------------------------------------------------------------------------------------------


async def _publish_environments(nats_url: str, count: int, garbage: int = 0) -> int:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        for i in range(count):
            key = f"env-{i}"
            event = EnvironmentCreated(
                project="default", environment=key, actor="test", at=datetime.now(UTC), env=Environment(key=key)
            )
            await js.publish(subject("default", key, "environment", key), encode_event(event))
        for i in range(garbage):
            await js.publish(f"flagstream.default.env-0.flag.junk-{i}", b"not an event")
        return int((await js.stream_info("FLAGSTREAM")).state.last_seq)
    finally:
        await nc.close()


async def test_projector_metrics_show_lag_then_catch_up(nats_url: str, tmp_path: Path) -> None:
    last = await _publish_environments(nats_url, 20, garbage=1)
    projector = Projector(nats_url=nats_url, db_path=tmp_path / "rm.sqlite")
    metrics = ProjectorMetrics(CollectorRegistry())
    metrics.instrument(projector)
    server = serve(metrics.registry, 0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    stop = asyncio.Event()
    follower = asyncio.create_task(metrics.follow_stream(lambda: nats.connect(nats_url), stop, interval=0.05))
    try:
        text = ""
        async with asyncio.timeout(30):
            while value(text, "flagstream_projector_stream_last_seq") != last:
                text = await scrape(url)
                await asyncio.sleep(0.02)
        # Not running yet: everything in the stream is lag.
        assert value(text, "flagstream_projector_lag") == last
        assert value(text, "flagstream_projector_last_applied_seq") == 0

        running = asyncio.create_task(projector.run(stop))
        await projector.wait_caught_up(30)
        async with asyncio.timeout(30):  # the batch is counted once acknowledged, just after it is committed
            while value(text, "flagstream_projector_events_applied_total") != 20:
                text = await scrape(url)
                await asyncio.sleep(0.02)
        assert value(text, "flagstream_projector_lag") == 0
        assert value(text, "flagstream_projector_last_applied_seq") == last
        assert value(text, "flagstream_projector_events_applied_total") == 20
        assert value(text, "flagstream_projector_bad_events_total") == 1
        batches = value(text, "flagstream_projector_batch_duration_seconds_count")
        assert batches is not None
        assert batches >= 1
        stop.set()
        await running
    finally:
        stop.set()
        await follower
        server.shutdown()


async def test_flagstream_projector_metrics_port(nats_url: str, tmp_path: Path) -> None:
    last = await _publish_environments(nats_url, 5)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        FLAGSTREAM, "projector", "--nats-url", nats_url, "--db", str(tmp_path / "rm.sqlite"),
        "--metrics-port", str(port), "--log-format", "json", "--log-level", "info",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        text = ""
        lag, stream_seq = "flagstream_projector_lag", "flagstream_projector_stream_last_seq"
        async with asyncio.timeout(60):
            while value(text, lag) != 0 or value(text, stream_seq) != last:
                assert proc.returncode is None, "flagstream projector exited"
                try:
                    text = await scrape(f"http://127.0.0.1:{port}/metrics")
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        assert value(text, "flagstream_projector_events_applied_total") == 5
    finally:
        if proc.returncode is None:
            proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    lines = [line for line in out.decode().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("metrics at http://127.0.0.1" in r["message"] for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


# -- SDK ---------------------------------------------------------------------------------------------------


async def test_sdk_metrics_read_the_clients_state(admin_url: str, nats_server: NatsServer) -> None:
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers()) as http:
        assert (await http.post(API, json={"key": "production"})).status_code == 201
        r = await http.post(f"{API}/production/flags", json={"key": "checkout", "on": True})
        assert r.status_code == 201
        version = r.json()["version"]

    registry = CollectorRegistry()
    client = AsyncFlagstreamClient(nats_server.url, environment="production", telemetry_interval=0.05,
                                   reconnect_wait=0.1)  # fmt: skip
    quiet = AsyncFlagstreamClient(nats_server.url, project="default", environment="production", telemetry=False)
    quiet.project = "other"  # a second client in the same registry needs other labels
    register_metrics(client, registry)
    register_metrics(quiet, registry)
    labels = {"project": "default", "environment": "production"}

    def read(name: str, **extra: str) -> float | None:
        return value(generate_latest(registry).decode(), name, **{**labels, **extra})

    try:
        assert read("flagstream_sdk_ready") == 0
        assert read("flagstream_sdk_status", status="INITIALIZING") == 1
        assert await client.start(wait=30)
        assert await quiet.start(wait=30)
        for _ in range(5):
            assert client.bool_variation("checkout", {"key": "u"}, False) is True
        client.bool_variation("missing", {"key": "u"}, False)
        client.string_variation("checkout", {"key": "u"}, "x")  # wrong type
        assert read("flagstream_sdk_evaluations_total") == 7
        assert read("flagstream_sdk_evaluation_errors_total") == 2
        # The telemetry reporter sends and resets its counts: the totals keep going up from where they were.
        reports = client._telemetry.reports  # type: ignore[union-attr]
        await eventually(lambda: client._telemetry.reports > reports + 1, what="telemetry reports")  # type: ignore[union-attr]
        client.bool_variation("checkout", {"key": "u"}, False)
        assert read("flagstream_sdk_evaluations_total") == 8
        assert read("flagstream_sdk_ready") == 1
        assert read("flagstream_sdk_stale") == 0
        assert read("flagstream_sdk_last_applied_seq") == version
        assert read("flagstream_sdk_bad_events_total") == 0

        # A client without telemetry counts too.
        quiet.bool_variation("checkout", {"key": "u"}, False)
        assert value(generate_latest(registry).decode(), "flagstream_sdk_evaluations_total", project="other",
                     environment="production") == 1  # fmt: skip

        nats_server.stop()
        await eventually(lambda: read("flagstream_sdk_stale") == 1, what="the SDK reported stale")
        assert read("flagstream_sdk_status", status="STALE") == 1
    finally:
        await client.close()
        await quiet.close()
