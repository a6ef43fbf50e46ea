"""Fleet telemetry at 10,000 instances with two admin replicas: what each replica's CPU costs, and whether the fleet
view and the evaluation counts are right on both.

Starts a nats-server and two ``flagstream admin`` processes (replicas of one service; the first up takes the
aggregator's lease, ``services/fleet/lead.py``), then one publisher process that stands for ``--instances`` SDK
instances: each sends, every ``--interval`` seconds (the SDK's default 10 s, spread evenly over the interval), the
same heartbeat and evaluation-count messages an SDK client sends (``flagstream.telemetry``: the real structs and
encoding), each instance evaluating ``--evals`` times per interval over 10 flags. Simulated rather than 10,000 real
clients, so that what is measured is the admin side alone (bench/propagation_fleet.py runs real clients).

Measured over ``--seconds`` after one warm-up interval: the CPU seconds of each admin process (from /proc) per
second of wall time, and at the end each replica's ``/fleet`` (connected instances) and ``/fleet/evaluations``
(totals) against what the publisher sent.

    .venv/bin/python bench/fleet_telemetry.py [--instances 10000] [--interval 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between two reports of an instance")
    parser.add_argument("--evals", type=int, default=100, help="evaluations per instance per interval")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds (after one interval)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    context = multiprocessing.get_context("spawn")
    with nats_server() as server, tempfile.TemporaryDirectory(prefix="flagstream-fleettel-") as folder:
        admins = []
        for i in range(2):
            (Path(folder) / f"a{i}").mkdir()
            admins.append(AdminProcess(server.url, Path(folder) / f"a{i}", "bench-flag"))
            await admins[-1].start(setup=i == 0)
        parent, child = context.Pipe()
        total = args.interval + args.seconds
        publishing = context.Process(
            target=publisher_main, args=(server.url, args.instances, args.interval, args.evals, total + args.interval,
                                         child), daemon=True)  # fmt: skip
        publishing.start()
        await asyncio.sleep(args.interval)  # one interval: every instance reported once
        pids = [a.process.pid for a in admins]
        cpu0 = [cpu_seconds(p) for p in pids]
        t0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1 = [cpu_seconds(p) for p in pids]
        wall = time.monotonic() - t0
        base = f"/environments/{ENVIRONMENT}/fleet"
        views = [(await a.http.get(base, params={"changes": 0})).json() for a in admins]
        rounds, sent = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        await asyncio.sleep(2.0)  # the last counts reach the aggregator
        evaluations = [(await a.http.get(f"{base}/evaluations")).json() for a in admins]
        for admin in admins:
            await admin.close()
        publishing.join(10)
    rows = []
    result: dict[str, Any] = {"instances": args.instances, "interval_s": args.interval, "seconds": round(wall, 1),
                              "publisher_rounds": rounds, "evaluations_sent": sent, "replicas": []}  # fmt: skip
    for i in range(2):
        counted = sum(f["total"] for f in evaluations[i]["flags"])
        cpu = (cpu1[i] - cpu0[i]) / wall
        replica = {"cpu_percent_of_a_core": round(cpu * 100, 1), "connected": len(views[i]["instances"]),
                   "evaluations_counted": counted}  # fmt: skip
        result["replicas"].append(replica)
        rows.append((f"admin {i + 1}", replica["cpu_percent_of_a_core"], replica["connected"], counted, sent))
    result["loadavg_after"] = os.getloadavg()
    print_table(
        f"Fleet telemetry: {args.instances} instances reporting every {args.interval:g} s, two admin replicas",
        ["replica", "CPU % of a core", "connected", "evaluations counted", "sent"],
        rows,
    )
    print(f"load average after: {result['loadavg_after']}")
    write_results("fleet_telemetry", result)


if __name__ == "__main__":
    asyncio.run(main())
