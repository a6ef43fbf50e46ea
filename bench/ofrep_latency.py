"""OFREP latency: what an application pays per remote evaluation through the admin service.

Starts its own nats-server and the admin service (a separate process, under uvicorn), creates FLAGS realistic
flags (one target, one rule) in ``production``, then over one keep-alive HTTP connection:

- ``first``: the first evaluation of the environment (the evaluator loads its live ruleset);
- ``single``: ``POST /ofrep/v1/evaluate/flags/{key}``, contexts varying per call;
- ``bulk``: ``POST /ofrep/v1/evaluate/flags`` (every flag), contexts varying;
- ``bulk 304``: the same bulk request with its ``If-None-Match`` (nothing changed);
- ``push``: a flag toggled through the admin API, from its 2xx to the ``refetchEvaluation`` event on an open
  ``GET /ofrep/v1/events`` stream (read on a second connection, in a thread);
- ``push + re-fetch``: from the 2xx until the bulk re-fetch (with ``flagConfigEtag``) has answered the new value:
  what a provider that follows the event stream sees, instead of a polling interval.

Client-observed wall time per request (HTTP on loopback included), sequential: a floor, not a throughput test.

    .venv/bin/python bench/ofrep_latency.py [--requests 2000] [--flags 50]
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time

import httpx
from _common import nats_server, print_table, realistic_flag, summary_ms
from _common import write_results as save

from flagstream.services.runtime.natsd import free_port

TOKEN = "fs_bench_operator_token_0123456789"


#: The admin app under plain ``uvicorn.run`` (host and port). When this was written, ``flagstream admin`` handed
#: uvicorn a socket made without ``IPPROTO_TCP``, so asyncio did not set TCP_NODELAY and every answer waited
#: ~40 ms on loopback (Nagle + delayed ACK); ``services/runtime/listen.py`` fixed that since, and this stays as it was.
SERVE = """
import sys, uvicorn
from flagstream.services.admin.app import create_app
app = create_app(nats_url=sys.argv[1], operator_token=sys.argv[3])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def start_admin(nats_url: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, nats_url, str(port), TOKEN], text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"the admin service did not start (exit code {proc.poll()})")


def seed(http: httpx.Client, flags: int) -> list[str]:
    api = "/api/v1/projects/default/environments"
    http.post(api, json={"key": "production"}).raise_for_status()
    keys = []
    for n in range(flags):
        flag = realistic_flag(f"flag-{n:03d}")
        body = {
            "key": flag.key,
            "on": True,
            "targets": [{"variation": "on", "values": ["qa-1", "qa-2"]}],
            "rules": [{"id": "nordics", "clauses": [{"attribute": "country", "op": "in",
                                                     "values": ["NO", "SE", "DK", "FI"]}],
                       "serve": {"variation": "on"}}],
            "fallthrough": {"variation": "off"},
        }  # fmt: skip
        http.post(f"{api}/production/flags", json=body).raise_for_status()
        keys.append(flag.key)
    return keys


def timed(call: object, n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


def listen(url: str, headers: dict[str, str], into: queue.Queue[tuple[float, dict[str, str]]]) -> threading.Event:
    """Read the production event stream in a thread: (arrival time, event data) per event; returns 'connected'."""
    connected = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=url, headers={**headers, "Accept": "text/event-stream"}, timeout=None) as sse:
            while True:  # the server ends a stream every 25 s; reconnect like an EventSource
                with sse.stream("GET", "/ofrep/v1/events?environment=production") as response:
                    for line in response.iter_lines():
                        connected.set()
                        if line.startswith("data:"):
                            into.put((time.perf_counter(), json.loads(line[5:])))

    threading.Thread(target=run, daemon=True).start()
    return connected


def pushes(http: httpx.Client, url: str, key: str, n: int) -> tuple[list[float], list[float]]:
    """(2xx to event, 2xx to re-fetched new value) for ``n`` toggles of flag ``key``."""
    events: queue.Queue[tuple[float, dict[str, str]]] = queue.Queue()
    if not listen(url, {"Authorization": http.headers["authorization"]}, events).wait(30):
        raise SystemExit("the OFREP event stream did not open")
    to_event, to_value = [], []
    on = True
    for _ in range(n):
        on = not on
        r = http.post(f"/api/v1/projects/default/environments/production/flags/{key}/{'on' if on else 'off'}", json={})
        answered = time.perf_counter()
        assert r.status_code == 200, r.text
        while True:  # a burst may have been coalesced: wait for the event of this write
            arrived, data = events.get(timeout=30)
            if int(data["etag"]) >= r.json()["version"]:
                break
        to_event.append(arrived - answered)
        body = http.post(f"/ofrep/v1/evaluate/flags?flagConfigEtag={data['etag']}", json={"context": {}}).json()
        assert {f["key"]: f for f in body["flags"]}[key]["reason"] == ("DEFAULT" if on else "DISABLED")
        to_value.append(time.perf_counter() - answered)
    return to_event, to_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--flags", type=int, default=50)
    args = parser.parse_args()

    with nats_server() as server:
        proc, url = start_admin(server.url)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
                keys = seed(http, args.flags)

                def context(i: int) -> dict[str, object]:
                    return {"context": {"targetingKey": f"user-{i}", "country": ("NO", "FR")[i % 2]}}

                def single(i: int) -> None:
                    r = http.post(f"/ofrep/v1/evaluate/flags/{keys[i % len(keys)]}", json=context(i))
                    assert r.status_code == 200, r.text

                def bulk(i: int) -> None:
                    r = http.post("/ofrep/v1/evaluate/flags", json=context(i))
                    assert r.status_code == 200, r.text

                etag = ""

                def not_modified(i: int) -> None:
                    r = http.post("/ofrep/v1/evaluate/flags", json=context(0), headers={"If-None-Match": etag})
                    assert r.status_code == 304, r.status_code

                first = timed(single, 1)
                results = {"first": summary_ms(first)}
                results["single"] = summary_ms(timed(single, args.requests))
                results["bulk"] = summary_ms(timed(bulk, max(1, args.requests // 5)))
                etag = http.post("/ofrep/v1/evaluate/flags", json=context(0)).headers["etag"]
                results["bulk 304"] = summary_ms(timed(not_modified, args.requests))
                to_event, to_value = pushes(http, url, keys[0], max(20, args.requests // 20))
                results["push"] = summary_ms(to_event)
                results["push + re-fetch"] = summary_ms(to_value)
        finally:
            proc.terminate()
            proc.wait(30)

    rows = [[name, r["n"], r["p50_ms"], r["p99_ms"], r["max_ms"]] for name, r in results.items()]
    print_table(
        f"OFREP over loopback HTTP, {args.flags} flags, one keep-alive connection, sequential",
        ["request", "n", "p50 ms", "p99 ms", "max ms"],
        rows,
    )
    save("ofrep_latency", {"flags": args.flags, "requests": args.requests, "results": results})


if __name__ == "__main__":
    main()
