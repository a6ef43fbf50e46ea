"""Prometheus guardrails against a real Prometheus (Debian's ``prometheus``, which ``make test`` installs) scraping a
test application every second: a query the server rejects is refused when the plan is created, naming the field;
a query whose value goes past its threshold during a step rolls the plan back, with the value in the evidence."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from flagstream.services.runtime.natsd import free_port
from tests.helpers import WithHistory, admin_with_history, until
from tests.release.helpers import ENV, flag_events, ok, plan_of, seed

pytestmark = pytest.mark.slow

PROMETHEUS = "/usr/bin/prometheus"


@contextlib.contextmanager
def application() -> Iterator[tuple[int, Gauge]]:
    """An application exposing ``app_error_ratio`` on ``/metrics`` (prometheus_client's text format)."""
    registry = CollectorRegistry()
    ratio = Gauge("app_error_ratio", "share of requests that failed", registry=registry)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], ratio
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def prometheus(tmp_path: Path, target_port: int) -> Iterator[str]:
    if shutil.which(PROMETHEUS) is None:
        pytest.fail(f"{PROMETHEUS} is not installed: `make test` installs Debian's prometheus package")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def setup(nats_url: str, tmp_path: Path) -> AsyncIterator[tuple[WithHistory, Gauge, str]]:
    with application() as (app_port, ratio), prometheus(tmp_path, app_port) as prom_url:
        ratio.set(0.01)

        async def scraped() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5) as http:
                    answer = await http.get(f"{prom_url}/api/v1/query", params={"query": "app_error_ratio"})
                return bool(answer.json()["data"]["result"])
            except (httpx.HTTPError, ValueError, KeyError):
                return False

        await until(scraped, "Prometheus scraping the test app")
        async with admin_with_history(
            nats_url, tmp_path, plan_poll=0.1, prometheus_url=prom_url, prometheus_every=0.5
        ) as api:
            yield api, ratio, prom_url


async def test_a_query_prometheus_rejects_is_refused_at_creation(
    setup: tuple[WithHistory, Gauge, str], nats_url: str
) -> None:
    api, _, _ = setup
    http = api.http
    await seed(http, nats_url)
    body = {"flag": "checkout", "variation": "on", "steps": [{"percent": 5, "hold": "1h"}, {"percent": 100}]}
    broken = {**body, "guardrails": [{"promql": "max(app_error_ratio", "threshold": 0.05}]}
    answer = await http.post(f"{ENV}/plans", json=broken)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error.startswith("$.guardrails[0].promql: Prometheus rejects this query: bad_data")
    assert answer.json()["problems"][0]["path"] == "$.guardrails[0].promql"
    no_threshold = {**body, "guardrails": [{"promql": "max(app_error_ratio)"}]}
    answer = await http.post(f"{ENV}/plans", json=no_threshold)
    assert answer.status_code == 422
    assert "$.guardrails[0].threshold" in answer.json()["error"]
    # Nothing was stored: a good query then makes the plan.
    good = {**body, "guardrails": [{"promql": "max(app_error_ratio)", "threshold": 0.05}]}
    await ok(http, "POST", f"{ENV}/plans", good, 201)


async def test_a_prometheus_guardrail_breached_rolls_the_plan_back(
    setup: tuple[WithHistory, Gauge, str], nats_url: str
) -> None:
    api, ratio, _ = setup
    http = api.http
    await seed(http, nats_url)
    body = {
        "flag": "checkout", "variation": "on", "steps": [{"percent": 10, "hold": "1h"}, {"percent": 100}],
        "guardrails": [{"promql": "max(app_error_ratio)", "threshold": 0.05}],
    }  # fmt: skip
    plan = await ok(http, "POST", f"{ENV}/plans", body, 201)

    async def watched() -> bool:  # the guardian asked Prometheus during the step, and all was well
        found = await plan_of(http, plan["id"])
        views = (found.get("watch") or {}).get("guardrails") or []
        return any(v["kind"] == "promql" and v["state"] == "ok" and v["value"] == pytest.approx(0.01) for v in views)

    await until(watched, "the PromQL guardrail evaluated during the step")
    ratio.set(0.2)  # the new variation's errors, as the app's own metrics show them

    async def rolled_back() -> bool:
        return (await plan_of(http, plan["id"]))["status"] in ("rolled_back", "completed", "failed")

    await until(rolled_back, "the rollback")
    done = await plan_of(http, plan["id"])
    assert done["status"] == "rolled_back"
    evidence = done["evidence"]
    assert (evidence["reason"], evidence["metric"], evidence["limit"]) == ("prometheus", "max(app_error_ratio)", 0.05)
    assert evidence["value"] == pytest.approx(0.2)
    assert "above its threshold 0.05" in evidence["text"]
    last = (await flag_events(nats_url, "checkout"))[-1]
    assert (last.actor, last.flag.fallthrough.variation) == ("guardian", "off")
