"""Cold start: time from ``AsyncFlagstreamClient.start()`` to ready, against a stream with history.

Scenarios (``flags x revisions`` = events):

- ``1000x1``: 1,000 flags written once (1,000 events);
- ``10000x10``: 10,000 flags written 10 times each (100,000 events);
- ``10000x100``: 10,000 flags written 100 times each (1,000,000 events; issue 25's target: under 200 ms);
- ``10000x1000``: 10,000,000 events (about 8 GB of stream: use ``--store``, the fill takes half an hour).

Two ways of loading, each a row (``--ways``): ``snapshot``, the client's default, reads the environment's
compacted snapshot (written once per scenario by the services' writer, ``services/snapshots``, run in this process
before the loads; kept with ``--store``) and then follows from its sequence; ``long`` (``snapshots=False``) loads the
last event per subject with an ordered ``LAST_PER_SUBJECT`` consumer, as a client does when there is no snapshot.
Both should cost what the number of flags costs, not the number of events. Median of several fresh clients,
each with its own connection (connecting is included in the time). Each run also reports the client process's CPU time
(``time.process_time``) during the load: on a shared machine the wall time mostly measures the wait for a core,
the CPU time much less so. The load average (``os.getloadavg``) before and after each scenario is printed and
kept in the results.

``--instructions`` counts, with valgrind's cachegrind, the CPU instructions of one load in a child process (three
loads minus one, halved: start-up and imports cancel out), for each way of the SDK client (``sdk``: from the
snapshot, ``sdk-long``: the long way) and, with ``--loads``, two reference loads of the same 10,000 messages:
nats-py's ordered consumer with a callback that does nothing (``nats-py``), and the same callback decoding each event
(``nats-py+decode``). Instructions do not depend on the machine's load: they say where the client's
time goes.

The stream is filled with ``js.publish_async`` (up to ``--window`` acks outstanding); the fill time is reported
too. ``--store DIR`` keeps the nats-server's store in ``DIR/<scenario>`` and reuses it when it already holds the
scenario's events (the stream's last revision of every flag is then the newest 10,000 messages).

    .venv/bin/python bench/cold_start.py [--runs 5] [--scenarios 1000x1,10000x10,10000x100] [--store DIR]
        [--ways snapshot,long]
    .venv/bin/python bench/cold_start.py --scenarios 10000x100 --instructions [--loads sdk,sdk-long,nats-py]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
from _common import flag_event, nats_server, print_table, realistic_flag, write_results

from flagstream import AsyncFlagstreamClient
from flagstream.events.snapshot import SnapshotError
from flagstream.services.runtime.natsd import NatsServer
from flagstream.services.runtime.stream import ensure_stream
from flagstream.services.snapshots import running
from flagstream.snapshots import fetch_snapshot

FILTER = "flagstream.default.production.>"
#: What ``--instructions`` can count: the SDK's load from the snapshot and the long way, and nats-py's ordered
#: consumer alone (with, without decoding).
LOADS = ("sdk", "sdk-long", "nats-py", "nats-py+decode")
#: The ways of loading a row is measured for: the snapshot (the default) and the last event per subject.
WAYS = ("snapshot", "long")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


async def fill(url: str, flags: int, revisions: int, window: int) -> int:
    """Write ``revisions`` events for each of ``flags`` flags, revision by revision; return the last sequence.

    Publishes with ``publish_async`` (``window`` acks outstanding at most), then waits for every ack.
    """
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=window)
    await ensure_stream(js)
    info = await js.stream_info("FLAGSTREAM")
    if info.state.messages == flags * revisions:  # a kept store (--store) already filled
        await nc.close()
        return info.state.last_seq
    assert info.state.messages == 0, f"the store holds {info.state.messages} messages, not {flags * revisions}"
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


async def write_snapshot(url: str, last: int) -> float:
    """Make sure the environment's snapshot is as of ``last`` (the services' writer, in this process); its seconds."""
    started = time.perf_counter()
    nc = await nats.connect(url)
    try:
        with contextlib.suppress(Exception):  # none yet
            if (await fetch_snapshot(nc.jetstream(), "default", "production")).seq == last:
                return 0.0  # a kept store's
        async with running(nc, interval=0.05) as writer:
            while True:
                with contextlib.suppress(SnapshotError, nats.errors.Error, nats.js.errors.Error):
                    if writer.written and (await fetch_snapshot(nc.jetstream(), "default", "production")).seq == last:
                        break
                await asyncio.sleep(0.05)
    finally:
        await nc.close()
    return time.perf_counter() - started


async def load_once(
    url: str, snapshots: bool = True, collect: bool = True
) -> tuple[float, float, int, int, int | None]:
    """One fresh client from ``start()`` to ready: (wall seconds, CPU seconds, flags loaded, sequence, snapshot's).

    The garbage of the clients loaded before it in this process is collected first (not timed): a cold start is
    an application's first load, whose garbage collector has none of that to scan. (``--instructions`` counts
    without it, ``collect=False``: its count is of whole processes, the collection would be counted too.)"""
    if collect:
        gc.collect()
    client = AsyncFlagstreamClient(url, environment="production", telemetry=False, snapshots=snapshots)
    started, cpu = time.perf_counter(), time.process_time()
    await client.start()
    ready = await client.wait_until_ready(300)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    loaded, seq, snapshot = len(client.ruleset.flags), client.seq, client.snapshot_seq
    await client.close()
    assert ready, "client never became ready"
    return elapsed, cpu, loaded, seq, snapshot


async def filled(url: str, flags: int, revisions: int, window: int, ways: list[str]) -> tuple[int, float]:
    """Fill the stream (or find it filled) and write the snapshot if a way needs it: (last sequence, fill seconds)."""
    started = time.perf_counter()
    last = await fill(url, flags, revisions, window)
    fill_s = time.perf_counter() - started
    print(f"  {flags} flags x {revisions} revisions: stream filled in {fill_s:.1f} s", flush=True)
    if "snapshot" in ways:
        print(f"    snapshot as of sequence {last} written in {await write_snapshot(url, last):.1f} s", flush=True)
    return last, fill_s


async def scenario(
    url: str, flags: int, revisions: int, runs: int, way: str, last: int, fill_s: float
) -> dict[str, object]:
    timings: list[float] = []
    cpus: list[float] = []
    load_before = load_average()
    for _ in range(runs):
        elapsed, cpu, loaded, seq, snapshot = await load_once(url, snapshots=way == "snapshot")
        assert loaded == flags, f"loaded {loaded} flags, expected {flags}"
        assert seq == last, f"client at sequence {seq}, stream at {last}"
        assert snapshot == (last if way == "snapshot" else None), f"loaded from the snapshot at {snapshot}"
        timings.append(elapsed)
        cpus.append(cpu)
        print(f"    {way}: start() -> ready: {elapsed * 1000:.0f} ms (client CPU {cpu * 1000:.0f} ms)", flush=True)
    return {
        "flags": flags,
        "events": flags * revisions,
        "way": way,
        "runs": runs,
        "fill_s": round(fill_s, 2),
        "median_ms": round(statistics.median(timings) * 1000, 1),
        "min_ms": round(min(timings) * 1000, 1),
        "max_ms": round(max(timings) * 1000, 1),
        "cpu_median_ms": round(statistics.median(cpus) * 1000, 1),
        "cpu_min_ms": round(min(cpus) * 1000, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }


# -- instructions (cachegrind) --------------------------------------------------------------------------------


async def _consumer_load(url: str, flags: int, decode: bool) -> None:
    """nats-py's ordered consumer delivering the last event of each flag to a callback (decoding it or not)."""
    from nats.js.api import DeliverPolicy

    from flagstream.events import decode_event

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.stream_info("FLAGSTREAM")
    received = 0
    done = asyncio.Event()

    async def on_message(msg: nats.aio.msg.Msg) -> None:
        nonlocal received
        if decode:
            decode_event(msg.data)
        received += 1
        if received == flags:
            done.set()

    policy = DeliverPolicy.LAST_PER_SUBJECT
    await js.subscribe(FILTER, stream="FLAGSTREAM", cb=on_message, ordered_consumer=True, deliver_policy=policy)
    await done.wait()
    await nc.close()


async def _child_loads(url: str, what: str, count: int, flags: int) -> None:
    for _ in range(count):
        if what in ("sdk", "sdk-long"):
            _, _, loaded, _, snapshot = await load_once(url, snapshots=what == "sdk", collect=False)
            assert loaded == flags
            assert (snapshot is not None) == (what == "sdk")
        else:
            await _consumer_load(url, flags, decode=what == "nats-py+decode")


def instructions(url: str, what: str, count: int, flags: int) -> int:
    args = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
            __file__, "--child", url, what, str(count), str(flags)]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"), check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    assert match, out.stderr[-2000:]
    return int(match.group(1).replace(",", ""))


def count_instructions(url: str, flags: int, loads: list[str]) -> dict[str, int]:
    """Instructions of one load, per kind of load: (three loads - one load) / 2."""
    counts = {}
    for what in loads:
        one, three = instructions(url, what, 1, flags), instructions(url, what, 3, flags)
        counts[what] = (three - one) // 2
        print(f"    {what}: {counts[what] / 1e6:,.0f} M instructions per load", flush=True)
    return counts


# -- driver ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def server_for(store: Path | None, name: str) -> Iterator[NatsServer]:
    if store is None:
        with nats_server() as server:
            yield server
        return
    server = NatsServer(store_dir=store / name).start()
    try:
        yield server
    finally:
        server.stop()


def row(r: dict[str, object]) -> tuple[object, ...]:
    load = f"{r['load_before']}/{r['load_after']}"
    return (r["flags"], r["events"], r["way"], r["fill_s"], r["runs"], r["median_ms"], r["min_ms"], r["max_ms"],
            r["cpu_median_ms"], r["cpu_min_ms"], load)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenarios", default="1000x1,10000x10,10000x100", help="comma-separated FLAGSxREVISIONS")
    parser.add_argument("--window", type=int, default=4000, help="async publishes in flight while filling")
    parser.add_argument("--quick", action="store_true", help="only the 1,000-flag scenario")
    parser.add_argument("--store", type=Path, help="keep (and reuse) each scenario's filled store in this folder")
    parser.add_argument("--instructions", action="store_true", help="also count instructions per load (valgrind)")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated ways of loading, of {WAYS}")
    parser.add_argument("--loads", default="sdk,sdk-long", help=f"what --instructions counts, of {LOADS}")
    args = parser.parse_args()
    ways = [w for w in args.ways.split(",") if w]
    loads = [w for w in args.loads.split(",") if w]
    if set(ways) - set(WAYS) or set(loads) - set(LOADS):
        raise SystemExit(f"--ways of {WAYS}, --loads of {LOADS}")
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    wanted = "1000x1" if args.quick else args.scenarios
    scenarios = [tuple(int(n) for n in s.split("x")) for s in wanted.split(",") if s]
    results = []
    counted: list[tuple[int, int, dict[str, int]]] = []
    for flags, revisions in scenarios:
        with server_for(args.store, f"{flags}x{revisions}") as server:
            last, fill_s = await filled(server.url, flags, revisions, args.window, ways)
            for way in ways:
                results.append(await scenario(server.url, flags, revisions, args.runs, way, last, fill_s))
            if args.instructions:
                counted.append((flags, flags * revisions, count_instructions(server.url, flags, loads)))
    print_table(
        "Cold start: start() -> ready (ms, connect included), the client's CPU, the load average before/after",
        ["flags", "events", "way", "fill s", "runs", "median", "min", "max", "CPU median", "CPU min", "load"],
        [row(r) for r in results],
    )
    if counted:
        print_table(
            "Instructions per load (millions; cachegrind; sdk: from the snapshot, sdk-long: the last event per flag)",
            ["flags", "events", *loads],
            [(f, e, *(f"{c[w] / 1e6:,.0f}" for w in loads)) for f, e, c in counted],
        )
    write_results(
        "cold_start", {"runs": results, "instructions": [{"flags": f, "events": e, **c} for f, e, c in counted]}
    )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        asyncio.run(_child_loads(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        asyncio.run(main())
