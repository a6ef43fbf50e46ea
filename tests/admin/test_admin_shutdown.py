"""``flagstream admin`` stops on SIGTERM, and ``kill -USR1`` shows where it is (real processes, real nats-server)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import nats

from flagstream.events.telemetry import Heartbeat, encode_telemetry, heartbeat_subject
from flagstream.services.fleet.stream import PULL_BATCH
from tests.helpers import DUMP_END, AdminProcess, auth_headers, until

ENVS = "/api/v1/projects/default/environments"


def _handled(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("flagstream_fleet_telemetry_handled_total "):
            return float(line.split()[1])
    return 0.0


async def test_the_admin_exits_on_sigterm_while_the_fleets_telemetry_pours_in(nats_url: str) -> None:
    """The aggregator pulls batch after batch; a stop that came as a batch was answered was lost (Python 3.11's
    ``asyncio.wait_for``), and the process waited for its pull forever: 6 of 7 such stops before the fix."""
    admin = AdminProcess(nats_url).start()
    nc = await nats.connect(nats_url)
    stop = asyncio.Event()
    now = datetime.now(UTC)
    beats = [
        encode_telemetry(Heartbeat(instance_id=uuid.uuid4().hex, sdk_version="test", project="default",
                                   environment="production", seq=0, started_at=now, sent_at=now, status="READY"))
        for _ in range(PULL_BATCH)
    ]  # fmt: skip

    async def pour() -> None:
        subject = heartbeat_subject("default", "production")
        while not stop.is_set():
            for beat in beats:
                await nc.publish(subject, beat)
            await nc.flush()

    pouring = asyncio.create_task(pour())
    try:
        async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=30) as http:
            assert (await http.post(ENVS, json={"key": "production"})).status_code == 201

            async def pulling() -> bool:
                return _handled((await http.get("/metrics")).text) >= 4 * PULL_BATCH

            await until(pulling, "the aggregator pulling batch after batch")
        await asyncio.to_thread(admin.stop, 30)  # fails with the process's threads and tasks if it hangs
        assert admin.proc is not None
        assert admin.proc.returncode == 0, "".join(admin.output)
    finally:
        stop.set()
        await pouring
        await nc.close()
        admin.stop()


async def test_kill_usr1_writes_every_thread_and_asyncio_task_and_the_admin_serves_on(nats_url: str) -> None:
    admin = AdminProcess(nats_url).start()
    try:
        dump = await asyncio.to_thread(admin.dump)
        assert DUMP_END in dump
        assert "Current thread" in dump  # every thread's stack
        assert "Task 'snapshots' SnapshotWriter.run (pending)" in dump  # the background runners, by name
        assert "Task 'fleet-lead'" in dump
        assert "services/runtime/aio.py" in dump  # each task's await chain, down to where it waits
        async with httpx.AsyncClient(base_url=admin.url, timeout=30) as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        admin.stop()
