"""``flagstream client-keys`` as a user runs it: real processes against a real ``flagstream admin``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, AdminProcess


@pytest.fixture
def api_url(nats_url: str) -> Iterator[str]:
    admin = AdminProcess(nats_url).start()
    try:
        yield admin.url
    finally:
        admin.stop()


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLAGSTREAM_TOKEN": ADMIN_TOKEN, "FLAGSTREAM_API": url}
    return subprocess.run([FLAGSTREAM, *args], capture_output=True, text=True, env=env, timeout=60)


def test_create_list_use_and_revoke_a_client_side_key(api_url: str) -> None:
    assert cli(api_url, "envs", "create", "production").returncode == 0
    made = cli(api_url, "client-keys", "create", "--env", "production", "--name", "shop",
               "--origin", "https://shop.example.com", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    listed = cli(api_url, "client-keys", "list", "--env", "production")
    assert key in listed.stdout
    assert "https://shop.example.com" in listed.stdout
    door = f"{api_url}/client/{key}/ofrep/v1/evaluate/flags"
    assert httpx.post(door, json={}).status_code == 200

    revoked = cli(api_url, "client-keys", "revoke", key, "--env", "production")
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.post(door, json={}).status_code == 401
    assert key not in cli(api_url, "client-keys", "list", "--env", "production").stdout
    assert "revoked by operator" in cli(api_url, "client-keys", "list", "--env", "production", "--all").stdout

    bad = cli(api_url, "client-keys", "create", "--env", "production", "--name", "x", "--origin", "https://*.x.com")
    assert bad.returncode == 1
    assert "wildcards are not allowed" in bad.stderr
