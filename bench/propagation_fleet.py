"""Propagation to a fleet: 1,000 or 10,000 SDK clients over several processes, from the admin API's 2xx to each
on_change.

Starts its own nats-server and the admin API (``flagstream admin`` under uvicorn, in its own process, with an
operator token), then ``--workers`` processes holding ``--clients`` ``AsyncFlagstreamClient`` each (one NATS
connection per client, ``telemetry=False``; each loads with an ordered consumer, then follows with a plain
subscription to its live subjects and deletes the consumer; the clients of one process share its event loop,
as in an asyncio app that would hold one client: here a process stands for many applications). Clients start
``--ramp`` at a time per worker.
The parent turns a flag on and off ``--rounds`` times through ``POST .../flags/<key>/on|off``; every client's
``on_change`` listener takes ``time.time_ns()`` (one machine, one clock) and each worker sends its times back
over a pipe once all its clients applied the change. A round starts after the previous one completed.

Reported, per client and change: from the 2xx received by the parent (clamped at 0: a client may apply the
change before the parent has read the HTTP answer; those are counted) and from the moment the request was
sent. Also: the first and the last client of each worker (the first shows nats-server's fan-out and the
transport; last - first is the Python work done serially for the clients of one process), and the CPU
seconds per change of the workers, nats-server and the admin (from /proc, Linux only).

Memory: each worker's RSS before its clients exist and once they all follow (the difference per client), and
nats-server's RSS and connection / subscription / consumer counts (its monitoring endpoint) before the workers
start and once every client follows; with ``--leaves N`` the clients connect to N leaf nodes of that server
(``deploy/``'s edge shape without the mirror: the leaves forward JetStream requests to the hub and fan live
messages out locally), spread evenly, and each leaf's figures are reported too.

    .venv/bin/python bench/propagation_fleet.py [--workers 4] [--clients 250] [--rounds 20] [--pause 0.3]
    .venv/bin/python bench/propagation_fleet.py --workers 8 --clients 1250 --rounds 20     # 10,000 clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _common import ENVIRONMENT, AdminProcess, leaf_server, nats_server, print_table, summary_ms
from _common import write_results as save

KEY = "bench-propagation"


# -- worker processes ---------------------------------------------------------------------------------------


def worker_main(url: str, clients_n: int, ramp: int, domain: str | None, conn: Connection) -> None:
    asyncio.run(worker(url, clients_n, ramp, domain, conn))


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (Linux /proc); 0 elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def worker(url: str, clients_n: int, ramp: int, domain: str | None, conn: Connection) -> None:
    import gc

    from flagstream import AsyncFlagstreamClient

    gc.collect()
    rss_before = rss_bytes()
    clients = [
        AsyncFlagstreamClient(url, environment=ENVIRONMENT, telemetry=False, jetstream_domain=domain)
        for _ in range(clients_n)
    ]
    started = time.perf_counter()
    ready: list[bool] = []
    for i in range(0, clients_n, ramp):  # a few at a time: a fleet does not start in one instant either
        ready += await asyncio.gather(*(c.start(wait=300) for c in clients[i : i + ramp]))
    startup = time.perf_counter() - started
    for _ in range(1200):  # the hand-over from the loading consumer follows the load by a few milliseconds
        if all(c._source.following_live for c in clients):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.1)
    live = sum(bool(c._source.following_live) for c in clients)  # type: ignore[union-attr]
    gc.collect()
    rss_after = rss_bytes()
    times: dict[bool, list[int]] = {True: [], False: []}
    cpu = [time.process_time()]

    def listener(key: str, old: Any, new: Any) -> None:
        now = time.time_ns()
        if new is None:
            return
        got = times[new.on]
        got.append(now)
        if len(got) == clients_n:
            spent = time.process_time()
            conn.send(("applied", new.on, got, spent - cpu[0]))
            cpu[0] = spent
            times[new.on] = []

    for c in clients:
        c.on_change(KEY, listener)
    conn.send(("ready", all(ready), startup, live, rss_before, rss_after))
    await asyncio.to_thread(conn.recv)  # "stop"
    await asyncio.gather(*(c.close() for c in clients))
    conn.send(("closed",))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_state(monitor: str) -> dict[str, Any]:
    """nats-server's own figures from its monitoring endpoint: memory, connections, subscriptions, consumers."""

    def get(path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{monitor}{path}", timeout=10) as response:
            return dict(json.loads(response.read()))

    varz, jsz = get("/varz"), get("/jsz")
    return {
        "rss_bytes": varz.get("mem", 0),
        "connections": varz.get("connections", 0),
        "subscriptions": varz.get("subscriptions", 0),
        "consumers": jsz.get("consumers", 0),
        "cpu_percent": varz.get("cpu", 0),
    }


# -- the run ------------------------------------------------------------------------------------------------


async def run(
    workers_n: int, clients_n: int, rounds: int, pause: float, warmup: int, ramp: int, leaves_n: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    hub = nats_server(leafnodes=leaves_n > 0)
    with hub as server, tempfile.TemporaryDirectory(prefix="flagstream-fleet-") as folder:
        admin = AdminProcess(server.url, Path(folder), KEY)
        await admin.start()
        leaves = [leaf_server(server, Path(folder) / f"leaf-{i}") for i in range(leaves_n)]
        monitors = {"hub": f"http://127.0.0.1:{server.monitor_port}"}
        monitors.update({f"leaf-{i}": f"http://127.0.0.1:{leaf.monitor_port}" for i, leaf in enumerate(leaves)})
        await asyncio.sleep(1.0)  # let the admin's own start-up settle before the baseline
        before = {name: server_state(url) for name, url in monitors.items()}
        pipes: list[Connection] = []
        processes = []
        for w in range(workers_n):
            url = leaves[w % leaves_n].url if leaves else server.url
            parent_end, child_end = context.Pipe()
            domain = "hub" if leaves else None
            process = context.Process(target=worker_main, args=(url, clients_n, ramp, domain, child_end), daemon=True)
            process.start()
            pipes.append(parent_end)
            processes.append(process)

        async def receive(conn: Connection, limit: float) -> Any:
            return await asyncio.wait_for(loop.run_in_executor(None, conn.recv), limit)

        started = time.perf_counter()
        hello = await asyncio.gather(*(receive(p, 1800) for p in pipes))
        assert all(h[0] == "ready" and h[1] for h in hello), f"not every client became ready: {hello}"
        startup = time.perf_counter() - started
        following = sum(h[3] for h in hello)
        print(f"{workers_n * clients_n} clients ready in {startup:.1f} s, {following} following live", flush=True)
        await asyncio.sleep(1.0)
        after = {name: server_state(url) for name, url in monitors.items()}
        clients_total = workers_n * clients_n
        memory = {
            "worker_rss_mb_before_clients": round(statistics.mean(h[4] for h in hello) / 2**20, 1),
            "worker_rss_mb_with_clients": round(statistics.mean(h[5] for h in hello) / 2**20, 1),
            "app_kib_per_client": round(sum(h[5] - h[4] for h in hello) / clients_total / 1024, 1),
            "servers_before": before,
            "servers_following": after,
            "server_kib_per_client": {
                name: round((after[name]["rss_bytes"] - before[name]["rss_bytes"]) / 1024
                            / (clients_total / (leaves_n if leaves_n and name != "hub" else 1)), 1)
                for name in monitors
            },
        }  # fmt: skip
        print(f"memory: {memory}", flush=True)

        assert server.process is not None
        assert admin.process.pid is not None
        cpu_pids = {"nats-server": server.process.pid, "admin": admin.process.pid}
        cpu_pids.update({f"leaf-{i}": leaf.process.pid for i, leaf in enumerate(leaves) if leaf.process})
        cpu_before: dict[str, float] = {}
        from_ack: list[float] = []
        from_send: list[float] = []
        first_in_worker: list[float] = []
        spread_in_worker: list[float] = []
        worker_cpu: list[float] = []
        before_ack = 0
        try:
            for round_ in range(warmup + rounds):
                if round_ == warmup:
                    cpu_before = {name: cpu_seconds(pid) for name, pid in cpu_pids.items()}
                on = round_ % 2 == 0
                sent = time.time_ns()
                await admin.toggle(on)
                acked = time.time_ns()
                reports = await asyncio.gather(*(receive(p, 60) for p in pipes))
                assert all(r[0] == "applied" and r[1] is on for r in reports), reports
                if round_ < warmup:
                    await asyncio.sleep(pause)
                    continue
                worker_cpu.append(sum(r[3] for r in reports))
                for _, _, times, _ in reports:
                    first_in_worker.append(max(0, min(times) - acked) / 1e9)
                    spread_in_worker.append((max(times) - min(times)) / 1e9)
                    for t in times:
                        from_send.append((t - sent) / 1e9)
                        from_ack.append(max(0, t - acked) / 1e9)
                        before_ack += t < acked
                await asyncio.sleep(pause)
            cpu_after = {name: cpu_seconds(pid) for name, pid in cpu_pids.items()}
        finally:
            for p in pipes:
                p.send("stop")
            for p in pipes:
                try:
                    await receive(p, 60)
                except Exception:
                    pass
            for process in processes:
                process.join(10)
                if process.is_alive():
                    process.terminate()
            await admin.close()
            for leaf in leaves:
                leaf.stop()
    cpu_per_change = {name: round((cpu_after[name] - cpu_before[name]) / rounds * 1000, 1) for name in cpu_pids}
    cpu_per_change["workers"] = round(statistics.mean(worker_cpu) * 1000, 1)
    cpu_per_change["workers_us_per_client"] = round(statistics.mean(worker_cpu) * 1e6 / (workers_n * clients_n), 1)
    return {
        "workers": workers_n,
        "clients_per_worker": clients_n,
        "clients": workers_n * clients_n,
        "rounds": rounds,
        "warmup_rounds": warmup,
        "pause_s": pause,
        "startup_s": round(startup, 2),
        "ramp": ramp,
        "leaves": leaves_n,
        "following_live": following,
        "memory": memory,
        "from_2xx": summary_ms(from_ack),
        "from_send": summary_ms(from_send),
        "applied_before_2xx_seen": before_ack,
        "first_client_of_worker_from_2xx": summary_ms(first_in_worker),
        "last_minus_first_in_worker": summary_ms(spread_in_worker),
        "cpu_ms_per_change": cpu_per_change,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--clients", type=int, default=250, help="clients per worker process")
    parser.add_argument("--rounds", type=int, default=20, help="measured changes (on, off, on...)")
    parser.add_argument("--warmup", type=int, default=2, help="changes made first and not counted")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--ramp", type=int, default=50, help="clients a worker starts at once")
    parser.add_argument("--leaves", type=int, default=0, help="leaf nodes the workers connect to (0: the hub)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    result = await run(args.workers, args.clients, args.rounds, args.pause, args.warmup, args.ramp, args.leaves)
    rows = [
        (name, result[field]["n"], result[field]["p50_ms"], result[field]["p99_ms"], result[field]["max_ms"])
        for name, field in (
            ("admin 2xx -> client applied", "from_2xx"),
            ("request sent -> client applied", "from_send"),
            ("admin 2xx -> first client of a worker", "first_client_of_worker_from_2xx"),
            ("last - first client within a worker", "last_minus_first_in_worker"),
        )
    ]
    print_table(
        f"Propagation to {result['clients']} clients ({result['workers']} processes x "
        f"{result['clients_per_worker']}), {result['rounds']} changes (ms)",
        ["measured", "samples", "p50", "p99", "max"],
        rows,
    )
    print(f"applied before the parent read the 2xx: {result['applied_before_2xx_seen']}")
    print(f"CPU ms per change: {result['cpu_ms_per_change']}; load average after: {result['loadavg_after']}")
    print(f"memory: {json.dumps(result['memory'])}")
    save("propagation_fleet", result)


if __name__ == "__main__":
    asyncio.run(main())
