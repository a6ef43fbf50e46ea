"""docs/release.md runs as written: its Python block with a real SDK client, its shell blocks (``flagstream plans``)
in bash against a real ``flagstream admin``, and the option it names for Prometheus exists."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import httpx

from flagstream import FlagstreamClient
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, AdminProcess, auth_headers, until
from tests.release.helpers import ENV, ok, plan_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "release.md"
SHELL = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


async def test_the_release_guide_runs_as_written(nats_url: str, tmp_path: Path) -> None:
    text = DOC.read_text()
    shell = SHELL.findall(text)
    python = PYTHON.findall(text)
    assert len(shell) == 3
    assert len(python) == 1
    admin = AdminProcess(nats_url).start()
    try:
        async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=60) as http:
            await ok(http, "POST", "/api/v1/projects/default/environments", {"key": "production"}, 201)
            flag = {"key": "new-checkout", "on": True, "fallthrough": {"variation": "off"}}
            await ok(http, "POST", f"{ENV}/flags", flag, 201)
            # The guide's Python block, with a real client: the metrics it names become known to the admin.
            client = FlagstreamClient(nats_url, environment="production", track_interval=0.05)
            try:
                assert client.start(wait=15)
                exec(compile(python[0], "docs/release.md python block", "exec"), {"client": client})

                async def known() -> bool:
                    found = (await ok(http, "GET", f"{ENV}/metrics"))["metrics"]
                    return {"errors", "checkout-latency"} <= set(found)

                await until(known, "the guide's metrics known")
            finally:
                client.close()
            env = {**os.environ, "FLAGSTREAM_API": admin.url, "FLAGSTREAM_TOKEN": ADMIN_TOKEN}
            env.pop("FLAGSTREAM_ENV", None)
            env["PATH"] = f"{Path(FLAGSTREAM).parent}:{env.get('PATH', '')}"

            def run(block: str) -> subprocess.CompletedProcess[str]:
                done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
                assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
                return done

            created = await asyncio.to_thread(run, shell[0])
            assert "created release plan p" in created.stdout
            assert "new-checkout" in created.stdout
            plan_id = created.stdout.split("created release plan ", 1)[1].split()[0]
            await until(lambda: _at_step(http, plan_id), "the plan's first step")
            watched = await asyncio.to_thread(run, shell[1])
            assert "aborted" in watched.stdout
            assert "errors (count)" in watched.stdout  # the results block
            assert (await plan_of(http, plan_id))["status"] == "aborted"
    finally:
        admin.stop()
    # The third block starts an admin service with an option: the option is there.
    assert "flagstream admin --prometheus-url" in shell[2]
    helped = await asyncio.to_thread(
        subprocess.run, [FLAGSTREAM, "admin", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--prometheus-url" in helped.stdout


async def _at_step(http: httpx.AsyncClient, plan_id: str) -> bool:
    return int((await plan_of(http, plan_id))["step"]) >= 0
