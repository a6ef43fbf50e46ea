"""The admin API process SIGKILLed (twice) in the middle of a stream of writes, and restarted on the same port.

A kill can land after JetStream stored a write but before its answer left the process: the client sees a
connection error and retries with the same Idempotency-Key against the restarted process, which must find the
stored write and answer with it, not write it again. Same well-behaved client and same checks as the
nats-server kill test: every 2xx stored as answered, no key stored twice, each flag's history exactly its writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from test_reliability_nats_kill import API, ENV, FLAGS, Writer, check_log, fresh_hash, read_stream

from flagstream import AsyncFlagstreamClient
from tests.helpers import AdminProcess, auth_headers, eventually


@pytest.fixture
def admin_process(nats_url: str) -> Iterator[AdminProcess]:
    admin = AdminProcess(nats_url).start()
    try:
        yield admin
    finally:
        admin.stop()


async def test_acknowledged_writes_survive_admin_crashes(nats_url: str, admin_process: AdminProcess) -> None:
    flags = [f"flag-{i:02d}" for i in range(20)]
    async with httpx.AsyncClient(base_url=admin_process.url, timeout=10, headers=auth_headers()) as http:
        assert (await http.post(f"{API}/environments", json={"key": ENV})).status_code == 201
        for flag in flags:
            assert (await http.post(FLAGS, json={"key": flag})).status_code == 201

        client = AsyncFlagstreamClient(nats_url, environment=ENV)
        try:
            assert await client.start(wait=30)
            writer = Writer(http, flags, rounds=8)
            writing = asyncio.create_task(writer.run())
            total = len(flags) * writer.rounds
            for fraction in (0.25, 0.6):
                await eventually(lambda f=fraction: writer.acknowledged >= total * f, within=60, what="writes")
                before = writer.failures
                admin_process.kill()
                await eventually(lambda b=before: writer.failures > b, within=30, what="writers see the crash")
                await asyncio.to_thread(admin_process.start)
            await asyncio.wait_for(writing, 120)

            stored = await read_stream(nats_url)
            figures = check_log(writer, stored)
            figures["faults"] = 2
            print("\nadmin kill figures:", figures)
            last = stored[-1].seq
            await eventually(lambda: client.seq == last, within=30, what="the client caught up")
            assert (await fresh_hash(nats_url)) == (last, client.state_hash())
        finally:
            await client.close()
