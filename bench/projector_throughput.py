"""Projector throughput: events folded per second into the SQLite read model, from sequence 1 (a rebuild).

The stream is filled first (1,000 realistic flags x N revisions); then a fresh ``Projector`` (in process, own
durable, new database) is timed from ``run()`` to caught up, for several batch sizes. Connecting, creating the
consumer and opening the database are included. Each batch is one transaction (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import nats
from _common import flag_event, nats_server, print_table, realistic_flag, write_results
from nats.js import JetStreamContext

from flagstream.services.projector import Projector, ReadModel
from flagstream.services.runtime.stream import ensure_stream

FLAGS = 1_000
WINDOW = 1_000  # publishes in flight at once while filling the stream


async def fill(js: JetStreamContext, revisions: int) -> int:
    last = 0
    for revision in range(revisions):
        events = [flag_event(realistic_flag(f"flag-{i:05d}", revision), created=revision == 0) for i in range(FLAGS)]
        acks = await asyncio.gather(*(js.publish(subject, payload) for subject, payload in events))
        last = max(last, *(ack.seq for ack in acks))
    return last


async def fold(url: str, batch_size: int, run: int, last: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="flagstream-bench-rm-") as folder:
        db = Path(folder) / "readmodel.sqlite"
        projector = Projector(nats_url=url, db_path=db, durable=f"bench-{batch_size}-{run}", batch_size=batch_size)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(projector.run(stop))
        await projector.wait_caught_up(600)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        async with await ReadModel.open(db, readonly=True) as model:
            assert await model.last_seq() == last
            assert len(await model.list("default", "production", "flag")) == FLAGS
        size = folder_size(Path(folder))
    return {
        "batch_size": batch_size,
        "seconds": round(elapsed, 3),
        "events_per_s": round(last / elapsed),
        "db_mb": round(size / 1e6, 1),
    }


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=20, help="events per flag (1,000 flags)")
    parser.add_argument("--batch-sizes", default="32,256,1024")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    results = []
    with nats_server() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_stream(js)
        last = await fill(js, args.revisions)
        await nc.close()
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            runs = [await fold(server.url, batch_size, run, last) for run in range(args.runs)]
            best = max(runs, key=lambda r: r["events_per_s"])
            results.append({**best, "events": last, "runs": args.runs})
    print_table(
        f"Projector: fold {last:,} events from sequence 1 (best of {args.runs})",
        ["batch", "events", "seconds", "events/s", "db MB"],
        [(r["batch_size"], r["events"], r["seconds"], r["events_per_s"], r["db_mb"]) for r in results],
    )
    write_results("projector_throughput", {"results": results})


if __name__ == "__main__":
    asyncio.run(main())
