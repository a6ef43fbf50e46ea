"""A client's work per live change: CPU and instructions per SDK client and change, the load-independent figure
behind ``propagation_fleet.py``'s latency.

Starts its own nats-server and the admin API (as ``propagation_fleet.py``), then ONE child process holding
``--clients`` ``AsyncFlagstreamClient`` (``telemetry=False``) that follow the environment live. The parent turns
the flag on and off ``--changes`` times through the admin API; after each change the child reports once all of
its clients applied it (their ``on_change`` listener ran). Reported:

- CPU per change per client: the child's ``time.process_time()`` over the changes, divided by changes x clients
  (a busy machine moves it little: CPU seconds, not wall time);
- with ``--instructions`` (valgrind's cachegrind, ``apt-get install valgrind``): the child runs twice under
  cachegrind, once with the changes and once without (start-up and following only); the difference divided by
  changes x clients is the instructions per change per client, a figure a busy machine does not move;
- with ``--profile FILE``: the child runs under cProfile (written to FILE, for ``python -m pstats``).

    .venv/bin/python bench/live_path_cost.py                                  # 200 clients, 40 changes, ~20 s
    .venv/bin/python bench/live_path_cost.py --clients 100 --changes 20 --instructions   # ~2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ENVIRONMENT, AdminProcess, nats_server, print_table, write_results

KEY = "bench-live-path"
SCRIPT = str(Path(__file__).resolve())


# -- the child: the clients ---------------------------------------------------------------------------------


async def child(url: str, clients_n: int, changes: int) -> None:
    from flagstream import AsyncFlagstreamClient

    clients = [AsyncFlagstreamClient(url, environment=ENVIRONMENT, telemetry=False) for _ in range(clients_n)]
    for i in range(0, clients_n, 50):
        ready = await asyncio.gather(*(c.start(wait=120) for c in clients[i : i + 50]))
        assert all(ready), "a client did not become ready"
    for _ in range(1200):
        if all(c._source.following_live for c in clients):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit("the clients did not all follow live")
    applied = [0]
    done = asyncio.Event()

    def listener(key: str, old: Any, new: Any) -> None:
        applied[0] += 1
        if applied[0] == clients_n:
            applied[0] = 0
            done.set()

    for c in clients:
        c.on_change(KEY, listener)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    cpu = 0.0
    for i in range(changes):
        await done.wait()
        done.clear()
        if i == 0:
            cpu = time.process_time()  # the first change is the warm-up
        out.write("applied\n")
        out.flush()
    cpu = time.process_time() - cpu
    out.write(f"cpu {cpu!r}\n")
    out.flush()
    await asyncio.gather(*(c.close() for c in clients))


# -- the parent ---------------------------------------------------------------------------------------------


async def measure(url: str, admin: AdminProcess, clients_n: int, changes: int, prefix: list[str]) -> dict[str, Any]:
    """Run the child (under ``prefix``, e.g. valgrind), make ``changes`` changes, return what it reported."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    process = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        SCRIPT,
        "--child",
        url,
        str(clients_n),
        str(changes),
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None

    async def line() -> str:
        text = (await asyncio.wait_for(process.stdout.readline(), 1800)).decode().strip()  # type: ignore[union-attr]
        if not text:
            raise RuntimeError(f"the child stopped (exit {await process.wait()})")
        return text

    assert await line() == "ready"
    started = time.perf_counter()
    for i in range(changes):
        await admin.toggle(i % 2 == 0)
        assert await line() == "applied"
    wall = time.perf_counter() - started
    cpu = float((await line()).split()[1]) if changes else 0.0
    await process.wait()
    return {"cpu_s": cpu, "wall_s": wall}


def cachegrind_total(out: Path) -> int:
    """Total instructions (Ir) of a cachegrind output file."""
    for text in reversed(out.read_text().splitlines()):
        if text.startswith("summary:"):
            return int(text.split()[1])
    raise RuntimeError(f"no summary in {out}")


async def run(clients_n: int, changes: int, instructions: bool, profile: str | None) -> dict[str, Any]:
    with nats_server() as server, tempfile.TemporaryDirectory(prefix="flagstream-live-") as folder:
        admin = AdminProcess(server.url, Path(folder), KEY)
        await admin.start()
        try:
            measured = await measure(server.url, admin, clients_n, changes, [])
            per = (changes - 1) * clients_n
            result: dict[str, Any] = {
                "clients": clients_n,
                "changes": changes,
                "cpu_us_per_change_per_client": round(measured["cpu_s"] / per * 1e6, 1),
                "loadavg": os.getloadavg(),
            }
            if profile:
                await profile_child(server.url, admin, clients_n, changes, profile)
            if instructions:
                if shutil.which("valgrind") is None:
                    raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
                totals = []
                for n in (0, changes):  # start-up alone, then start-up and the changes: the difference is theirs
                    out = Path(folder) / f"cachegrind-{n}.out"
                    vg = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", "-q"]
                    await measure(server.url, admin, clients_n, n, vg)
                    totals.append(cachegrind_total(out))
                result["instructions_per_change_per_client"] = round((totals[1] - totals[0]) / changes / clients_n)
            return result
        finally:
            await admin.close()


async def profile_child(url: str, admin: AdminProcess, clients_n: int, changes: int, path: str) -> None:
    """The child once more under cProfile (its ``-o`` file is ``path``)."""
    env = dict(os.environ, FLAGSTREAM_LIVE_PROFILE=path)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--child",
        url,
        str(clients_n),
        str(changes),
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert (await process.stdout.readline()).strip() == b"ready"
    for i in range(changes):
        await admin.toggle(i % 2 == 0)
        assert (await process.stdout.readline()).strip() == b"applied"
    await process.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, clients_n, changes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        path = os.environ.get("FLAGSTREAM_LIVE_PROFILE")
        if path:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(child(url, clients_n, changes))
            profiler.disable()
            profiler.dump_stats(path)
        else:
            asyncio.run(child(url, clients_n, changes))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="clients in the measured process")
    parser.add_argument("--changes", type=int, default=40, help="changes (the first is not counted for CPU)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with cachegrind")
    parser.add_argument("--profile", help="also run the child under cProfile, writing this file")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    result = asyncio.run(run(args.clients, args.changes, args.instructions, args.profile))
    rows = [(k, v) for k, v in result.items()]
    print_table(f"A client's work per live change ({args.clients} clients in one process)", ["", "value"], rows)
    write_results("live_path_cost", result)


if __name__ == "__main__":
    main()
