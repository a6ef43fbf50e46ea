"""Client-side apps (browsers) through the client door: throughput of one admin process, and a change's way to a
page (docs/clientside.md).

- ``throughput``: FLAGS flags available to client-side apps; BROWSERS simulated browsers, each its own client
  address (127.0.x.y: the loopback range is all this machine's) and keep-alive connection, each evaluating every
  flag (``POST /client/<key>/ofrep/v1/evaluate/flags``, its own targeting key) again as soon as it has the answer,
  for SECONDS. Spread over WORKERS load processes (plain asyncio sockets: the load costs as little CPU as can be,
  but it shares the 2 cores with the admin). Requests per second of the one admin process, and the latency each
  browser saw. ``--revalidate``: with the ``If-None-Match`` of the previous answer (a 304, as a provider's
  refresh when nothing changed). The per-key limit is raised for the run (the default, 2,000/s per process, is a
  guard, not the capacity); each browser stays under the per-address default.
- ``change to page``: PAGES pages of another origin in Chromium, OpenFeature's web SDK and OFREP web provider (the
  test page of tests/clientside, bundled by esbuild) following the event stream. A flag's value changed through
  the API CHANGES times, INTERVAL apart (the pages all connect from 127.0.0.1: each change costs that address one
  re-fetch per page, and it stays under the default per-address limit); from the write's 2xx to each page's
  render of the new value (the page's own clock).

    .venv/bin/python bench/clientside.py [--browsers 1000] [--seconds 20] [--workers 2] [--pages 5] [--changes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import nats_server, percentile, print_table
from _common import write_results as save

from flagstream.services.runtime.natsd import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKEN = "fs_bench_operator_token_0123456789"
ENV = "/api/v1/environments/production"


def start_admin(nats_url: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("flagstream")), "admin", "--nats-url", nats_url, "--port", str(port),
         "--log-level", "warning", "--client-key-rate", "1000000"],
        env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": TOKEN}, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the admin did not start")


def setup(url: str, flags: int, origins: list[str]) -> str:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
        api.post("/api/v1/environments", json={"key": "production"}).raise_for_status()
        for i in range(flags):
            body: dict[str, Any] = {
                "key": f"flag-{i:02d}", "client_side": True, "on": True, "fallthrough": {"variation": "off"},
                "targets": [{"variation": "on", "values": ["qa-1", "qa-2"]}],
                "rules": [{"id": "nordics", "clauses": [{"attribute": "country", "op": "in",
                                                         "values": ["NO", "SE", "DK", "FI"]}],
                           "serve": {"variation": "on"}}],
            }  # fmt: skip
            if i == 0:
                body.update(kind="string", variations=[{"key": "a", "value": "a"}, {"key": "b", "value": "b"}],
                            off_variation="a", fallthrough={"variation": "a"}, targets=[], rules=[])  # fmt: skip
            api.post(f"{ENV}/flags", json=body).raise_for_status()
        made = api.post(f"{ENV}/client-keys", json={"name": "bench", "origins": origins})
        made.raise_for_status()
        return str(made.json()["key"])


# -- throughput --------------------------------------------------------------------------------------------


def _address(index: int) -> str:
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def _browser(index: int, port: int, path: str, revalidate: bool, until: float, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(_address(index), 0))
    body = json.dumps({"context": {"targetingKey": f"browser-{index}", "country": "NO" if index % 2 else "US"}})
    etag = ""
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < until:
            extra = f"If-None-Match: {etag}\r\n" if revalidate and etag else ""
            request = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://shop.example.com\r\n"
                f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}"
            )
            started = loop.time()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"etag":
                    etag = value.strip().decode()
            if length:
                await reader.readexactly(length)
            out["latencies"].append(loop.time() - started)
            out["statuses"][status] = out["statuses"].get(status, 0) + 1
    finally:
        writer.close()


def _worker(first: int, count: int, port: int, path: str, revalidate: bool, start_at: float, seconds: float,
            results: Any) -> None:  # fmt: skip
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"latencies": [], "statuses": {}}
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        until = loop.time() + seconds
        await asyncio.gather(*(_browser(first + i, port, path, revalidate, until, out) for i in range(count)))
        return out

    results.put(asyncio.run(main()))


def throughput(url: str, key: str, browsers: int, workers: int, seconds: float, revalidate: bool) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    path = f"/client/{key}/ofrep/v1/evaluate/flags"
    results: Any = multiprocessing.Queue()
    start_at = time.time() + 3
    share = browsers // workers
    procs = [
        multiprocessing.Process(target=_worker, args=(w * share, share if w < workers - 1 else browsers - w * share,
                                                      port, path, revalidate, start_at, seconds, results))
        for w in range(workers)
    ]  # fmt: skip
    for p in procs:
        p.start()
    collected = [results.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = [x for c in collected for x in c["latencies"]]
    statuses: dict[int, int] = {}
    for c in collected:
        for status, n in c["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "browsers": browsers, "seconds": seconds, "requests": len(latencies),
        "requests_per_second": round(len(latencies) / seconds), "statuses": statuses,
        "latency_ms": {"p50": round(percentile(latencies, 50) * 1000, 1),
                       "p99": round(percentile(latencies, 99) * 1000, 1)},
    }  # fmt: skip


# -- change to page ----------------------------------------------------------------------------------------


async def change_to_page(url: str, key_of: Any, pages: int, changes: int, interval: float) -> dict[str, Any]:
    import playwright.async_api as playwright_api
    from starlette.applications import Starlette
    from starlette.staticfiles import StaticFiles

    from tests.clientside.build import bundle
    from tests.helpers import serving
    from tests.ui.conftest import ARGS, CHROMIUM

    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        site_app = Starlette()
        site_app.mount("/", StaticFiles(directory=bundle(Path(folder)), html=True))
        async with serving(site_app) as site, playwright_api.async_playwright() as p:
            key = key_of(site)
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            opened = []
            for _ in range(pages):
                page = await (await browser.new_context()).new_page()
                query = f"base={url}/client/{key}&flags=flag-00:string&mode=sse"
                await page.goto(f"{site}/index.html?{query}")
                await playwright_api.expect(page.locator("#status")).to_have_text("ready", timeout=30_000)
                opened.append(page)
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                for i in range(changes):
                    await asyncio.sleep(interval)  # the pages share one client address: stay under its limit
                    value = "b" if i % 2 == 0 else "a"
                    answer = await api.patch(f"{ENV}/flags/flag-00", json={"fallthrough": {"variation": value}})
                    answer.raise_for_status()
                    written = time.time() * 1000
                    for page in opened:
                        handle = await page.wait_for_function(
                            "([n, v]) => { const r = window.flagstreamRenders; "
                            "return r.length > n && r[r.length - 1].text === v ? r[r.length - 1].at : null; }",
                            arg=[i, value], timeout=30_000, polling=5,
                        )  # fmt: skip
                        latencies.append((await handle.json_value()) - written)
            await browser.close()
    return {"pages": pages, "changes": changes,
            "ms": {"p50": round(percentile(latencies, 50), 1), "p99": round(percentile(latencies, 99), 1),
                   "max": round(max(latencies), 1)}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--browsers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--flags", type=int, default=50)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.4, help="seconds between two changes")
    parser.add_argument("--skip-pages", action="store_true", help="throughput only")
    args = parser.parse_args()
    load = os.getloadavg()
    with nats_server() as server:
        proc, url = start_admin(server.url)
        try:
            key = setup(url, args.flags, ["https://shop.example.com"])
            results: dict[str, Any] = {"load_before": [round(x, 2) for x in load]}
            for revalidate in (False, True):
                name = "bulk 304" if revalidate else "bulk 200"
                results[name] = throughput(url, key, args.browsers, args.workers, args.seconds, revalidate)
                results[name]["load_after"] = [round(x, 2) for x in os.getloadavg()]
                print(name, results[name], flush=True)
            if not args.skip_pages:

                def key_of(site: str) -> str:
                    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                        made = api.post(f"{ENV}/client-keys", json={"name": "pages", "origins": [site]})
                        made.raise_for_status()
                        return str(made.json()["key"])

                pages = change_to_page(url, key_of, args.pages, args.changes, args.interval)
                results["change to page"] = asyncio.run(pages)
                results["change to page"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            proc.terminate()
            proc.wait(30)
    rows = [(name, r["requests_per_second"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["statuses"],
             r["load_after"]) for name, r in results.items() if name.startswith("bulk")]  # fmt: skip
    print_table(
        f"client door, {args.flags} client-side flags, {args.browsers} browsers, one admin process",
        ("answer", "requests/s", "p50 ms", "p99 ms", "statuses", "load after"),
        rows,
    )
    if "change to page" in results:
        c = results["change to page"]
        print_table(
            "a change through the API to a page (event stream)",
            ("pages", "changes", "p50 ms", "p99 ms"),
            [(c["pages"], c["changes"], c["ms"]["p50"], c["ms"]["p99"])],
        )
    print(f"load average before: {results['load_before']}")
    save("clientside", results)


if __name__ == "__main__":
    main()
