"""What people cost the admin service: a password sign-in (Argon2id), and a request made with a session cookie
(two KV reads: the session, then the person) next to the same request made with an API token (one KV read).

Starts its own nats-server and the admin service (a separate process, under uvicorn), then, over one keep-alive
HTTP connection each, sequentially:

- ``sign-in``: ``POST /auth/password`` with the right password (Argon2id t=3, m=64 MiB, p=4, in a worker thread);
- ``read, token`` / ``read, session``: ``GET .../environments/production/flags/flag-000``;
- ``write, token`` / ``write, session``: a toggle of that flag (the session's with its CSRF token).

Client-observed wall time per request (HTTP on loopback included): a floor, not a throughput test.

    .venv/bin/python bench/sign_in.py [--requests 500] [--sign-ins 30]
"""

from __future__ import annotations

import argparse
import os

import httpx
from _common import nats_server, print_table, summary_ms
from _common import write_results as save
from ofrep_latency import TOKEN, start_admin, timed

PASSWORD = "a benchmark passphrase"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--sign-ins", type=int, default=30)
    args = parser.parse_args()
    load = os.getloadavg()
    with nats_server() as server:
        proc, url = start_admin(server.url)
        try:
            rows, results = run(url, args.requests, args.sign_ins)
        finally:
            proc.terminate()
            proc.wait(30)
    after = os.getloadavg()
    print_table(f"people (load average {load[0]:.2f} before, {after[0]:.2f} after; 2 cores)",
                ["what", "n", "p50 ms", "p99 ms"], rows)  # fmt: skip
    save("sign_in", {"load_before": load, "load_after": after, "results": results})


def run(url: str, requests: int, sign_ins: int) -> tuple[list[list[object]], dict[str, object]]:
    operator = {"Authorization": f"Bearer {TOKEN}"}
    flag = "/api/v1/projects/default/environments/production/flags/flag-000"
    with httpx.Client(base_url=url, headers=operator, timeout=30) as op:
        op.post("/api/v1/projects/default/environments", json={"key": "production"}).raise_for_status()
        op.post("/api/v1/projects/default/environments/production/flags", json={"key": "flag-000"}).raise_for_status()
        op.post("/api/v1/users", json={"login": "bench", "name": "Bench", "password": PASSWORD,
                                       "grants": [{"role": "writer"}]}).raise_for_status()  # fmt: skip
        token = op.post("/api/v1/tokens", json={"name": "bench", "role": "writer"}).json()["token"]
    results: dict[str, object] = {}
    with httpx.Client(base_url=url, timeout=30) as browser:
        body = {"login": "bench", "password": PASSWORD}

        def sign_in(_: int) -> None:
            browser.post("/auth/password", json=body).raise_for_status()

        results["sign-in"] = summary_ms(timed(sign_in, sign_ins))
        csrf = browser.post("/auth/password", json=body).json()["csrf"]
        results["read, session"] = summary_ms(timed(lambda _: browser.get(flag).raise_for_status(), requests))
        toggle = {"X-CSRF-Token": csrf}
        results["write, session"] = summary_ms(timed(
            lambda i: browser.post(f"{flag}/{'on' if i % 2 == 0 else 'off'}", headers=toggle).raise_for_status(),
            min(requests, 40)))  # fmt: skip
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        results["read, token"] = summary_ms(timed(lambda _: api.get(flag).raise_for_status(), requests))
        writes = min(requests, 40)  # under the write rate limit's burst (50)
        results["write, token"] = summary_ms(
            timed(lambda i: api.post(f"{flag}/{'on' if i % 2 == 0 else 'off'}").raise_for_status(), writes)
        )
    rows = [[k, v["n"], v["p50_ms"], v["p99_ms"]] for k, v in results.items()]  # type: ignore[index]
    return rows, results


if __name__ == "__main__":
    main()
