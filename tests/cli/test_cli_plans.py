"""``flagstream plans`` as a user runs it: real ``flagstream`` processes against a real ``flagstream admin``, with a
simulated application's SDK tracking errors, so that ``plans show`` has a rollback to tell about."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from flagstream import AsyncFlagstreamClient
from flagstream.services.cli.plans import guardrail, promql, steps
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, AdminProcess, auth_headers, until
from tests.release.app import SimulatedApp
from tests.release.helpers import ENV, ok, plan_of, seed

pytestmark = pytest.mark.slow


def cli(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLAGSTREAM_API": url, "FLAGSTREAM_TOKEN": ADMIN_TOKEN, "FLAGSTREAM_ENV": "production"}
    return subprocess.run([FLAGSTREAM, "plans", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_command_lines_words_become_the_apis_body() -> None:
    assert guardrail("errors:count:+0") == {"metric": "errors", "kind": "count", "bad": "increase", "max_change": 0.0}
    assert guardrail("latency_ms:mean:+10%") == {
        "metric": "latency_ms", "kind": "mean", "bad": "increase", "max_change_pct": 10.0,
    }  # fmt: skip
    assert guardrail("signups:proportion:-0.01")["bad"] == "decrease"
    assert promql("sum(rate(http_5xx_total[5m])) > 0.5") == {
        "promql": "sum(rate(http_5xx_total[5m]))", "bad": "increase", "threshold": 0.5,
    }  # fmt: skip
    assert promql("avg(up) < 1")["bad"] == "decrease"
    assert steps("5,25:manual,100", "30m") == [
        {"percent": 5.0, "hold": "30m"}, {"percent": 25.0, "hold": "manual"}, {"percent": 100.0},
    ]  # fmt: skip


async def test_create_watch_and_read_why_a_plan_was_rolled_back(nats_url: str, tmp_path: Path) -> None:
    admin = AdminProcess(nats_url).start()
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.2)
    try:
        async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=60) as http:
            await seed(http, nats_url)

            async def run(*args: str) -> subprocess.CompletedProcess[str]:
                return await asyncio.to_thread(cli, admin.url, *args, cwd=tmp_path)

            bad = await run("create", "checkout", "--variation", "on", "--steps", "5,100", "--guardrail", "errors:+1")
            assert bad.returncode == 1
            assert "expected METRIC:KIND:+CHANGE" in bad.stderr
            unknown = await run("create", "checkout", "--variation", "on", "--steps", "5,100", "--guardrail",
                                "errrors:count:+0")  # fmt: skip
            assert unknown.returncode == 1
            assert "$.guardrails[0].metric" in unknown.stderr
            assert "(HTTP 422)" in unknown.stderr
            assert (await run("metrics")).stdout.split() == ["errors"]

            assert await client.start(wait=15)
            app = SimulatedApp(client, "checkout", rates={"on": 0.3}, base=0.01, rate=400, users=2_000)
            stop = asyncio.Event()
            task = asyncio.create_task(app.run(stop))
            try:
                options = ("--guardrail", "errors:count:+0", "--min-users", "30", "--comment", "new checkout")
                made = await run("create", "checkout", "--variation", "on", "--steps", "20:1h,100", *options, "--json")
                assert made.returncode == 0, made.stderr
                plan_id = json.loads(made.stdout)["id"]
                listed = await run("list")
                assert plan_id in listed.stdout

                async def rolled_back() -> bool:
                    return (await plan_of(http, plan_id))["status"] in ("rolled_back", "completed", "failed")

                await until(rolled_back, "the guardian's rollback")
                results = await run("results", "checkout", "--metric", "errors")
            finally:
                stop.set()
                await task
            shown = await run("show", plan_id)
            assert shown.returncode == 0, shown.stderr
            assert "checkout: on instead of off, rolled_back, step 1/2 (20%)" in shown.stdout
            assert "rolled back by guardian: errors (events per user) rose by" in shown.stdout
            assert "error rate 0.05, split by_step (per step, each tracked guardrail / the sample ratio test: " \
                   "1: 0.04 / 0.01)" in shown.stdout  # fmt: skip
            assert "plan.rolled_back" in shown.stdout
            assert "errors (count)" in results.stdout
            assert "not counted:" in results.stdout
            again = await run("abort", plan_id)
            assert again.returncode == 1
            assert "rolled_back: it cannot be aborted" in again.stderr
            await ok(http, "GET", f"{ENV}/plans/{plan_id}")
    finally:
        await client.close()
        admin.stop()
