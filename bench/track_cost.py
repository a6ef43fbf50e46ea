#!/usr/bin/env python3
"""Cost of ``client.track()`` on the application's thread, and what tracking does to evaluations.

    .venv/bin/python bench/track_cost.py            # 5 reps x 20,000 calls per row
    .venv/bin/python bench/track_cost.py --quick    # 3 reps x 10,000

A sync ``FlagstreamClient`` connected to a throwaway nats-server with the metrics stream (what the admin side makes),
two flags: ``plain`` (a target list and a rule, no rollout) and ``split`` (a 50/50 percentage rollout). Rows, each
the median ns per call of ``--reps`` rounds of ``--n`` calls over 1,000 plain user dicts (the queue drained between
rounds, so no call is a cheap drop):

* ``track(metric, user)`` and ``track(metric, user, value)``: what the application's thread pays;
* ``bool_variation`` of each flag before any ``track`` call (the fast path) and after (evaluations observed:
  the general path, plus one queued tuple for the rollout's).

Each row twice: wall clock, and the CPU time of the application's thread alone (``time.thread_time_ns``), which a
busy machine's other processes and the client's own thread (draining the queue meanwhile) do not inflate.

The machine's load average is printed and stored with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nats
from _common import ENVIRONMENT, flag_event, nats_server, print_table, realistic_flag, write_results

from flagstream import FlagstreamClient
from flagstream.events import Flag, Rollout, Serve, WeightedVariation
from flagstream.services.runtime.stream import ensure_metrics_stream, ensure_stream

SPLIT = Flag(
    key="split", on=True,
    fallthrough=Serve(rollout=Rollout(variations=(WeightedVariation(variation="on", weight=50_000),
                                                  WeightedVariation(variation="off", weight=50_000)))),
)  # fmt: skip


async def publish(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    await ensure_metrics_stream(js)
    for flag in (realistic_flag("plain"), SPLIT):
        subject, payload = flag_event(flag, created=True)
        await js.publish(subject, payload)
    await nc.close()


def timed(
    run: Callable[[Any], Any], contexts: list[Any], n: int, reps: int, settle: Callable[[], None]
) -> tuple[float, float]:
    """Median ns per call over ``reps`` rounds: wall clock, and the CPU time of this (the application's) thread
    alone (``time.thread_time_ns``: what a busy machine's other processes and the client's own thread do not add)."""
    batch = (contexts * (n // len(contexts) + 1))[:n]
    wall, cpu = [], []
    for _ in range(reps):
        settle()
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        for c in batch:
            run(c)
        cpu.append((time.thread_time_ns() - start_cpu) / n)
        wall.append((time.perf_counter_ns() - start) / n)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.reps = 10_000, 3
    load_before = os.getloadavg()
    users = [{"key": f"user-{i}"} for i in range(1_000)]
    with nats_server() as server:
        asyncio.run(publish(server.url))
        client = FlagstreamClient(server.url, environment=ENVIRONMENT, track_interval=0.2)
        assert client.start(wait=30), "the client did not load"
        tracker = client.tracker
        assert tracker is not None

        def drained() -> None:
            deadline = time.monotonic() + 30
            while tracker.pending and time.monotonic() < deadline:
                time.sleep(0.01)

        rows: list[tuple[str, tuple[float, float]]] = []
        for key in ("plain", "split"):
            rows.append(
                (
                    f"bool_variation {key}, never tracked",
                    timed(lambda u, k=key: client.bool_variation(k, u, False), users, args.n, args.reps, lambda: None),
                )
            )  # type: ignore[misc]
        client.track("warmup", users[0])  # from now on, evaluations are observed
        for user in users:  # every user exposed to the rollout: the calls below are attributed to it
            client.bool_variation("split", user, False)
        drained()
        rows.append(("track(metric, user)", timed(lambda u: client.track("errors", u), users, args.n, args.reps,
                                                  drained)))  # fmt: skip
        rows.append(("track(metric, user, value)", timed(lambda u: client.track("latency", u, 12.5), users, args.n,
                                                         args.reps, drained)))  # fmt: skip
        for key in ("plain", "split"):
            rows.append(
                (
                    f"bool_variation {key}, after track()",
                    timed(lambda u, k=key: client.bool_variation(k, u, False), users, args.n, args.reps, drained),
                )
            )  # type: ignore[misc]
        drained()
        client.close()
        sent = {"tracked": tracker.tracked, "dropped": tracker.dropped, "batches": tracker.batches}
    load_after = os.getloadavg()
    print_table(
        f"track() and evaluations, median ns per call ({args.reps} x {args.n:,}); load {load_before[0]:.1f} -> "
        f"{load_after[0]:.1f}", ("row", "ns/call", "thread CPU ns/call"),
        [(name, f"{ns:,.0f}", f"{cpu:,.0f}") for name, (ns, cpu) in rows],
    )  # fmt: skip
    print(f"tracker: {sent}")
    write_results("track_cost", {
        "n": args.n, "reps": args.reps, "rows": {name: round(ns, 1) for name, (ns, _) in rows},
        "thread_cpu": {name: round(cpu, 1) for name, (_, cpu) in rows}, "tracker": sent,
        "load_before": load_before, "load_after": load_after,
    })  # fmt: skip


if __name__ == "__main__":
    main()
