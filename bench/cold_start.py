"""Cold start: time from ``AsyncFlagstreamClient.start()`` to ready, against a stream with history.

Scenarios (``flags x revisions`` = events):

- ``1000x1``: 1,000 flags written once (1,000 events);
- ``10000x10``: 10,000 flags written 10 times each (100,000 events);
- ``10000x100``: 10,000 flags written 100 times each (1,000,000 events; issue 5's target: under 500 ms).

The client loads only the last event per subject (an ordered ``LAST_PER_SUBJECT`` consumer), so the cost
should follow the number of flags, not of events. Median of several fresh clients, each with its own
connection (connecting is included in the time). The stream is filled with ``js.publish_async`` (up to
``--window`` acks outstanding); the fill time is reported too.

    .venv/bin/python bench/cold_start.py [--runs 5] [--scenarios 1000x1,10000x10,10000x100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import nats
from _common import flag_event, nats_server, print_table, realistic_flag, write_results

from flagstream import AsyncFlagstreamClient
from flagstream.services.runtime.stream import ensure_stream


async def fill(url: str, flags: int, revisions: int, window: int) -> int:
    """Write ``revisions`` events for each of ``flags`` flags, revision by revision; return the last sequence.

    Publishes with ``publish_async`` (``window`` acks outstanding at most), then waits for every ack.
    """
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=window)
    await ensure_stream(js)
    futures = []
    last = 0
    for revision in range(revisions):
        for i in range(flags):
            subject, payload = flag_event(realistic_flag(f"flag-{i:05d}", revision), created=revision == 0)
            futures.append(await js.publish_async(subject, payload))
        # Collect this revision's acks (the semaphore already bounds what is in flight).
        acks = await asyncio.gather(*futures)
        last = max(last, *(ack.seq for ack in acks))
        futures.clear()
    info = await js.stream_info("FLAGSTREAM")
    await nc.close()
    assert info.state.messages == flags * revisions, f"stream holds {info.state.messages} messages"
    return last


async def scenario(url: str, flags: int, revisions: int, runs: int, window: int) -> dict[str, object]:
    filled = time.perf_counter()
    last = await fill(url, flags, revisions, window)
    fill_s = time.perf_counter() - filled
    print(f"  {flags} flags x {revisions} revisions: stream filled in {fill_s:.1f} s", flush=True)

    timings: list[float] = []
    for _ in range(runs):
        client = AsyncFlagstreamClient(url, environment="production", telemetry=False)
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
        print(f"    start() -> ready: {elapsed * 1000:.0f} ms", flush=True)
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
    parser.add_argument("--scenarios", default="1000x1,10000x10,10000x100", help="comma-separated FLAGSxREVISIONS")
    parser.add_argument("--window", type=int, default=4000, help="async publishes in flight while filling")
    parser.add_argument("--quick", action="store_true", help="only the 1,000-flag scenario")
    args = parser.parse_args()
    wanted = "1000x1" if args.quick else args.scenarios
    scenarios = [tuple(int(n) for n in s.split("x")) for s in wanted.split(",") if s]
    results = []
    for flags, revisions in scenarios:
        with nats_server() as server:
            results.append(await scenario(server.url, flags, revisions, args.runs, args.window))
    print_table(
        "Cold start: start() -> ready (ms, connect included)",
        ["flags", "events", "fill s", "runs", "median", "min", "max"],
        [(r["flags"], r["events"], r["fill_s"], r["runs"], r["median_ms"], r["min_ms"], r["max_ms"]) for r in results],
    )
    write_results("cold_start", {"runs": results})


if __name__ == "__main__":
    asyncio.run(main())
