"""Fleet telemetry through the stream, with real processes: an aggregator that stops reading (SIGSTOP, as a process
starved of CPU does) while a burst of reports arrives counts every one of them, once, when it runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime

import httpx
import nats
import pytest

from flagstream.events.telemetry import (
    EvaluationCounts,
    FlagCount,
    Heartbeat,
    counts_subject,
    encode_telemetry,
    heartbeat_subject,
)
from flagstream.services.fleet.stream import CONSUMER, FLEET_STREAM, PULL_BATCH
from flagstream.services.runtime.stream import ensure_stream
from tests.helpers import admin_processes, auth_headers, until

ENVS = "/api/v1/projects/default/environments"
FLEET = f"{ENVS}/production/fleet"
#: Instances of the burst: a heartbeat and a counts message each, 20 pull batches of messages.
INSTANCES = 5 * PULL_BATCH


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def test_a_stopped_aggregator_counts_a_burst_in_full_once_it_runs_again(nats_url: str) -> None:
    with admin_processes(nats_url, 2) as admins:
        https = [httpx.AsyncClient(base_url=a.url, headers=auth_headers(), timeout=30) for a in admins]
        try:
            assert (await https[0].post(ENVS, json={"key": "production"})).status_code == 201
            # The second one up found the stream and its consumer as the first made them.
            assert not [line for a in admins for line in a.output if "telemetry consumer" in line]
            scraped = [(await h.get("/metrics")).text for h in https]
            assert [metric(t, "flagstream_fleet_aggregating") for t in scraped] == [1, 0]  # the first one up
            aggregator = admins[0].proc
            assert aggregator is not None

            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            os.kill(aggregator.pid, signal.SIGSTOP)
            try:
                started = datetime.now(UTC)
                ids = [uuid.uuid4().hex for _ in range(INSTANCES)]
                for n, instance in enumerate(ids):
                    beat = Heartbeat(instance_id=instance, sdk_version="test", project="default",
                                     environment="production", seq=0, started_at=started, sent_at=datetime.now(UTC),
                                     status="READY")  # fmt: skip
                    evaluated = (FlagCount(flag="checkout", variation="on", count=n % 7 + 1),)
                    counts = EvaluationCounts(instance_id=instance, project="default", environment="production",
                                              since=started, until=datetime.now(UTC), counts=evaluated)  # fmt: skip
                    await nc.publish(heartbeat_subject("default", "production"), encode_telemetry(beat))
                    await nc.publish(counts_subject("default", "production"), encode_telemetry(counts))
                await nc.flush()

                async def held() -> bool:  # the burst waits in the stream for the stopped aggregator
                    info = await js.consumer_info(FLEET_STREAM, CONSUMER)
                    return info.num_pending + info.num_ack_pending >= 2 * INSTANCES - PULL_BATCH

                await until(held, "the burst held by the stream")
            finally:
                os.kill(aggregator.pid, signal.SIGCONT)
            expected = sum(n % 7 + 1 for n in range(INSTANCES))

            async def counted_on_both() -> bool:
                for http in https:
                    response = await http.get(f"{FLEET}/evaluations")
                    if response.status_code != 200:
                        return False
                    totals = {f["flag"]: f["total"] for f in response.json()["flags"]}
                    if totals.get("checkout") != expected:
                        return False
                listed = (await https[1].get(FLEET, params={"changes": 0})).json()["instances"]
                return {i["instance_id"] for i in listed} == set(ids)

            await until(counted_on_both, "every evaluation of the burst counted, every instance listed, on both")
            text = (await https[0].get("/metrics")).text
            assert metric(text, "flagstream_fleet_telemetry_handled_total") == 2 * INSTANCES
            assert metric(text, "flagstream_fleet_telemetry_duplicates_total") == 0
            assert metric(text, "flagstream_fleet_telemetry_bad_total") == 0

            async def drained() -> bool:
                info = await js.consumer_info(FLEET_STREAM, CONSUMER)
                return info.num_pending == 0 and info.num_ack_pending == 0

            await until(drained, "every message acknowledged")
            await nc.close()
        finally:
            for http in https:
                await http.aclose()


async def test_what_a_replica_read_without_surely_holding_the_lease_is_counted_by_the_next_one(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica starved past its lease and continued reads what nats-server had sent it, but acknowledges none
    of it: the replica that aggregates now gets every message (after the acknowledgement wait), none twice."""
    from flagstream.services.fleet import stream

    monkeypatch.setattr(stream, "ACK_WAIT", 1.0)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    await stream.ensure_fleet_stream(js)
    subject = counts_subject("default", "production")
    for n in range(10):
        await nc.publish(subject, str(n).encode())
    await nc.flush()
    deposed: list[bytes] = []
    # It holds the lease for nine messages; at the tenth, its lease is about to run out.
    deposed_pull = stream.Pull(nc, lambda s, data, at: deposed.append(data), may_ack=lambda: len(deposed) < 10)
    task = asyncio.create_task(deposed_pull.run())
    await until(lambda: _true(len(deposed) == 10), "the deposed replica read the ten")
    task.cancel()
    assert deposed_pull.withheld == 1  # the tenth (the first nine were acknowledged while it held the lease)
    for n in range(10, 13):  # reported meanwhile: the new aggregator acknowledges these before the tenth is back
        await nc.publish(subject, str(n).encode())
    aggregator: list[bytes] = []
    pull = stream.Pull(nc, lambda s, data, at: aggregator.append(data))
    task = asyncio.create_task(pull.run())
    try:

        async def drained() -> bool:
            info = await js.consumer_info(stream.FLEET_STREAM, stream.CONSUMER)
            return len(aggregator) >= 4 and info.num_pending == info.num_ack_pending == 0

        await until(drained, "everything counted and acknowledged")
        assert sorted(aggregator, key=int) == [b"9", b"10", b"11", b"12"]  # the tenth too, and nothing twice
    finally:
        task.cancel()
        await nc.close()


async def _true(value: bool) -> bool:
    return value
