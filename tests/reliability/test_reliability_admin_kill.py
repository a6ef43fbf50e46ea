"""The admin API process SIGKILLed (twice) in the middle of a stream of writes, and restarted on the same port.

A kill can land after JetStream stored a write but before its answer left the process: the client sees a
connection error and retries with the same Idempotency-Key against the restarted process, which must find the
stored write and answer with it, not write it again. Same well-behaved client and same checks as the
nats-server kill test: every 2xx stored as answered, no key stored twice, each flag's history exactly its writes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_reliability_nats_kill import API, ENV, FLAGS, Writer, check_log, fresh_hash, read_stream

from flagstream import AsyncFlagstreamClient
from flagstream.services.runtime.natsd import free_port
from tests.helpers import ADMIN_TOKEN, auth_headers, eventually

FLAGSTREAM = str(Path(sys.executable).with_name("flagstream"))


class AdminProcess:
    """``flagstream admin`` as a child process on a fixed port, killable and restartable."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [FLAGSTREAM, "admin", "--nats-url", self.nats_url, "--port", str(self.port), "--log-level", "warning"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ADMIN_TOKEN},
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # returns once it printed its URL (it is serving)
            if line.startswith("http://"):
                return
        raise AssertionError(f"flagstream admin exited with {self.proc.wait(30)}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def admin_process(nats_url: str) -> Iterator[AdminProcess]:
    admin = AdminProcess(nats_url)
    admin.start()
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
