"""Propagation: how long after a change is acknowledged does every SDK client apply it?

Starts its own nats-server, N ``AsyncFlagstreamClient`` in this process (each with its own NATS connection
and ordered consumer), then publishes a flag change to JetStream ROUNDS times. For each client and each
change it records the time from the JetStream publish ack (what the admin API waits for before its 2xx) to
the client's ``on_change`` listener (called right after the new ruleset is swapped in).

Everything shares one event loop here, so with 100 clients a delivery also waits for the other 99 clients'
work: the numbers are pessimistic compared with 100 separate processes.

    .venv/bin/python bench/propagation.py [--rounds 50] [--clients 1,100]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import nats
from _common import flag_event, nats_server, print_table, realistic_flag, summary_ms, write_results

from flagstream import AsyncFlagstreamClient
from flagstream.events import Flag
from flagstream.services.stream import ensure_stream

KEY = "bench-propagation"


async def run(url: str, clients_n: int, rounds: int) -> dict[str, object]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    subject, payload = flag_event(realistic_flag(KEY, 0, on=False), created=True)
    await js.publish(subject, payload)

    applied: dict[int, list[float]] = {}
    done = asyncio.Event()
    expected = 0

    def listener(key: str, old: Flag | None, new: Flag | None) -> None:
        now = time.perf_counter()
        revision = int(new.description.split()[-1]) if new is not None else -1
        times = applied.setdefault(revision, [])
        times.append(now)
        if revision == expected and len(times) == clients_n:
            done.set()

    clients = [AsyncFlagstreamClient(url, environment="production") for _ in range(clients_n)]
    started = time.perf_counter()
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
        await asyncio.gather(*(c.close() for c in clients))
        await nc.close()
    return {
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
    parser.add_argument("--clients", default="1,100", help="comma-separated client counts")
    args = parser.parse_args()
    results = []
    for n in (int(x) for x in args.clients.split(",")):
        with nats_server() as server:
            results.append(await run(server.url, n, args.rounds))
    rows = [
        (
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
        ["clients", "samples", "p50", "p99", "max", "p50 from send", "p99 from send"],
        rows,
    )
    write_results("propagation", {"measured_from": "jetstream publish ack", "runs": results})


if __name__ == "__main__":
    asyncio.run(main())
