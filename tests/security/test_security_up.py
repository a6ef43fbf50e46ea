"""`flagstream up` secured out of the box: private credential files, no anonymous NATS, an SDK user per default
environment that works, and the CLI finding the operator token in `.flagstream/` (the README's flow)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import nats
import pytest

from flagstream import AsyncFlagstreamClient, sdk_connect_options
from tests.helpers import FLAGSTREAM, auth_headers, eventually
from tests.runtime.test_up import Up, processes_using

NATS_LINE = re.compile(r"nats-server at (nats://127\.0\.0\.1:\d+)")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / ".flagstream"
    yield path
    for cmd in processes_using(path):  # never leave a server behind, even when the test fails
        subprocess.run(["pkill", "-9", "-f", cmd.split()[0] + ".*" + re.escape(str(path))], check=False)


async def test_up_is_secured_and_its_sdk_users_work(data_dir: Path) -> None:
    up = Up(data_dir)
    try:
        await asyncio.to_thread(up.wait_ready)
        nats_url = next(m.group(1) for line in up.output if (m := NATS_LINE.search(line)))
        assert any(str(data_dir / "operator-token") in line for line in up.output), "it says where the token is"
        for name in ("operator-token", "nats-users.json", "nats-server.conf"):
            assert (data_dir / name).stat().st_mode & 0o777 == 0o600, name
        token = (data_dir / "operator-token").read_text().strip()
        passwords = json.loads((data_dir / "nats-users.json").read_text())["passwords"]
        assert not any(password in "".join(up.output) for password in passwords.values()), "no password printed"
        assert_hashed_only(data_dir, passwords)

        with pytest.raises(Exception, match=r"(?i)authorization"):
            await nats.connect(nats_url, allow_reconnect=False)

        async with httpx.AsyncClient(base_url=up.url, headers=auth_headers(token), timeout=10) as http:
            created = await http.post("/api/v1/environments/production/flags", json={"key": "checkout"})
            assert created.status_code == 201, created.text
            options = sdk_connect_options("default", "production", passwords["sdk-default-production"])
            client = AsyncFlagstreamClient(nats_url, environment="production", connect_options=options)
            try:
                assert await client.start(wait=10), f"not ready: {client.last_error!r}"
                assert client.bool_variation("checkout", {"key": "u1"}, True) is False
                assert (await http.post("/api/v1/environments/production/flags/checkout/on")).status_code == 200
                await eventually(lambda: client.bool_variation("checkout", {"key": "u1"}, False), what="the change")
            finally:
                await client.close()

            # An environment created later gets its SDK user at once (nats-server reloads its config).
            staging = await http.post("/api/v1/environments", json={"key": "staging"})
            assert staging.status_code == 201, staging.text
            assert (await http.post("/api/v1/environments/staging/flags", json={"key": "beta"})).status_code == 201
        users = data_dir / "nats-users.json"
        await eventually(lambda: "sdk-default-staging" in users.read_text(), what="the staging SDK user")
        password = json.loads(users.read_text())["passwords"]["sdk-default-staging"]
        staging_client = AsyncFlagstreamClient(
            nats_url, environment="staging", connect_options=sdk_connect_options("default", "staging", password)
        )
        try:
            await eventually(lambda: _log_mentions(data_dir, "Reloaded server configuration"), what="reload")
            assert await staging_client.start(wait=10), f"not ready: {staging_client.last_error!r}"
            assert staging_client.bool_variation("beta", {"key": "u1"}, True) is False
        finally:
            await staging_client.close()
        assert_hashed_only(data_dir, json.loads(users.read_text())["passwords"])  # the reloaded one too

        env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
        listed = await asyncio.to_thread(
            subprocess.run, [FLAGSTREAM, "flags", "list", "--env", "production", "--api", up.url],
            capture_output=True, text=True, timeout=60, env=env, cwd=data_dir.parent,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "checkout" in listed.stdout
    finally:
        assert up.interrupt() == 0, "".join(up.output)
    assert processes_using(data_dir) == []


def assert_hashed_only(data_dir: Path, passwords: dict[str, str]) -> None:
    """The server's configuration holds a bcrypt hash per user and no password; nats-server has no warning."""
    config = (data_dir / "nats-server.conf").read_text()
    assert not any(password in config for password in passwords.values()), "a plain password in the config"
    hashes = re.findall(r'user: "([^"]+)", password: "([^"]+)"', config)
    assert sorted(user for user, _ in hashes) == sorted(passwords)
    for user, hashed in hashes:
        assert hashed.startswith("$2a$"), (user, hashed)
        assert bcrypt.checkpw(passwords[user].encode(), hashed.encode()), user
    assert not _log_mentions(data_dir, "Plaintext passwords detected")


async def test_a_data_folder_whose_config_holds_plain_passwords_is_rewritten_hashed(data_dir: Path) -> None:
    """A data folder written before the hashes (its nats-server.conf held each password as it is) keeps working:
    the next start writes the hashes, and every user logs in with the password the clients have."""
    up = Up(data_dir)
    try:
        await asyncio.to_thread(up.wait_ready)
    finally:
        assert up.interrupt() == 0, "".join(up.output)
    config = data_dir / "nats-server.conf"
    passwords = json.loads((data_dir / "nats-users.json").read_text())["passwords"]
    # What the earlier versions wrote: the same blocks, each password as it is.
    plain = re.sub(
        r'user: "([^"]+)", password: "[^"]+"', lambda m: f'user: "{m[1]}", password: "{passwords[m[1]]}"',
        config.read_text(),
    )  # fmt: skip
    assert all(password in plain for password in passwords.values())
    config.write_text(plain)
    log = data_dir / "nats" / "nats-server.log"
    log.unlink()  # the log of this start only

    up = Up(data_dir)
    try:
        await asyncio.to_thread(up.wait_ready)
        assert_hashed_only(data_dir, passwords)
        nats_url = next(m.group(1) for line in up.output if (m := NATS_LINE.search(line)))
        for user, password in passwords.items():
            options = (
                sdk_connect_options("default", user.split("-")[-1], password)
                if user.startswith("sdk-")
                else {"user": user, "password": password}
            )
            nc = await nats.connect(nats_url, allow_reconnect=False, **options)
            await nc.close()
        hashed = re.search(r'user: "admin", password: "([^"]+)"', config.read_text())
        assert hashed is not None
        with pytest.raises(Exception, match=r"(?i)authorization"):  # a hash is no password
            await nats.connect(nats_url, allow_reconnect=False, user="admin", password=hashed[1])
    finally:
        assert up.interrupt() == 0, "".join(up.output)


def _log_mentions(data_dir: Path, text: str) -> bool:
    log = data_dir / "nats" / "nats-server.log"
    return log.exists() and text in log.read_text()


def test_the_readme_flow_works_against_flagstream_up(data_dir: Path, tmp_path: Path) -> None:
    """The README's CLI commands and its SDK snippet, run as written (only the ports differ)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S)
    assert snippet is not None
    up = Up(data_dir)
    try:
        up.wait_ready()
        nats_port = next(m.group(1) for line in up.output if (m := NATS_LINE.search(line))).rsplit(":", 1)[1]
        env = {**os.environ, "FLAGSTREAM_API": up.url, "FLAGSTREAM_ENV": "development"}
        cwd = data_dir.parent  # the CLI finds .flagstream/operator-token here, as after `make run`
        try_it = readme[readme.index("## Try it") :]
        shell = re.search(r"```sh\n(.*?)```", try_it, re.S)
        assert shell is not None
        commands = [
            line.split("  #")[0].strip() for line in shell.group(1).splitlines() if line.startswith("flagstream ")
        ]
        assert len(commands) >= 5
        for command in commands:
            args = shlex.split(command)[1:]
            done = subprocess.run([FLAGSTREAM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{command}: {done.stderr}"
        code = snippet.group(1).replace("@127.0.0.1:4222", f"@127.0.0.1:{nats_port}")
        run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "True"
    finally:
        assert up.interrupt() == 0
