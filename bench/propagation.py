"""Propagation: how long after a change is acknowledged does every SDK client apply it?

Starts its own nats-server, N ``AsyncFlagstreamClient`` in this process (each with its own NATS connection
and ordered consumer), then publishes a flag change to JetStream ROUNDS times. For each client and each
change it records the time from the JetStream publish ack (what the admin API waits for before its 2xx) to
the client's ``on_change`` listener (called right after the new ruleset is swapped in).

The async clients share one event loop here, so with 100 clients a delivery also waits for the other 99
clients' work: the numbers are pessimistic compared with 100 separate processes. A sync ``FlagstreamClient``
(background thread with its own loop, as in a WSGI app) is measured too. With one client in the same process
the change is often applied before the publisher's own coroutine sees the ack: such samples count as 0 ms
(and are counted in ``applied_before_ack_seen``); the "from send" columns time from the publish call.

    .venv/bin/python bench/propagation.py [--rounds 50] [--clients 1,100]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import nats
from _common import flag_event, nats_server, print_table, realistic_flag, summary_ms, write_results

from flagstream import AsyncFlagstreamClient, FlagstreamClient
from flagstream.events import Flag
from flagstream.services.stream import ensure_stream

KEY = "bench-propagation"


async def run(url: str, clients_n: int, rounds: int, sync: bool = False) -> dict[str, object]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    subject, payload = flag_event(realistic_flag(KEY, 0, on=False), created=True)
    await js.publish(subject, payload)

    applied: dict[int, list[float]] = {}
    done = asyncio.Event()
    expected = 0
    loop = asyncio.get_running_loop()
    lock = threading.Lock()  # sync clients call their listeners on their own threads

    def listener(key: str, old: Flag | None, new: Flag | None) -> None:
        now = time.perf_counter()
        revision = int(new.description.split()[-1]) if new is not None else -1
        with lock:
            times = applied.setdefault(revision, [])
            times.append(now)
            complete = revision == expected and len(times) == clients_n
        if complete:
            loop.call_soon_threadsafe(done.set)

    clients: list[AsyncFlagstreamClient | FlagstreamClient]
    started = time.perf_counter()
    if sync:
        clients = [FlagstreamClient(url, environment="production") for _ in range(clients_n)]
        ready = await asyncio.gather(*(asyncio.to_thread(c.start, 60) for c in clients))
    else:
        clients = [AsyncFlagstreamClient(url, environment="production") for _ in range(clients_n)]
        ready = await asyncio.gather(*(c.start(wait=60) for c in clients))
    assert all(ready), "not every client became ready"
    startup = time.perf_counter() - started
    for c in clients:
        c.on_change(KEY, listener)

    from_ack: list[float] = []
    from_send: list[float] = []
    negative = 0
    try:
        for revision in range(1, rounds + 1):
            expected = revision
            done.clear()
            subject, payload = flag_event(realistic_flag(KEY, revision, on=revision % 2 == 1))
            sent = time.perf_counter()
            await js.publish(subject, payload)
            acked = time.perf_counter()
            await asyncio.wait_for(done.wait(), 30)
            for t in applied[revision]:
                from_send.append(t - sent)
                from_ack.append(max(0.0, t - acked))
                negative += t < acked
    finally:
        for c in clients:
            if isinstance(c, FlagstreamClient):
                await asyncio.to_thread(c.close)
            else:
                await c.close()
        await nc.close()
    return {
        "client": "sync (own thread)" if sync else "async (shared loop)",
        "clients": clients_n,
        "rounds": rounds,
        "startup_s": round(startup, 3),
        "from_ack": summary_ms(from_ack),
        "from_publish_call": summary_ms(from_send),
        "applied_before_ack_seen": negative,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", default="1,100", help="comma-separated counts of async clients")
    parser.add_argument("--sync-clients", default="1", help="comma-separated counts of sync clients ('' for none)")
    args = parser.parse_args()
    plan = [(int(x), False) for x in args.clients.split(",") if x]
    plan += [(int(x), True) for x in args.sync_clients.split(",") if x]
    results = []
    for n, sync in plan:
        with nats_server() as server:
            results.append(await run(server.url, n, args.rounds, sync))
    rows = [
        (
            r["client"],
            r["clients"],
            r["from_ack"]["n"],
            r["from_ack"]["p50_ms"],
            r["from_ack"]["p99_ms"],
            r["from_ack"]["max_ms"],
            r["from_publish_call"]["p50_ms"],
            r["from_publish_call"]["p99_ms"],
        )
        for r in results
    ]
    print_table(
        "Propagation: JetStream publish ack -> applied in every client (ms)",
        ["client", "clients", "samples", "p50", "p99", "max", "p50 from send", "p99 from send"],
        rows,
    )
    write_results("propagation", {"measured_from": "jetstream publish ack", "runs": results})


if __name__ == "__main__":
    asyncio.run(main())
