#!/usr/bin/env python3
"""Cost of an evaluation through the OpenFeature client vs the native Flagstream client, on the same flag.

    .venv/bin/python bench/openfeature_overhead.py           # 5 reps x 100,000 evals per row
    .venv/bin/python bench/openfeature_overhead.py --quick   # 3 reps x 20,000

One flag (``realistic_flag``: a target list and a country rule) loaded from a throwaway nats-server into
``FlagstreamClient``s; 1,000 pre-built contexts (half in a Nordic country), the same users as dicts for the
native client and as ``EvaluationContext``s for OpenFeature. Rows:

* native ``bool_variation`` with ``telemetry=False`` (counted all the same, nothing sent);
* native ``bool_variation`` with telemetry on (the default; the same one attribute increment per evaluation);
* native with an exposure callback (sample rate 1: a queue append per evaluation, delivered on a thread);
* OpenFeature ``get_boolean_value`` and ``get_boolean_details`` through ``api.get_client()`` with a
  ``FlagstreamProvider`` over the telemetry-off client (OpenFeature's hooks, context merging, details).

Each row: 10,000 warm-up evaluations, then ``--reps`` rounds in which every row times ``--n`` evaluations in
turn (interleaved, so load from other processes hits all rows alike; gc enabled); the median ns per
evaluation is reported. Results go to bench/results/openfeature_overhead-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nats
from _common import ENVIRONMENT, flag_event, nats_server, print_table, realistic_flag, write_results
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from flagstream import FlagstreamClient
from flagstream.openfeature import FlagstreamProvider
from flagstream.services.runtime.stream import ensure_stream

KEY = "new-checkout"


async def publish(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    subject, payload = flag_event(realistic_flag(KEY), created=True)
    await js.publish(subject, payload)
    await nc.close()


def timed(rows: list[tuple[str, Callable[[Any], Any], list[Any]]], n: int, reps: int) -> list[float]:
    """Median ns per evaluation of each row's ``run(context)``: ``reps`` rounds, each timing ``n`` evaluations
    of every row in turn (interleaved, so a noisy neighbour slows every row alike)."""
    batches = []
    for _, run, contexts in rows:
        batch = (contexts * (n // len(contexts) + 1))[:n]
        for c in batch[:10_000]:
            run(c)
        batches.append(batch)
    per_eval: list[list[float]] = [[] for _ in rows]
    for _ in range(reps):
        for i, (_, run, _) in enumerate(rows):
            batch = batches[i]
            start = time.perf_counter_ns()
            for c in batch:
                run(c)
            per_eval[i].append((time.perf_counter_ns() - start) / n)
    return [statistics.median(values) for values in per_eval]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, reps = (20_000, 3) if args.quick else (args.n, args.reps)

    countries = ["NO", "SE", "US", "DE"]
    users = [{"key": f"user-{i}", "country": countries[i % 4]} for i in range(1000)]
    of_contexts = [EvaluationContext(u["key"], {"country": u["country"]}) for u in users]

    with nats_server() as server:
        asyncio.run(publish(server.url))
        plain = FlagstreamClient(server.url, environment=ENVIRONMENT, telemetry=False)
        counted = FlagstreamClient(server.url, environment=ENVIRONMENT)
        exposed = FlagstreamClient(server.url, environment=ENVIRONMENT, telemetry=False)
        for client in (plain, counted, exposed):
            if not client.start(wait=30):
                raise SystemExit("client not ready")
        received = [0]

        def exposure(record: object) -> None:
            received[0] += 1

        exposed.on_exposure(exposure, max_queue=1_000_000)
        api.set_provider_and_wait(FlagstreamProvider(plain))
        of = api.get_client()
        # The same answers everywhere first.
        for u, c in zip(users, of_contexts, strict=True):
            expected = plain.bool_variation(KEY, u, False)
            assert of.get_boolean_value(KEY, False, c) is expected
            assert counted.bool_variation(KEY, u, False) is expected

        cases: list[tuple[str, Callable[[Any], Any], list[Any]]] = [
            ("native bool_variation, telemetry off", lambda c: plain.bool_variation(KEY, c, False), users),
            ("native bool_variation, telemetry on", lambda c: counted.bool_variation(KEY, c, False), users),
            ("native bool_variation, exposures on", lambda c: exposed.bool_variation(KEY, c, False), users),
            ("OpenFeature get_boolean_value", lambda c: of.get_boolean_value(KEY, False, c), of_contexts),
            ("OpenFeature get_boolean_details", lambda c: of.get_boolean_details(KEY, False, c), of_contexts),
        ]
        rows = list(zip([name for name, _, _ in cases], timed(cases, n, reps), strict=True))
        api.shutdown()
        for client in (counted, exposed):
            client.close()

    base = rows[0][1]
    print_table(
        f"evaluation cost, median of {reps} x {n:,} evals (ns per evaluation)",
        ["path", "ns/eval", "x native"],
        [(name, f"{ns:.0f}", f"{ns / base:.1f}") for name, ns in rows],
    )
    write_results(
        "openfeature_overhead",
        {"n": n, "reps": reps, "rows": [{"path": name, "median_ns": round(ns, 1)} for name, ns in rows]},
    )


if __name__ == "__main__":
    main()
