"""Propagation: how long after a change is acknowledged does every SDK client apply it?

Starts its own nats-server, N ``AsyncFlagstreamClient`` in this process (each with its own NATS connection
and ordered consumer), then turns a flag on and off ROUNDS times. For each client and each change it records
the time from the writer's acknowledgement to the client's ``on_change`` listener (called right after the new
ruleset is swapped in). Two writers:

- ``api``: the admin HTTP API (``create_app``, served by uvicorn in a separate process); measured from the
  2xx answer of ``POST .../flags/<key>/on|off`` received by this process. Used when the admin app exists.
- ``jetstream``: a ``FlagToggled`` event published straight to JetStream; measured from the publish ack
  (what the admin API waits for before answering 2xx).

The async clients share one event loop here, so with 100 clients a delivery also waits for the other 99
clients' work: the numbers are pessimistic compared with 100 separate processes. A sync ``FlagstreamClient``
(background thread with its own loop, as in a WSGI app) is measured too. With one client in the same process
the change is often applied before the writer's coroutine sees its ack: such samples count as 0 ms (and are
counted in ``applied_before_ack_seen``); the "from send" columns time from the start of the write.

    .venv/bin/python bench/propagation.py [--rounds 50] [--clients 1,100] [--sync-clients 1] [--via api,jetstream]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import nats
from _common import ENVIRONMENT, PROJECT, AdminProcess, flag_event, nats_server, print_table, realistic_flag, summary_ms
from _common import write_results as save

from flagstream import AsyncFlagstreamClient, FlagstreamClient
from flagstream.events import Flag, FlagToggled, encode_event, subject
from flagstream.services.runtime.stream import ensure_stream

KEY = "bench-propagation"


class Writer(Protocol):
    name: str

    async def setup(self) -> None: ...
    async def toggle(self, on: bool) -> None: ...
    async def close(self) -> None: ...


class JetStreamWriter:
    name = "jetstream publish ack"

    def __init__(self, url: str) -> None:
        self.url = url

    async def setup(self) -> None:
        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()
        await ensure_stream(self.js)
        subj, payload = flag_event(realistic_flag(KEY, on=False), created=True)
        await self.js.publish(subj, payload)
        self.flag = realistic_flag(KEY, on=False)

    async def toggle(self, on: bool) -> None:
        flag = realistic_flag(KEY, on=on)
        event = FlagToggled(project=PROJECT, environment=ENVIRONMENT, actor="bench", at=datetime.now(UTC), flag=flag)
        await self.js.publish(subject(PROJECT, ENVIRONMENT, "flag", KEY), encode_event(event))

    async def close(self) -> None:
        await self.nc.close()


class ApiWriter:
    name = "admin API 2xx"

    def __init__(self, url: str) -> None:
        self.url = url
        self.folder = tempfile.TemporaryDirectory(prefix="flagstream-bench-")

    async def setup(self) -> None:
        self.admin = AdminProcess(self.url, Path(self.folder.name), KEY)
        await self.admin.start()

    async def toggle(self, on: bool) -> None:
        await self.admin.toggle(on)

    async def close(self) -> None:
        await self.admin.close()
        self.folder.cleanup()


async def run(writer: Writer, url: str, clients_n: int, rounds: int, sync: bool = False) -> dict[str, object]:
    await writer.setup()
    applied: list[float] = []
    done = asyncio.Event()
    expected_on = False
    loop = asyncio.get_running_loop()
    lock = threading.Lock()  # sync clients call their listeners on their own threads

    def listener(key: str, old: Flag | None, new: Flag | None) -> None:
        now = time.perf_counter()
        if new is None or new.on != expected_on:
            return
        with lock:
            applied.append(now)
            complete = len(applied) == clients_n
        if complete:
            loop.call_soon_threadsafe(done.set)

    clients: list[AsyncFlagstreamClient | FlagstreamClient]
    started = time.perf_counter()
    if sync:
        clients = [FlagstreamClient(url, environment=ENVIRONMENT) for _ in range(clients_n)]
        ready = await asyncio.gather(*(asyncio.to_thread(c.start, 60) for c in clients))
    else:
        clients = [AsyncFlagstreamClient(url, environment=ENVIRONMENT) for _ in range(clients_n)]
        ready = await asyncio.gather(*(c.start(wait=60) for c in clients))
    assert all(ready), "not every client became ready"
    startup = time.perf_counter() - started
    for c in clients:
        c.on_change(KEY, listener)

    from_ack: list[float] = []
    from_send: list[float] = []
    negative = 0
    try:
        for round_ in range(1, rounds + 1):
            with lock:
                expected_on = round_ % 2 == 1
                applied.clear()
            done.clear()
            sent = time.perf_counter()
            await writer.toggle(expected_on)
            acked = time.perf_counter()
            await asyncio.wait_for(done.wait(), 30)
            for t in applied:
                from_send.append(t - sent)
                from_ack.append(max(0.0, t - acked))
                negative += t < acked
    finally:
        for c in clients:
            if isinstance(c, FlagstreamClient):
                await asyncio.to_thread(c.close)
            else:
                await c.close()
        await writer.close()
    return {
        "writer": writer.name,
        "client": "sync (own thread)" if sync else "async (shared loop)",
        "clients": clients_n,
        "rounds": rounds,
        "startup_s": round(startup, 3),
        "from_ack": summary_ms(from_ack),
        "from_send": summary_ms(from_send),
        "applied_before_ack_seen": negative,
    }


def api_available() -> bool:
    try:
        return importlib.util.find_spec("flagstream.services.admin.app") is not None
    except ImportError:
        return False


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", default="1,100", help="comma-separated counts of async clients")
    parser.add_argument("--sync-clients", default="1", help="comma-separated counts of sync clients ('' for none)")
    parser.add_argument("--via", default="api,jetstream", help="writers: api and/or jetstream")
    args = parser.parse_args()
    vias = [v for v in args.via.split(",") if v]
    if "api" in vias and not api_available():
        print("admin API not available (flagstream.services.admin.app): measuring from the JetStream ack only")
        vias = [v for v in vias if v != "api"] or ["jetstream"]
    plan = [(int(x), False) for x in args.clients.split(",") if x]
    plan += [(int(x), True) for x in args.sync_clients.split(",") if x]
    results = []
    for via in vias:
        for n, sync in plan:
            with nats_server() as server:
                writer: Writer = ApiWriter(server.url) if via == "api" else JetStreamWriter(server.url)
                results.append(await run(writer, server.url, n, args.rounds, sync))
    rows = [
        (
            r["writer"],
            r["client"],
            r["clients"],
            r["from_ack"]["n"],
            r["from_ack"]["p50_ms"],
            r["from_ack"]["p99_ms"],
            r["from_ack"]["max_ms"],
            r["from_send"]["p50_ms"],
            r["from_send"]["p99_ms"],
        )
        for r in results
    ]
    print_table(
        "Propagation: writer's acknowledgement -> applied in every client (ms)",
        ["measured from", "client", "clients", "samples", "p50", "p99", "max", "p50 from send", "p99 from send"],
        rows,
    )
    save("propagation", {"runs": results})


if __name__ == "__main__":
    asyncio.run(main())
