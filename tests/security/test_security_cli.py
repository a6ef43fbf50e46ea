"""`flagstream tokens` and the token sources of the CLI, as a user runs them against a real admin API."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from tests.helpers import ADMIN_TOKEN, FLAGSTREAM


async def cli(cwd: Path, api: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """One `flagstream` process (in a thread: the API runs on this test's event loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTREAM_")}
    if token is not None:
        env["FLAGSTREAM_TOKEN"] = token
    command = [FLAGSTREAM, *args, "--api", api]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


async def test_tokens_create_use_list_revoke(admin_url: str, tmp_path: Path) -> None:
    for env in ("development", "production"):
        made = await cli(tmp_path, admin_url, "envs", "create", env, token=ADMIN_TOKEN)
        assert made.returncode == 0, made.stderr

    created = await cli(
        tmp_path, admin_url, "tokens", "create", "--role", "writer", "--env", "production", "--name", "ci",
        token=ADMIN_TOKEN,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    first, secret, warning = created.stdout.splitlines()
    assert first.startswith("created token ")
    assert "(ci, writer, production)" in first
    assert secret.startswith("fs_")
    assert "not shown again" in warning
    token_id = first.split()[2]

    flag = await cli(tmp_path, admin_url, "flags", "create", "checkout", "--env", "production", token=secret)
    assert flag.returncode == 0, flag.stderr
    shown = await cli(tmp_path, admin_url, "flags", "show", "checkout", "--env", "production", token=secret)
    assert "flag.created by ci" in shown.stdout, "the token's name is the actor"
    other = await cli(tmp_path, admin_url, "flags", "list", "--env", "development", token=secret)
    assert other.returncode == 1
    assert "may not act on environment 'development'" in other.stderr
    assert "(HTTP 403)" in other.stderr

    listed = await cli(tmp_path, admin_url, "tokens", "list", token=ADMIN_TOKEN)
    assert token_id in listed.stdout
    assert secret not in listed.stdout, "a secret is never listed"
    no_admin = await cli(tmp_path, admin_url, "tokens", "list", token=secret)
    assert no_admin.returncode == 1
    assert "HTTP 403" in no_admin.stderr

    revoked = await cli(tmp_path, admin_url, "tokens", "revoke", token_id, token=ADMIN_TOKEN)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked token {token_id} (ci)"
    after = await cli(tmp_path, admin_url, "flags", "list", "--env", "production", token=secret)
    assert after.returncode == 1
    assert "invalid or revoked token" in after.stderr
    audit = await cli(tmp_path, admin_url, "tokens", "list", "--all", token=ADMIN_TOKEN)
    assert "revoked by operator" in audit.stdout


async def test_the_cli_finds_the_token_flagstream_up_saved(admin_url: str, tmp_path: Path) -> None:
    anonymous = await cli(tmp_path, admin_url, "envs", "list")
    assert anonymous.returncode == 1
    assert "HTTP 401" in anonymous.stderr
    assert "FLAGSTREAM_TOKEN" in anonymous.stderr, "the error says how to authenticate"

    (tmp_path / ".flagstream").mkdir()
    (tmp_path / ".flagstream" / "operator-token").write_text(ADMIN_TOKEN + "\n")
    saved = await cli(tmp_path, admin_url, "envs", "list")
    assert saved.returncode == 0, saved.stderr
    wrong = await cli(tmp_path, admin_url, "envs", "list", "--token", "fs_wrong")
    assert wrong.returncode == 1, "--token wins over the saved file"
