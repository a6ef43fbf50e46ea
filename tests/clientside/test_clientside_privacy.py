"""Private context attributes are used to evaluate and never leave: read everything that does.

A real ``flagstream admin`` process at debug log level evaluates contexts whose ``email`` is marked private (a
rule matches on it, so it is used). Everything that leaves the process is read: every NATS message published
on the server (telemetry, KV, JetStream API: a ``>`` subscription), the process's whole log output, and the
HTTP answers. The email's value is in none of them; the attribute that is not private is in the log (so the
log is read where a context would show), and the evaluation counts did leave (so telemetry was read).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import IO

import httpx
import nats

from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, auth_headers, eventually, read_url

ENVS = "/api/v1/projects/default/environments"
SECRET = "ada.lovelace-7f3e9b@secret-corp.example"
SECRET_PARTS = ("ada.lovelace-7f3e9b", SECRET)  # the rule names the domain; the person is private
VISIBLE = "plan-gold-51c2"


async def test_private_attributes_are_used_and_never_leave(nats_url: str, tmp_path: Path) -> None:
    seen: list[bytes] = []
    watcher = await nats.connect(nats_url)

    async def keep(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.subject.encode() + b" " + bytes(msg.data) + b" " + repr(msg.headers).encode())

    await watcher.subscribe(">", cb=keep)
    log_path = tmp_path / "admin.log"
    with log_path.open("w") as log_file:
        proc, url = await asyncio.to_thread(_start_admin, nats_url, log_file)
        try:
            answers = await _evaluate(url)
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)
    # the pool's clients report their evaluation counts when they close: telemetry did leave, and was read
    await eventually(lambda: any(b"flagstream-telemetry" in m and b'"counts"' in m for m in seen), 10, "telemetry")
    await watcher.close()

    log = log_path.read_text()
    assert VISIBLE in log, "the debug log shows evaluation contexts (else this test would prove nothing)"
    assert "[private]" in log
    for name, text in (("NATS", b"\n".join(seen).decode(errors="replace")), ("log", log), ("HTTP", answers)):
        for part in SECRET_PARTS:
            assert part not in text, f"the private value left through {name}"


def _start_admin(nats_url: str, log_file: IO[str]) -> tuple[subprocess.Popen[str], str]:
    """``flagstream admin`` at debug level, its whole log output (stderr) into ``log_file``."""
    proc = subprocess.Popen(
        [FLAGSTREAM, "admin", "--nats-url", nats_url, "--port", "0", "--log-level", "debug"],
        stdout=subprocess.PIPE, stderr=log_file, text=True,
        env={**os.environ, "FLAGSTREAM_OPERATOR_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    return proc, read_url(proc)


async def _evaluate(url: str) -> str:
    """Evaluations through both doors with the private email; returns every answer (headers and bodies)."""
    out: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers=auth_headers(), timeout=30) as api:
        assert (await api.post(ENVS, json={"key": "production"})).status_code == 201
        flag = {
            "key": "staff-banner", "kind": "string", "client_side": True, "on": True,
            "variations": [{"key": "public", "value": "public"}, {"key": "staff", "value": "staff"}],
            "off_variation": "public", "fallthrough": {"variation": "public"},
            "rules": [{"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with",
                                                   "values": ["@secret-corp.example"]}],
                       "serve": {"variation": "staff"}}],
        }  # fmt: skip
        assert (await api.post(f"{ENVS}/production/flags", json=flag)).status_code == 201
        key = (await api.post(f"{ENVS}/production/client-keys", json={"name": "web"})).json()["key"]
        context = {"targetingKey": "u-1", "email": SECRET, "plan": VISIBLE, "privateAttributes": ["email"]}
        for path in (f"/client/{key}/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags"):
            bulk = await api.post(path, json={"context": context})
            assert bulk.status_code == 200, bulk.text
            staff = next(f for f in bulk.json()["flags"] if f["key"] == "staff-banner")
            assert staff["value"] == "staff"  # the private attribute was used
            one = await api.post(f"{path}/staff-banner", json={"context": context})
            assert one.json()["value"] == "staff"
            # the ETag says nothing about the private value: another private email with the same answer, same ETag
            other = {**context, "email": "someone-else@secret-corp.example"}
            same = await api.post(path, json={"context": other})
            assert same.headers["etag"] == bulk.headers["etag"]
            out += [str(r.headers) + r.text for r in (bulk, one)]
        refused = await api.post("/ofrep/v1/evaluate/flags", json={"context": {**context, "privateAttributes": "x"}})
        assert refused.status_code == 400
        assert refused.json()["errorCode"] == "INVALID_CONTEXT"
    return "\n".join(out)
