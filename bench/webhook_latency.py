#!/usr/bin/env python3
"""Webhook latency: from a change's 2xx to its POST arriving at your endpoint.

Starts its own nats-server, ``flagstream admin`` (a child process) and a receiving HTTP server in this process (a
thread, answering 204), creates a webhook to it, then toggles a flag ``--changes`` times, one change at a time:
for each, the time from the admin's 2xx (and from sending the request) until the receiver has that change's
POST (matched by its sequence). The delivery path: the webhook's durable consumer, a pull by the admin, the
previous state by one direct get (for ``changes``), the signed POST, the acknowledgement.

    .venv/bin/python bench/webhook_latency.py [--changes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import ENVIRONMENT, AdminProcess, nats_server, print_table, summary_ms
from _common import write_results as save

KEY = "bench-webhook"


class Arrivals:
    """Arrival times of deliveries by stream sequence, filled by the receiver's threads."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.cond = threading.Condition()

    def record(self, seq: int) -> None:
        with self.cond:
            self.at.setdefault(seq, time.perf_counter())
            self.cond.notify_all()

    def wait(self, seq: int, timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: seq in self.at, timeout):
                raise TimeoutError(f"change {seq} not delivered within {timeout} s")
            return self.at[seq]


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.record(json.loads(body)["seq"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def run(changes: int) -> dict[str, object]:
    arrivals = Arrivals()
    http_server = receiver(arrivals)
    with nats_server() as nats, tempfile.TemporaryDirectory(prefix="flagstream-bench-") as folder:
        admin = AdminProcess(nats.url, Path(folder), KEY)
        await admin.start()
        try:
            url = f"http://127.0.0.1:{http_server.server_address[1]}/hook"
            root = str(admin.http.base_url).split("/api/")[0]
            hook = await admin.http.post(f"{root}/api/v1/webhooks", json={"url": url, "kinds": ["flag"]})
            assert hook.status_code == 201, hook.text
            from_2xx: list[float] = []
            from_send: list[float] = []
            for n in range(changes):
                sent = time.perf_counter()
                action = "on" if n % 2 == 0 else "off"
                response = await admin.http.post(f"/environments/{ENVIRONMENT}/flags/{KEY}/{action}")
                answered = time.perf_counter()
                assert response.is_success, response.text
                arrived = await asyncio.to_thread(arrivals.wait, response.json()["version"])
                from_2xx.append(max(0.0, arrived - answered))
                from_send.append(arrived - sent)
        finally:
            await admin.close()
            http_server.shutdown()
    results = {"changes": changes, "from_2xx": summary_ms(from_2xx), "from_send": summary_ms(from_send)}
    rows = [
        (name, r["n"], r["p50_ms"], r["p99_ms"], r["max_ms"])  # type: ignore[index]
        for name, r in (("admin 2xx -> POST at the endpoint", results["from_2xx"]),
                        ("request sent -> POST at the endpoint", results["from_send"]))
    ]  # fmt: skip
    print_table("Webhook delivery, one change at a time (ms)", ("measured", "n", "p50", "p99", "max"), rows)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200, help="flag toggles, one at a time (default: 200)")
    args = parser.parse_args()
    save("webhook_latency", asyncio.run(run(args.changes)))


if __name__ == "__main__":
    main()
