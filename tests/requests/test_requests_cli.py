"""``flagstream requests`` and the other commands in an environment that asks for approvals: real ``flagstream``
processes against a real ``flagstream admin``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import FLAGSTREAM, AdminProcess, auth_headers

API = "/api/v1/projects/default"


@pytest.fixture
def admin(nats_url: str) -> Iterator[AdminProcess]:
    process = AdminProcess(nats_url).start()
    try:
        yield process
    finally:
        process.stop()


def _cli(admin: AdminProcess, token: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
    return subprocess.run(
        [FLAGSTREAM, *args, "--api", admin.url, "--token", token],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )  # fmt: skip


def test_held_changes_and_their_review_from_the_command_line(admin: AdminProcess, tmp_path: Path) -> None:
    with httpx.Client(base_url=admin.url, headers=auth_headers(), timeout=30) as http:
        for env in ("development", "production"):
            assert http.post(f"{API}/environments", json={"key": env}).status_code == 201
        for key in ("checkout", "search", "banner"):
            assert http.post(f"{API}/flags", json={"key": key}).status_code == 201
        assert http.patch(f"{API}/environments/production", json={"approvals": 1}).status_code == 200
        tokens = {
            name: http.post("/api/v1/tokens", json={"name": name, "role": "writer"}).json()["token"]
            for name in ("ann", "bob")
        }
        ann, bob = tokens["ann"], tokens["bob"]

        held = _cli(admin, ann, "flags", "on", "checkout", "--env", "production", "--comment", "launch")
        assert held.returncode == 0, held.stderr
        assert "held for approval: change request r" in held.stdout
        assert "needs 1 approval in production" in held.stdout
        single = held.stdout.split("change request ")[1].split()[0]

        # Flags as code: every change of the plan gathered in ONE request.
        exported = _cli(admin, ann, "export", "--env", "production", "--format", "json")
        assert exported.returncode == 0, exported.stderr
        document = json.loads(exported.stdout)
        for key in ("search", "banner"):
            document["flags"][key]["description"] = "from the flags file"
        (tmp_path / "flags.json").write_text(json.dumps(document))
        applied = _cli(admin, ann, "apply", "-f", str(tmp_path / "flags.json"), "--env", "production")
        assert applied.returncode == 0, applied.stderr + applied.stdout
        assert "Held 2 change(s) for approval, 0 failed." in applied.stdout
        gathered = applied.stdout.split("change request ")[1].split()[0]
        assert gathered != single
        assert http.get(f"{API}/environments/production/flags/search").json()["flag"]["description"] == ""

        # A promotion from development: previewed, then held as one request.
        assert http.post(f"{API}/environments/development/flags/search/on", json={}).status_code == 200
        copied = _cli(admin, ann, "flags", "copy", "search", "--from", "development", "--to", "production")
        assert copied.returncode == 0, copied.stderr
        assert "held for approval: change request r" in copied.stdout
        promotion = copied.stdout.split("change request ")[1].split()[0]
        cancelled = _cli(admin, ann, "requests", "cancel", promotion, "--comment", "next week")
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"cancelled change request {promotion}" in cancelled.stdout
        assert http.get(f"{API}/environments/production/flags/search").json()["flag"]["on"] is False

        listed = _cli(admin, bob, "requests", "list")
        assert listed.returncode == 0, listed.stderr
        assert single in listed.stdout
        assert gathered in listed.stdout
        assert "needs 1 in production" in listed.stdout
        shown = _cli(admin, bob, "requests", "show", single)
        assert "flag checkout in production" in shown.stdout
        assert "turned on" in shown.stdout

        own = _cli(admin, ann, "requests", "approve", single)
        assert own.returncode == 1
        assert "nobody approves their own" in own.stderr
        approved = _cli(admin, bob, "requests", "approve", single, "--comment", "ok")
        assert approved.returncode == 0, approved.stderr
        assert "approved by bob: ok" in approved.stdout
        done = _cli(admin, ann, "requests", "apply", single)
        assert done.returncode == 0, done.stderr
        assert "applied change request" in done.stdout
        assert http.get(f"{API}/environments/production/flags/checkout").json()["flag"]["on"] is True

        rejected = _cli(admin, bob, "requests", "reject", gathered, "--comment", "not now")
        assert rejected.returncode == 0, rejected.stderr
        refused = _cli(admin, ann, "requests", "apply", gathered)
        assert refused.returncode == 1
        assert "rejected" in refused.stderr
        assert http.get(f"{API}/environments/production/flags/search").json()["flag"]["description"] == ""
        assert "no change requests" in _cli(admin, bob, "requests", "list").stdout
