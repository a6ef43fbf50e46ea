"""``flagstream users``: the first admin is made from the command line with no token pasted anywhere (the CLI
finds the operator token ``flagstream up`` saved), then people are managed the same way. Real ``flagstream``
processes against the admin API served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flagstream.services.admin.app import create_app
from tests.helpers import ADMIN_TOKEN, FLAGSTREAM, serving

PASSWORD = "the first admin's passphrase"


@pytest.fixture
async def api(nats_url: str) -> AsyncIterator[str]:
    async with serving(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN)) as url:
        yield url


async def users(workdir: Path, api: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLAGSTREAM_TOKEN"}
    return await asyncio.to_thread(
        subprocess.run, [FLAGSTREAM, "users", *args, "--api", api], input=stdin, capture_output=True, text=True,
        cwd=workdir, env=env, timeout=60,
    )  # fmt: skip


async def test_the_first_admin_is_made_without_pasting_a_token(api: str, tmp_path: Path) -> None:
    # What `flagstream up` leaves in the folder it runs in.
    (tmp_path / ".flagstream").mkdir()
    (tmp_path / ".flagstream" / "operator-token").write_text(ADMIN_TOKEN + "\n")

    made = await users(tmp_path, api, "create", "ada", "--name", "Ada Lovelace", "--admin", "--password-stdin",
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created user u_" in made.stdout
    assert "admin on *" in made.stdout
    assert PASSWORD not in made.stdout + made.stderr

    async with httpx.AsyncClient(base_url=api) as browser:
        signed = await browser.post("/auth/password", json={"login": "ada", "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        me = (await browser.get("/api/v1/whoami")).json()
        assert (me["name"], me["role"], me["via"]) == ("Ada Lovelace", "admin", "password")

    scoped = await users(tmp_path, api, "create", "rel", "--role", "writer", "--env", "production",
                         "--password-stdin", stdin="a release manager's pass\n")  # fmt: skip
    assert scoped.returncode == 0, scoped.stderr
    listed = await users(tmp_path, api, "list", "--json")
    rows = {u["login"]: u for u in json.loads(listed.stdout)["items"]}
    assert rows["rel"]["grants"] == [{"role": "writer", "environment": "production"}]
    assert rows["ada"]["grants"] == [{"role": "admin"}]

    roles = await users(tmp_path, api, "roles", "rel", "--role", "reader")
    assert roles.returncode == 0, roles.stderr
    assert "reader on *" in roles.stdout
    ended = await users(tmp_path, api, "signout", "ada")
    assert ended.returncode == 0, ended.stderr
    disabled = await users(tmp_path, api, "disable", "rel")
    assert "disabled" in disabled.stdout


async def test_a_short_password_is_refused_and_not_echoed(api: str, tmp_path: Path) -> None:
    refused = await users(tmp_path, api, "create", "bob", "--password-stdin", "--token", ADMIN_TOKEN, stdin="short\n")
    assert refused.returncode == 1
    assert "at least 12 characters" in refused.stderr
    assert "short" not in refused.stderr, "the password is not repeated back"


async def test_without_an_admin_token_the_cli_says_how_to_get_one(api: str, tmp_path: Path) -> None:
    refused = await users(tmp_path, api, "list")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "--token" in refused.stderr
