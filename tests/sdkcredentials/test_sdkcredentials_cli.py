"""``flagstream sdk-credentials`` as a user runs it: real processes against a real ``flagstream admin``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

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
    return subprocess.run([FLAGSTREAM, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_create_list_and_revoke_an_sdk_credential(api_url: str) -> None:
    assert cli(api_url, "envs", "create", "production").returncode == 0
    made = cli(api_url, "sdk-credentials", "create", "--env", "production", "--name", "checkout-service")
    assert made.returncode == 0, made.stderr
    password = next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("password: "))
    user = next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("user: "))
    assert len(password) == 48
    assert user.startswith("sdk-default-production.")
    cred_id = user.rsplit(".", 1)[1]

    listed = cli(api_url, "sdk-credentials", "list", "--env", "production")
    assert listed.returncode == 0, listed.stderr
    assert user in listed.stdout
    assert "checkout-service" in listed.stdout
    assert password not in listed.stdout
    as_json = json.loads(cli(api_url, "sdk-credentials", "list", "--env", "production", "--json").stdout)
    assert [(c["id"], "password" in c) for c in as_json["items"]] == [(cred_id, False)]

    revoked = cli(api_url, "sdk-credentials", "revoke", cred_id, "--env", "production")
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked SDK credential {cred_id}" in revoked.stdout
    assert user not in cli(api_url, "sdk-credentials", "list", "--env", "production").stdout
    assert "revoked by operator" in cli(api_url, "sdk-credentials", "list", "--env", "production", "--all").stdout

    missing = cli(api_url, "sdk-credentials", "create", "--env", "staging", "--name", "x")
    assert missing.returncode == 1
    assert "staging" in missing.stderr
    assert cli(api_url, "sdk-credentials", "revoke", "0123456789ab", "--env", "production").returncode == 1
