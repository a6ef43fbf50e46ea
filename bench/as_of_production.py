"""Time travel in the production shape: 10,000 flags behind 1,000,000 events in a real JetStream stream, asked
through an admin replica (``flagstream admin --history-db``, a separate process with a read model of its own folded
from the stream), beside the same questions answered straight from JetStream (the design not chosen).

Steps:

1. A nats-server (``--cluster``: three, the stream with 3 replicas, as in compose.yaml) and the stream; the
   events of ``as_of.py`` (10,000 ``flag.created``, then updates and toggles of random flags, each ``at`` a
   millisecond after the previous one) published in order with acknowledgements.
2. **JetStream directly**, from a client (what an admin without a read model would have to do), at instants
   early / middle / late / now given as stream sequences:
   * ``subjects``: the environment's subjects (``STREAM.INFO`` with ``subjects_filter``);
   * ``multi_last``: the batched direct get ``{"multi_last": [...], "up_to_seq": N}`` in requests of 1,000
     literal subjects (the server answers 413 "Too Many Results" past 1,024 per request, paged or not, so the
     wildcard ``flagstream.<p>.<env>.>`` cannot be asked for 10,000 flags), all requests in flight at once;
   * ``state``: the above plus decoding and the state hash; ``evaluate``: plus folding and evaluating every flag;
   * one flag's whole history (an ordered consumer filtered to its subject), and the newest page of 100 events
     of the environment (direct gets walking back from the last sequence);
   * an audit question with a filter (``actor``): no index in JetStream, so the environment's whole log is read
     (once).
3. **An admin replica**: ``flagstream admin --history-db`` started against the stream; the time until its read
   model has folded all the events (what a new replica, or one whose file was lost, costs), the file's size, the
   process's memory; then over HTTP: ``GET .../state?seq=N``, ``GET .../state?at=T``, ``POST .../evaluate``
   with ``as_of``, one flag's history, the environment's newest page, the same page filtered by actor and time.

Usage: ``python bench/as_of_production.py [--flags 10000] [--events 1000000] [--runs 5] [--cluster] [--store DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
from _common import ENVIRONMENT, PROJECT, print_table, summary_ms, write_results
from as_of import START, messages
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from flagstream.events import STREAM, decode_event
from flagstream.events.subjects import environment_filter
from flagstream.services.history.timetravel import evaluate_all, hash_of, ruleset_of, states
from flagstream.services.runtime.natsd import NatsCluster, NatsServer, free_port
from flagstream.services.runtime.stream import ensure_stream

TOKEN = "fs_bench_operator_token_0123456789"
ENV_API = f"/api/v1/projects/{PROJECT}/environments/{ENVIRONMENT}"
CONTEXT = {"key": "user-1", "country": "NO"}
CHUNK = 1000  # literal subjects per multi_last request (the server's limit is 1,024 results)


@contextlib.contextmanager
def event_log(cluster: bool, store: Path | None = None) -> Iterator[list[str]]:
    """The NATS URLs of a throwaway server (or three-node cluster) with JetStream; ``store``: keep the server's
    store there (a later run with the same sizes skips the publishing)."""
    if store is not None and not cluster:
        server = NatsServer(store_dir=store).start()
        try:
            yield [server.url]
        finally:
            server.stop()
        return
    with tempfile.TemporaryDirectory(prefix="flagstream-bench-asofprod-") as folder:
        if cluster:
            nodes = NatsCluster(Path(folder), size=3).start()
            try:
                yield nodes.urls
            finally:
                nodes.stop()
        else:
            server = NatsServer(store_dir=Path(folder) / "nats").start()
            try:
                yield [server.url]
            finally:
                server.stop()


async def fill(urls: list[str], flags: int, events: int, replicas: int) -> float:
    nc = await nats.connect(urls)
    try:
        js = nc.jetstream(publish_async_max_pending=4000)
        await ensure_stream(js, replicas=replicas)
        started = time.perf_counter()
        if (await js.stream_info(STREAM)).state.last_seq == events:
            print("  (the stream in --store has them already)", flush=True)
            return 0.0
        for message in messages(flags, events):
            await js.publish_async(message.subject, message.data, stream=STREAM)
            if message.seq % 100_000 == 0:
                await js.publish_async_completed()
                print(f"  {message.seq:,} events", flush=True)
        await js.publish_async_completed()
        last = (await js.stream_info(STREAM)).state.last_seq
        assert last == events, f"the stream has {last} events, not {events}"
        return time.perf_counter() - started
    finally:
        await nc.close()


# -- JetStream directly ------------------------------------------------------------------------------------


async def subjects_of(nc: Any, filter_subject: str) -> list[str]:
    out: list[str] = []
    while True:
        request = {"subjects_filter": filter_subject, "offset": len(out)}
        reply = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{STREAM}", json.dumps(request).encode(), 30)).data)
        page = list((reply["state"].get("subjects") or {}).keys())
        out += page
        if not page or len(out) >= reply["state"].get("num_subjects", len(out)):
            return out


async def multi_last(nc: Any, subjects: list[str], up_to_seq: int) -> list[tuple[int, bytes]]:
    """The last message of each subject at or before ``up_to_seq``: (seq, data) pairs."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        request = {"multi_last": subjects, "up_to_seq": up_to_seq}
        await nc.publish(f"$JS.API.DIRECT.GET.{STREAM}", json.dumps(request).encode(), reply=inbox)
        out = []
        while True:
            msg = await sub.next_msg(timeout=30)
            headers = msg.headers or {}
            if not msg.data and headers.get("Status"):
                assert headers["Status"] == "204", headers
                return out
            out.append((int(headers["Nats-Sequence"]), msg.data))
    finally:
        await sub.unsubscribe()


async def environment_as_of(nc: Any, seq: int) -> tuple[float, float, list[tuple[int, bytes]]]:
    t0 = time.perf_counter()
    subjects = await subjects_of(nc, environment_filter(PROJECT, ENVIRONMENT))
    t1 = time.perf_counter()
    chunks = [subjects[i : i + CHUNK] for i in range(0, len(subjects), CHUNK)]
    found = [pair for part in await asyncio.gather(*(multi_last(nc, c, seq) for c in chunks)) for pair in part]
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, found


async def one_subject(js: Any, subject: str) -> int:
    """Every event of one subject, through an ordered consumer: how many."""
    last = (await js.stream_info(STREAM, subjects_filter=subject)).state.subjects[subject]
    sub = await js.subscribe(subject, ordered_consumer=True)
    count = 0
    try:
        while count < last:
            await sub.next_msg(timeout=30)
            count += 1
    finally:
        await sub.unsubscribe()
    return count


async def newest_page(js: Any, last: int, size: int = 100) -> int:
    got = 0
    for seq in range(last, max(0, last - size), -1):
        msg = await js.get_msg(STREAM, seq=seq, direct=True)
        decode_event(msg.data)
        got += 1
    return got


async def scan_all(js: Any, last: int, actor: str) -> int:
    """An audit filter without an index: the environment's whole log read (a pull consumer without acks, in
    batches of 4,096) to find one actor's events."""
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60)
    psub = await js.pull_subscribe(environment_filter(PROJECT, ENVIRONMENT), durable=None, config=config)
    hits = seen = 0
    needle = f'"actor":"{actor}"'.encode()
    try:
        while seen < last:
            for msg in await psub.fetch(4096, timeout=30):
                seen += 1
                hits += needle in msg.data
    finally:
        await psub.unsubscribe()
    return hits


async def measure_jetstream(urls: list[str], events: int, runs: int, instants: dict[str, int]) -> dict[str, Any]:
    nc = await nats.connect(urls)
    js = nc.jetstream()
    results: dict[str, Any] = {}
    rows = []
    try:
        for label, seq in instants.items():
            t_subjects, t_multi, t_state, t_eval = [], [], [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                listing, fetching, found = await environment_as_of(nc, seq)
                pairs = [(s, decode_event(d)) for s, d in found]
                versioned = states(pairs)
                state_hash = hash_of(PROJECT, ENVIRONMENT, versioned)
                t1 = time.perf_counter()
                ruleset = ruleset_of(PROJECT, ENVIRONMENT, seq, versioned)
                answers = evaluate_all(ruleset, CONTEXT)
                t2 = time.perf_counter()
                t_subjects.append(listing)
                t_multi.append(fetching)
                t_state.append(t1 - t0)
                t_eval.append(t2 - t0)
            assert state_hash
            assert answers
            summary = {"seq": seq, "entities": len(found), "subjects": summary_ms(t_subjects),
                       "multi_last": summary_ms(t_multi), "state": summary_ms(t_state),
                       "evaluate": summary_ms(t_eval)}  # fmt: skip
            results[label] = summary
            rows.append((label, f"{seq:,}", *(summary[k]["p50_ms"] for k in ("subjects", "multi_last", "state",
                                                                              "evaluate"))))  # fmt: skip
        print_table(
            f"JetStream directly (batched direct get, up_to_seq), {events:,} events (median of {runs}, ms)",
            ("instant", "seq", "subjects", "multi_last", "state+hash", "evaluate all"),
            rows,
        )
        t_flag, t_page = [], []
        for i in range(runs):
            t0 = time.perf_counter()
            n = await one_subject(js, f"flagstream.{PROJECT}.{ENVIRONMENT}.flag.flag-{i * 7 % 10_000:05d}")
            t1 = time.perf_counter()
            await newest_page(js, events)
            t2 = time.perf_counter()
            t_flag.append(t1 - t0)
            t_page.append(t2 - t1)
        t0 = time.perf_counter()
        hits = await scan_all(js, events, "nobody")
        t_scan = time.perf_counter() - t0
        results["flag_history"] = {"events": n, **summary_ms(t_flag)}
        results["newest_page_100"] = summary_ms(t_page)
        results["filtered_scan_s"] = round(t_scan, 2)
        print(f"one flag's history ({n} events): {results['flag_history']['p50_ms']} ms; newest 100 of the "
              f"environment: {results['newest_page_100']['p50_ms']} ms; an actor filter (whole log read, "
              f"{hits} hits): {t_scan:.1f} s", flush=True)  # fmt: skip
    finally:
        await nc.close()
    return results


# -- an admin replica with its own read model ----------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def position(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT last_seq FROM position WHERE id = 1").fetchone()
            return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


async def measure_admin(
    urls: list[str], events: int, runs: int, instants: dict[str, int], folder: Path
) -> dict[str, Any]:
    db = folder / "admin" / "history.sqlite"
    port = free_port()
    flagstream = str(Path(sys.executable).with_name("flagstream"))
    log = (folder / "admin.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not timed)
        [flagstream, "admin", "--nats-url", urls[0], "--port", str(port), "--history-db", str(db), "--log-level",
         "warning"], env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": TOKEN}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    results: dict[str, Any] = {}
    try:
        last_print = 0.0
        while position(db) < events:
            assert proc.poll() is None, (folder / "admin.log").read_text()
            await asyncio.sleep(0.5)
            if time.perf_counter() - last_print > 10:
                last_print = time.perf_counter()
                print(f"  folded {position(db):,} events", flush=True)
        fold = time.perf_counter() - started
        results["fold_s"] = round(fold, 1)
        results["fold_events_per_s"] = round(events / fold)
        results["db_mb"] = round(sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6)
        results["rss_mb_after_fold"] = round(rss_mb(proc.pid))
        print(f"admin replica folded {events:,} events in {fold:.1f} s ({events / fold:,.0f}/s), read model "
              f"{results['db_mb']} MB, RSS {results['rss_mb_after_fold']} MB", flush=True)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        rows = []
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http:
            for label, seq in instants.items():
                at = (START + timedelta(milliseconds=seq)).isoformat()
                timings: dict[str, list[float]] = {"state_seq": [], "state_at": [], "evaluate": []}
                for _ in range(runs):
                    for name, call in (
                        ("state_seq", lambda s=seq: http.get(f"{ENV_API}/state", params={"seq": str(s)})),
                        ("state_at", lambda t=at: http.get(f"{ENV_API}/state", params={"at": t})),
                        (
                            "evaluate",
                            lambda t=at: http.post(f"{ENV_API}/evaluate", json={"context": CONTEXT, "as_of": t}),
                        ),
                    ):
                        t0 = time.perf_counter()
                        response = await call()
                        timings[name].append(time.perf_counter() - t0)
                        assert response.status_code == 200, response.text
                    assert response.json()["seq"] == seq
                summary = {"seq": seq, **{k: summary_ms(v) for k, v in timings.items()}}
                results[label] = summary
                rows.append((label, f"{seq:,}", *(summary[k]["p50_ms"] for k in timings)))  # type: ignore[index]
            print_table(
                f"an admin replica over HTTP, {events:,} events (median of {runs}, ms)",
                ("instant", "seq", "GET state?seq", "GET state?at", "POST evaluate as_of"),
                rows,
            )
            audit = {
                "flag_history": (f"{ENV_API}/flags/flag-00007/history", {}),
                "newest_page_100": (f"{ENV_API}/history", {}),
                "filtered_page": (f"{ENV_API}/history", {"actor": "nobody", "since": START.isoformat()}),
            }
            for name, (path, params) in audit.items():
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    response = await http.get(path, params=params)
                    times.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text
                results[name] = summary_ms(times)
                print(f"{name}: {results[name]['p50_ms']} ms", flush=True)
        results["rss_mb_after_queries"] = round(rss_mb(proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cluster", action="store_true", help="three nats-servers, the stream with 3 replicas")
    parser.add_argument("--store", type=Path, default=None, help="keep (or reuse) a single server's store here")
    args = parser.parse_args()
    instants = {
        "early (10%)": args.events // 10,
        "middle (50%)": args.events // 2,
        "late (90%)": args.events * 9 // 10,
        "now": args.events,
    }
    print(f"load average before: {os.getloadavg()}", flush=True)
    admin_folder = tempfile.TemporaryDirectory(prefix="flagstream-bench-admin-")
    with event_log(args.cluster, args.store) as urls, admin_folder as folder:
        print(f"publishing {args.flags:,} flags and {args.events:,} events ...", flush=True)
        fill_seconds = await fill(urls, args.flags, args.events, 3 if args.cluster else 1)
        if fill_seconds:
            print(f"published in {fill_seconds:.1f}s ({args.events / fill_seconds:,.0f}/s)", flush=True)
        jetstream = await measure_jetstream(urls, args.events, args.runs, instants)
        admin = await measure_admin(urls, args.events, args.runs, instants, Path(folder))
    print(f"load average after: {os.getloadavg()}", flush=True)
    write_results(
        "as_of_production",
        {"flags": args.flags, "events": args.events, "runs": args.runs, "cluster": args.cluster,
         "publish_seconds": round(fill_seconds, 1), "jetstream": jetstream, "admin": admin,
         "loadavg_end": os.getloadavg()},
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
