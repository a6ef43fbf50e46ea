"""Evaluation totals across a hand-over of the aggregation, with real processes: the aggregating admin replica is
SIGKILLed while reports pour in, the other one takes over and shows the totals of everything reported, each report
counted once (``services/fleet/feed.py``: the totals stored with the stream sequences they include)."""

from __future__ import annotations

import os
import signal
import zlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import nats
import pytest

from flagstream.events.telemetry import (
    EvaluationCounts,
    FlagCount,
    FleetTotals,
    counts_subject,
    decode_totals,
    encode_telemetry,
    encode_totals,
)
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import admin_processes, auth_headers, until

ENVS = "/api/v1/projects/default/environments"
EVALUATIONS = f"{ENVS}/production/fleet/evaluations"
DATA = Path(__file__).parent.parent / "upgrade" / "data"


async def publish(nc: nats.NATS, first: int, last: int) -> dict[str, int]:
    """Counts messages ``first``..``last - 1`` as SDK instances send them; returns what they count per variation."""
    sent = {"on": 0, "off": 0}
    for n in range(first, last):
        variation = "on" if n % 3 else "off"
        now = datetime.now(UTC)
        counted = (FlagCount(flag="checkout", variation=variation, count=n % 5 + 1),)
        message = EvaluationCounts(instance_id=f"instance-{n % 40}", project="default", environment="production",
                                   since=now, until=now, counts=counted)  # fmt: skip
        await nc.publish(counts_subject("default", "production"), encode_telemetry(message))
        sent[variation] += n % 5 + 1
    await nc.flush()
    return sent


async def shown(http: httpx.AsyncClient) -> tuple[dict[str, int], dict] | None:  # type: ignore[type-arg]
    response = await http.get(EVALUATIONS)
    if response.status_code != 200:
        return None
    body = response.json()
    flags = {f["flag"]: f for f in body["flags"]}
    if "checkout" not in flags:
        return {}, body
    return {v["variation"]: v["total"] for v in flags["checkout"]["variations"]}, body


async def aggregating(http: httpx.AsyncClient) -> float | None:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("flagstream_fleet_aggregating "):
            return float(line.split()[1])
    return None


@pytest.mark.parametrize("how", ["killed", "starved"])
async def test_totals_stay_exact_when_the_aggregator_is_killed_and_another_replica_takes_over(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``killed``: SIGKILL. ``starved``: SIGSTOP past its lease (a process starved of CPU), SIGCONT once the other
    aggregates: it goes on where it stopped, stores and acknowledges nothing more, and steps down."""
    from flagstream.services.fleet import stream

    # What the killed replica pulled and did not acknowledge comes back after ACK_WAIT: 2 s instead of 30.
    monkeypatch.setattr(stream, "ACK_WAIT", 2.0)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await stream.ensure_fleet_stream(js)
    try:
        with admin_processes(nats_url, 2) as admins:
            https = [httpx.AsyncClient(base_url=a.url, headers=auth_headers(), timeout=30) for a in admins]
            try:
                assert (await https[0].post(ENVS, json={"key": "production"})).status_code == 201
                before = await publish(nc, 0, 4000)

                async def partly_counted() -> bool:  # the aggregator is at work on them
                    got = await shown(https[0])
                    return got is not None and sum(got[0].values()) > 0

                await until(partly_counted, "the first aggregator counting")
                first = await shown(https[0])
                assert first is not None
                proc = admins[0].proc
                assert proc is not None
                if how == "killed":
                    admins[0].kill()  # SIGKILL, mid-stream: no last write, no acknowledgement, no release
                else:
                    os.kill(proc.pid, signal.SIGSTOP)
                after = await publish(nc, 4000, 5000)  # while no replica aggregates
                expected = {v: before[v] + after[v] for v in before}

                async def all_counted() -> bool:
                    got = await shown(https[1])
                    return got is not None and got[0] == expected

                await until(all_counted, "the second replica showing every evaluation reported")
                if how == "starved":
                    os.kill(proc.pid, signal.SIGCONT)

                    async def stepped_down() -> bool:  # the first one answers with the second one's totals
                        got = await shown(https[0])
                        return got is not None and got[0] == expected and await aggregating(https[0]) == 0

                    await until(stepped_down, "the starved replica stepped down, showing the same totals")

                async def drained() -> bool:  # every message acknowledged: nothing more will be counted
                    info = await js.consumer_info(stream.FLEET_STREAM, stream.CONSUMER)
                    return info.num_pending == 0 and info.num_ack_pending == 0

                await until(drained, "every report acknowledged")
                got = await shown(https[1])
                assert got is not None
                totals, body = got
                assert totals == expected  # nothing lost, nothing counted twice
                # Counting since the first aggregator started, as shown before the hand-over.
                assert body["counting_since"] == first[1]["counting_since"]
                assert body["flags"][0]["last_evaluated"] >= first[1]["flags"][0]["last_evaluated"]
            finally:
                for http in https:
                    await http.aclose()
    finally:
        await nc.close()


def test_a_stored_totals_record_of_the_first_format_still_decodes() -> None:
    """The record as this version first wrote it (zlib-compressed JSON), read by every later version."""
    stored = (DATA / "fleet-totals-1.json").read_bytes()
    record = decode_totals(zlib.compress(stored))
    assert decode_totals(encode_totals(record)) == record
    assert msgspec.json.decode(stored, type=FleetTotals) == record
    assert record.counted == ((1, 180), (185, 190))
    env = record.environments[0]
    assert (env.project, env.environment) == ("default", "production")
    assert {(t.flag, t.variation): t.total for t in env.totals} == {("checkout", "on"): 1500, ("checkout", None): 3}
    assert env.last_evaluated["checkout"] == datetime(2026, 12, 6, 21, 0, 5, tzinfo=UTC)


async def test_a_totals_record_that_does_not_decode_is_logged_and_counting_starts_from_zero(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged record (or none, as an older admin leaves) never stops the aggregation: it counts from zero."""
    from flagstream.services.admin.app import create_app
    from flagstream.services.runtime import FLEET_BUCKET, ensure_bucket
    from tests.helpers import ADMIN_TOKEN

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    kv = await ensure_bucket(js, FLEET_BUCKET)
    await kv.put("_totals", b"not a record")
    app = create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://admin", headers=auth_headers()) as http:
                assert (await http.post(ENVS, json={"key": "production"})).status_code == 201
                sent = await publish(nc, 0, 30)

                async def counted() -> bool:
                    got = await shown(http)
                    return got is not None and got[0] == sent

                await until(counted, "the reports counted from zero")
                assert "the stored totals cannot be read" in caplog.text

                async def stored() -> bool:  # and the record is whole again
                    record = decode_totals((await kv.get("_totals")).value or b"")
                    totals = {t.variation: t.total for e in record.environments for t in e.totals}
                    return totals == sent

                await until(stored, "the totals stored anew")
    finally:
        await nc.close()
