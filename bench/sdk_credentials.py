"""SDK credentials through `flagstream up`: how long until nats-server takes a new one, and refuses a revoked one.

Starts `flagstream up` (its nats-server with users, its admin API) in a temporary folder, then, one at a time:

- ``create -> accepted``: from sending ``POST .../sdk-credentials`` until a login with it works (`up` follows the
  bucket, rewrites nats-server.conf and sends SIGHUP; the answer itself comes once the admin could log in with it,
  retried every 100 ms for up to 5 s: ``answered accepted`` counts the answers that said ``"accepted": true``);
- ``revoke -> refused``: from sending ``DELETE .../sdk-credentials/{id}`` until a login with it is refused
  (tried every 10 ms).

Each with ``--held`` NATS connections open as another SDK credential: at each reload nats-server checks every
connection's password again (bcrypt, cost 6), so a fleet connected makes each reload cost more.

    .venv/bin/python bench/sdk_credentials.py [--rounds 10] [--held 0,200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
from _common import print_table, summary_ms
from _common import write_results as save

PRODUCTION = "/api/v1/projects/default/environments/production/sdk-credentials"
NATS_LINE = re.compile(r"nats-server at (nats://127\.0\.0\.1:\d+)")


def start_up(folder: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    flagstream = str(Path(sys.executable).with_name("flagstream"))
    proc = subprocess.Popen(
        [flagstream, "up", "--data-dir", str(folder / ".flagstream"), "--port", "0", "--nats-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    nats_url = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := NATS_LINE.search(line):
            nats_url = m.group(1)
        if line.startswith("http://"):
            token = (folder / ".flagstream" / "operator-token").read_text().strip()
            return proc, line.strip(), nats_url, token
    raise SystemExit(f"flagstream up exited with {proc.wait()}")


async def _quiet(_: Exception) -> None:
    return None


async def refused(nats_url: str, user: str, password: str) -> bool:
    try:
        nc = await nats.connect(
            nats_url, user=user, password=password, allow_reconnect=False, connect_timeout=2, error_cb=_quiet
        )
    except Exception:
        return True
    await nc.close()
    return False


async def rounds(url: str, nats_url: str, token: str, n: int, held: int) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        fleet = (await http.post(PRODUCTION, json={"name": f"fleet-{held}"})).json()
        conns = [
            await nats.connect(nats_url, user=fleet["user"], password=fleet["password"], allow_reconnect=False)
            for _ in range(held)
        ]
        created, revoked, said = [], [], 0
        try:
            for i in range(n):
                start = time.perf_counter()
                made = await http.post(PRODUCTION, json={"name": f"bench-{held}-{i}"})
                cred = made.json()
                said += bool(cred["accepted"])
                while await refused(nats_url, cred["user"], cred["password"]):  # noqa: ASYNC110 (a poll)
                    await asyncio.sleep(0.01)
                created.append(time.perf_counter() - start)
                start = time.perf_counter()
                (await http.delete(f"{PRODUCTION}/{cred['id']}")).raise_for_status()
                while not await refused(nats_url, cred["user"], cred["password"]):  # noqa: ASYNC110 (a poll)
                    await asyncio.sleep(0.01)
                revoked.append(time.perf_counter() - start)
            still = sum(1 for c in conns if c.is_connected)
        finally:
            for c in conns:
                await c.close()
    return {"held": held, "still_connected": still, "answered_accepted": said, "create": summary_ms(created),
            "revoke": summary_ms(revoked)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--held", default="0,200", help="NATS connections held open, comma-separated")
    args = parser.parse_args()
    load = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="flagstream-bench-") as folder:
        proc, url, nats_url, token = start_up(Path(folder))
        try:
            for held in (int(h) for h in args.held.split(",")):
                results.append(asyncio.run(rounds(url, nats_url, token, args.rounds, held)))
        finally:
            proc.terminate()
            proc.wait(30)
    after = os.getloadavg()
    rows = []
    for r in results:
        for what in ("create", "revoke"):
            s = r[what]  # type: ignore[index]
            label = "create -> accepted" if what == "create" else "revoke -> refused"
            said = r["answered_accepted"] if what == "create" else "-"
            rows.append([label, r["held"], r["still_connected"], said, s["n"], s["p50_ms"], s["p99_ms"]])
    title = f"SDK credentials through flagstream up (load average {load[0]:.2f} before, {after[0]:.2f} after; 2 cores)"
    columns = ["what", "held", "still connected", "answered accepted", "n", "p50 ms", "p99 ms"]
    print_table(title, columns, rows)
    save("sdk_credentials", {"load_before": load, "load_after": after, "results": results})


if __name__ == "__main__":
    main()
