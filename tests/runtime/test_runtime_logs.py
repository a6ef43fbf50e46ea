"""Structured logs: ``flagstream admin --log-format json`` writes one JSON object a line on stderr, uvicorn's own
start-up and access lines included, so a log shipper parses every line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from flagstream.services.runtime.natsd import free_port
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, auth_headers


async def test_the_admin_logs_json_lines_access_log_included(nats_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "operator-token"
    token_file.write_text(ADMIN_TOKEN)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        FLAGSTREAM, "admin", "--nats-url", nats_url, "--port", str(port), "--operator-token-file", str(token_file),
        "--log-format", "json", "--log-level", "info",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth_headers()) as http:
            async with asyncio.timeout(60):
                while True:
                    assert proc.returncode is None, "flagstream admin exited"
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
            missing = await http.get("/api/v1/projects/default/environments/nowhere/flags/x")
            assert missing.status_code == 404
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    records = [json.loads(line) for line in err.decode().splitlines() if line.strip()]  # each line one object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any("/environments/nowhere/flags/x" in r["message"] and "404" in r["message"] for r in access), access
    assert ADMIN_TOKEN not in err.decode()
