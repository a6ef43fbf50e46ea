"""Fleet telemetry at 10,000 instances with two admin replicas: what each replica's CPU costs, and whether the fleet
view and the evaluation counts are right on both.

Starts a nats-server and two ``flagstream admin`` processes (replicas of one service; the first up takes the
aggregator's lease, ``services/fleet/lead.py``), then one publisher process that stands for ``--instances`` SDK
instances: each sends, every ``--interval`` seconds (the SDK's default 10 s, spread evenly over the interval), the
same heartbeat and evaluation-count messages an SDK client sends (``flagstream.telemetry``: the real structs and
encoding), each instance evaluating ``--evals`` times per interval over 10 flags. Simulated rather than 10,000 real
clients, so that what is measured is the admin side alone (bench/propagation_fleet.py runs real clients).

The messages go through the fleet's telemetry stream (``services/fleet/stream.py``): nats-server stores them, the
aggregator pulls them in batches. Measured over ``--seconds`` after one warm-up interval: the CPU seconds of each
admin process and of nats-server (from /proc) per second of wall time, the aggregator's backlog (its
``flagstream_fleet_telemetry_backlog``, sampled every 2 s); at the end of it each replica's ``/fleet`` (connected
instances); once the publisher stopped, each replica's ``/fleet/evaluations`` (totals) against what the publisher
sent, waited for until they match (the time it took is printed), up to ``--drain`` seconds.
``--stop-aggregator S``: halfway through, the aggregator is stopped (SIGSTOP) for S seconds and continued, as a
process starved of CPU is (S under the lease's 10 s: it keeps aggregating; longer: the other replica takes over).

    .venv/bin/python bench/fleet_telemetry.py [--instances 10000] [--interval 10] [--seconds 60] [--stop-aggregator 5]

(the defaults: about 2 minutes in all).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ENVIRONMENT, PROJECT, AdminProcess, nats_server, print_table, write_results

FLAGS = [f"flag-{i}" for i in range(10)]


def publisher_main(url: str, instances: int, interval: float, evals: int, seconds: float, conn: Any) -> None:
    asyncio.run(publisher(url, instances, interval, evals, seconds, conn))


async def publisher(url: str, instances: int, interval: float, evals: int, seconds: float, conn: Any) -> None:
    import nats

    from flagstream.events.telemetry import (
        EvaluationCounts,
        FlagCount,
        Heartbeat,
        counts_subject,
        encode_telemetry,
        heartbeat_subject,
    )

    nc = await nats.connect(url)
    ids = [uuid.uuid4().hex for _ in range(instances)]
    started_at = datetime.now(UTC)
    hb_subject, counts_subj = heartbeat_subject(PROJECT, ENVIRONMENT), counts_subject(PROJECT, ENVIRONMENT)
    sent_counts = 0
    rounds = 0
    deadline = time.monotonic() + seconds
    since = datetime.now(UTC)
    per_flag = evals // len(FLAGS)
    while time.monotonic() < deadline:
        round_started = time.monotonic()
        now = datetime.now(UTC)
        for i, instance in enumerate(ids):
            beat = Heartbeat(
                instance_id=instance, sdk_version="bench", project=PROJECT, environment=ENVIRONMENT, seq=1,
                applied=(), started_at=started_at, sent_at=datetime.now(UTC), status="READY",
            )  # fmt: skip
            flag_counts = tuple(FlagCount(flag=f, variation="on", count=per_flag) for f in FLAGS)
            counts = EvaluationCounts(
                instance_id=instance, project=PROJECT, environment=ENVIRONMENT, since=since, until=now,
                counts=flag_counts,
            )  # fmt: skip
            await nc.publish(hb_subject, encode_telemetry(beat))
            await nc.publish(counts_subj, encode_telemetry(counts))
            sent_counts += per_flag * len(FLAGS)
            if i % 100 == 99:  # spread over the interval, as instances started at random times are
                await nc.flush()
                target = round_started + interval * (i + 1) / instances
                await asyncio.sleep(max(0.0, target - time.monotonic()))
        since = now
        rounds += 1
        await asyncio.sleep(max(0.0, round_started + interval - time.monotonic()))
    await nc.flush()
    await nc.close()
    conn.send((rounds, sent_counts))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def scrape(admin: AdminProcess) -> str:
    url = admin.http.base_url
    return (await admin.http.get(f"{url.scheme}://{url.host}:{url.port}/metrics")).text


async def totals(admins: list[AdminProcess]) -> list[int | None]:
    out: list[int | None] = []
    for admin in admins:
        response = await admin.http.get(f"/environments/{ENVIRONMENT}/fleet/evaluations")
        out.append(sum(f["total"] for f in response.json()["flags"]) if response.status_code == 200 else None)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between two reports of an instance")
    parser.add_argument("--evals", type=int, default=100, help="evaluations per instance per interval")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds (after one interval)")
    parser.add_argument("--stop-aggregator", type=float, default=5.0, help="SIGSTOP the aggregator this long (0: not)")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the counts at the end")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    context = multiprocessing.get_context("spawn")
    with nats_server() as server, tempfile.TemporaryDirectory(prefix="flagstream-fleettel-") as folder:
        admins = []
        for i in range(2):
            (Path(folder) / f"a{i}").mkdir()
            admins.append(AdminProcess(server.url, Path(folder) / f"a{i}", "bench-flag"))
            await admins[-1].start(setup=i == 0)
        aggregating = [metric(await scrape(a), "flagstream_fleet_aggregating") for a in admins]
        leader = aggregating.index(1.0)
        parent, child = context.Pipe()
        total = args.interval + args.seconds
        publishing = context.Process(
            target=publisher_main, args=(server.url, args.instances, args.interval, args.evals, total + args.interval,
                                         child), daemon=True)  # fmt: skip
        publishing.start()
        await asyncio.sleep(args.interval)  # one interval: every instance reported once
        assert server.process is not None
        pids = [a.process.pid for a in admins] + [server.process.pid]
        cpu0 = [cpu_seconds(p) for p in pids]
        t0 = time.monotonic()
        backlog_max = 0.0
        stopped = False
        while (elapsed := time.monotonic() - t0) < args.seconds:
            if args.stop_aggregator and not stopped and elapsed >= (args.seconds - args.stop_aggregator) / 2:
                stopped = True
                print(f"stopping the aggregator (admin {leader + 1}) for {args.stop_aggregator:g} s", flush=True)
                os.kill(admins[leader].process.pid, signal.SIGSTOP)
                await asyncio.sleep(args.stop_aggregator)
                os.kill(admins[leader].process.pid, signal.SIGCONT)
                continue
            backlogs = []
            for admin in admins:
                with contextlib.suppress(Exception):
                    backlogs.append(metric(await scrape(admin), "flagstream_fleet_telemetry_backlog"))
            backlog_max = max(backlog_max, *(b or 0 for b in backlogs))
            print(f"  {elapsed:5.1f} s: the aggregator's backlog {max(b or 0 for b in backlogs):g}", flush=True)
            await asyncio.sleep(min(2.0, max(0.0, args.seconds - (time.monotonic() - t0))))
        cpu1 = [cpu_seconds(p) for p in pids]
        wall = time.monotonic() - t0
        base = f"/environments/{ENVIRONMENT}/fleet"
        views = [(await a.http.get(base, params={"changes": 0})).json() for a in admins]
        rounds, sent = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        drain_started = time.monotonic()
        counted = await totals(admins)
        while counted != [sent, sent] and time.monotonic() - drain_started < args.drain:
            print(f"  {time.monotonic() - drain_started:5.1f} s: counted {counted} of {sent}", flush=True)
            await asyncio.sleep(0.5)
            counted = await totals(admins)
        drained = time.monotonic() - drain_started
        stats = [await scrape(a) for a in admins]
        for admin in admins:
            await admin.close()
        publishing.join(10)
    rows = []
    loadavg_after = os.getloadavg()
    result: dict[str, Any] = {"instances": args.instances, "interval_s": args.interval, "seconds": round(wall, 1),
                              "stop_aggregator_s": args.stop_aggregator, "publisher_rounds": rounds,
                              "evaluations_sent": sent, "backlog_max": backlog_max,
                              "counts_complete_after_s": round(drained, 1), "replicas": []}  # fmt: skip
    for i in range(2):
        cpu = (cpu1[i] - cpu0[i]) / wall
        replica = {"aggregator": i == leader, "cpu_percent_of_a_core": round(cpu * 100, 1),
                   "connected": len(views[i]["instances"]), "evaluations_counted": counted[i],
                   "handled": metric(stats[i], "flagstream_fleet_telemetry_handled_total"),
                   "duplicates_skipped": metric(stats[i], "flagstream_fleet_telemetry_duplicates_total"),
                   "nats_reconnects": metric(stats[i], "flagstream_nats_reconnects_total"),
                   "slow_consumers": metric(stats[i], "flagstream_nats_slow_consumers_total")}  # fmt: skip
        result["replicas"].append(replica)
        role = "aggregator" if i == leader else "asks it"
        rows.append((f"admin {i + 1} ({role})", replica["cpu_percent_of_a_core"], replica["connected"], counted[i],
                     sent))  # fmt: skip
    result["nats_server_cpu_percent_of_a_core"] = round((cpu1[2] - cpu0[2]) / wall * 100, 1)
    result["loadavg_after"] = loadavg_after
    print_table(
        f"Fleet telemetry: {args.instances} instances reporting every {args.interval:g} s, two admin replicas",
        ["replica", "CPU % of a core", "connected", "evaluations counted", "sent"],
        rows,
    )
    print(f"nats-server: {result['nats_server_cpu_percent_of_a_core']}% of a core; aggregator's backlog at most "
          f"{backlog_max:g} messages; counts complete {drained:.1f} s after the publisher stopped")  # fmt: skip
    print(f"load average after: {loadavg_after}")
    write_results("fleet_telemetry", result)


if __name__ == "__main__":
    asyncio.run(main())
