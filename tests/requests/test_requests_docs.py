"""docs/requests.md runs as written: its shell blocks in bash against a real ``flagstream admin`` (the setting,
a change held, another person approving and applying it, the kill switch, a request of several writes by curl),
and what they print is what the guide shows."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import httpx
import nats

from flagstream.events import STREAM
from flagstream.services.changes import EventStore
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, AdminProcess, auth_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "requests.md"
SHELL = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
TEXT = re.compile(r"^```text\n(.*?)^```", re.S | re.M)
PROD = "/api/v1/projects/default/environments/production"


async def test_the_change_requests_guide_runs_as_written(nats_url: str, tmp_path: Path) -> None:
    text = DOC.read_text()
    setting, held, review, kill, several = SHELL.findall(text)
    [printed] = TEXT.findall(text)
    admin = AdminProcess(nats_url).start()
    try:
        async with httpx.AsyncClient(base_url=admin.url, headers=auth_headers(), timeout=60) as http:
            created = await http.post("/api/v1/projects/default/environments", json={"key": "production"})
            assert created.status_code == 201, created.text
            for key in ("new-checkout", "new-search"):
                assert (await http.post(f"{PROD}/flags", json={"key": key})).status_code == 201
            tokens = {}
            for name in ("ann", "bob"):
                made = await http.post("/api/v1/tokens", json={"name": name, "role": "writer"})
                tokens[f"{name.upper()}_TOKEN"] = made.json()["token"]
            env = {**os.environ, "FLAGSTREAM_API": admin.url, "FLAGSTREAM_TOKEN": ADMIN_TOKEN, **tokens}
            env.pop("FLAGSTREAM_ENV", None)
            env["PATH"] = f"{Path(FLAGSTREAM).parent}:{env.get('PATH', '')}"

            def run(block: str) -> str:
                done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
                assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
                return done.stdout

            async def flag(key: str) -> dict[str, object]:
                return (await http.get(f"{PROD}/flags/{key}")).json()["flag"]  # type: ignore[no-any-return]

            said = await asyncio.to_thread(run, setting)
            assert "environment production: changes need 1 approval (by writer, group:sre)" in said
            assert "a flag may be turned off at once" in said

            said = await asyncio.to_thread(run, held)
            shape = re.sub(r"r[0-9a-f]{10}", "ID", printed.strip())
            assert re.sub(r"r[0-9a-f]{10}", "ID", said.strip()) == shape
            assert (await flag("new-checkout"))["on"] is False

            said = await asyncio.to_thread(run, review)
            assert "launch the new checkout" in said  # list and show
            assert "turned on" in said
            assert "approved by bob: dashboards look fine" in said
            assert "applied change request" in said
            assert (await flag("new-checkout"))["on"] is True

            await asyncio.to_thread(run, kill)
            off = (await http.get(f"{PROD}/flags/new-checkout")).json()
            assert off["flag"]["on"] is False  # at once, without approval
            nc = await nats.connect(nats_url)
            try:
                stored = await EventStore(nc, STREAM).last("flagstream.default.production.flag.new-checkout")
                assert stored is not None
                assert stored.event.emergency is True  # type: ignore[attr-defined]
                assert stored.event.comment == "errors up after the launch"  # type: ignore[attr-defined]
            finally:
                await nc.close()

            said = await asyncio.to_thread(run, several)
            assert '"status":"open"' in said.replace(" ", "")
            assert (await http.get(f"{PROD}/segments/beta-testers")).status_code == 404  # held, not made
            opened = (await http.get("/api/v1/projects/default/requests")).json()["items"]
            [request] = [r for r in opened if r["title"] == "Beta for the new search"]
            assert [(c["kind"], c["key"]) for c in request["changes"]] == [
                ("segment", "beta-testers"),
                ("flag", "new-search"),
            ]
    finally:
        admin.stop()
