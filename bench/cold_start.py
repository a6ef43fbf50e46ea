"""Cold start: time from ``AsyncFlagstreamClient.start()`` to ready, against a stream with history.

Scenarios: 1,000 flags written once (1,000 events) and 10,000 flags written 10 times each (100,000 events).
The client loads only the last event per subject (an ordered ``LAST_PER_SUBJECT`` consumer), so the second
scenario should cost about 10x the first, not 100x. Median of several fresh clients, each with its own
connection (connecting is included in the time).

    .venv/bin/python bench/cold_start.py [--runs 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import nats
from _common import flag_event, nats_server, print_table, realistic_flag, write_results
from nats.js import JetStreamContext

from flagstream import AsyncFlagstreamClient
from flagstream.services.stream import ensure_stream

WINDOW = 1000  # publishes in flight at once while filling the stream


async def fill(js: JetStreamContext, flags: int, revisions: int) -> int:
    """Write ``revisions`` events for each of ``flags`` flags, revision by revision; return the last sequence."""
    last = 0
    for revision in range(revisions):
        for start in range(0, flags, WINDOW):
            events = [
                flag_event(realistic_flag(f"flag-{i:05d}", revision), created=revision == 0)
                for i in range(start, min(flags, start + WINDOW))
            ]
            acks = await asyncio.gather(*(js.publish(subject, payload) for subject, payload in events))
            last = max(last, *(ack.seq for ack in acks))
    return last


async def scenario(url: str, flags: int, revisions: int, runs: int) -> dict[str, object]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    filled = time.perf_counter()
    last = await fill(js, flags, revisions)
    fill_s = time.perf_counter() - filled
    await nc.close()

    timings: list[float] = []
    for _ in range(runs):
        client = AsyncFlagstreamClient(url, environment="production")
        started = time.perf_counter()
        await client.start()
        ready = await client.wait_until_ready(300)
        elapsed = time.perf_counter() - started
        loaded, seq = len(client.ruleset.flags), client.seq
        await client.close()
        assert ready, "client never became ready"
        assert loaded == flags, f"loaded {loaded} flags, expected {flags}"
        assert seq == last, f"client at sequence {seq}, stream at {last}"
        timings.append(elapsed)
    return {
        "flags": flags,
        "events": flags * revisions,
        "runs": runs,
        "fill_s": round(fill_s, 2),
        "median_ms": round(statistics.median(timings) * 1000, 1),
        "min_ms": round(min(timings) * 1000, 1),
        "max_ms": round(max(timings) * 1000, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="only the 1,000-flag scenario")
    args = parser.parse_args()
    scenarios = [(1_000, 1)] if args.quick else [(1_000, 1), (10_000, 10)]
    results = []
    for flags, revisions in scenarios:
        with nats_server() as server:
            results.append(await scenario(server.url, flags, revisions, args.runs))
    print_table(
        "Cold start: start() -> ready (ms, connect included)",
        ["flags", "events", "runs", "median", "min", "max"],
        [(r["flags"], r["events"], r["runs"], r["median_ms"], r["min_ms"], r["max_ms"]) for r in results],
    )
    write_results("cold_start", {"runs": results})


if __name__ == "__main__":
    asyncio.run(main())
