"""The history commands as a user runs them: ``flagstream history | eval | revert | schedule`` as real
processes against a real admin API (uvicorn) with a projector and its read model."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flagstream.services.projector.projector import Projector
from tests.helpers import ADMIN_TOKEN, auth_headers, served_with_history


@pytest.fixture
async def served(nats_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Projector]]:
    async with served_with_history(nats_url, tmp_path) as found:
        yield found


async def cli(url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "FLAGSTREAM_TOKEN": ADMIN_TOKEN, "FLAGSTREAM_API": url, "FLAGSTREAM_ENV": "production"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flagstream.services.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_history_eval_revert_and_schedule_commands(served: tuple[str, Projector]) -> None:
    url, projector = served
    env = "/api/v1/projects/default/environments/production"
    async with httpx.AsyncClient(base_url=url, headers=auth_headers()) as http:
        assert (await http.post("/api/v1/projects/default/environments", json={"key": "production"})).is_success
        assert (await http.post(f"{env}/flags", json={"key": "new-checkout"})).is_success
        first = (await http.post(f"{env}/flags/new-checkout/on", json={"comment": "launch"})).json()
        assert (await http.post(f"{env}/flags/new-checkout/off", json={"comment": "incident"})).is_success
    await projector.wait_caught_up(30)

    code, out, err = await cli(url, "history", "new-checkout")
    assert code == 0, err
    lines = out.splitlines()
    assert "flag.toggled new-checkout  incident" in lines[0]
    assert lines[1].strip() == "turned off"
    assert any("flag.created" in line for line in lines)

    code, out, err = await cli(
        url, "eval", "new-checkout", "--context", '{"key": "u1"}', "--as-of", str(first["version"])
    )
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"as of seq {first['version']} (")
    row = out.splitlines()[-1].split()
    assert row[:4] == ["new-checkout", "true", "on", "FALLTHROUGH"]
    code, out, _ = await cli(url, "eval", "--context", '{"key": "u1"}')
    assert "OFF" in out

    code, out, err = await cli(url, "revert", "new-checkout", "--seq", str(first["version"]), "--comment", "undo")
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"revert flag new-checkout to its state at seq {first['version']} (")
    assert "replace flag new-checkout" in out
    code, out, err = await cli(url, "flags", "show", "new-checkout")
    assert "state" in out
    assert " on" in out

    due = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, out, err = await cli(url, "schedule", "create", "new-checkout", "--at", due, "--off", "--json")
    assert code == 0, err
    sid = json.loads(out)["id"]
    code, out, _ = await cli(url, "schedule", "list")
    assert sid in out
    assert "pending" in out
    assert "off flag new-checkout" in out
    code, out, _ = await cli(url, "schedule", "cancel", sid)
    assert code == 0
    assert "cancelled" in out

    code, _, err = await cli(url, "eval", "--context", "{nope")
    assert code == 2
    assert "--context is not JSON" in err
    code, _, err = await cli(url, "revert", "--to", "last tuesday")
    assert code == 1
    assert "RFC 3339" in err


async def test_eval_that_cannot_evaluate_fails_in_its_exit_code(served: tuple[str, Projector]) -> None:
    """`flagstream eval` with a context it cannot use, or a flag that does not exist, prints what it got and says
    it failed: exit 1 and a line on stderr saying why (a script can tell)."""
    url, projector = served
    env = "/api/v1/projects/default/environments/production"
    async with httpx.AsyncClient(base_url=url, headers=auth_headers()) as http:
        assert (await http.post("/api/v1/projects/default/environments", json={"key": "production"})).is_success
        assert (await http.post(f"{env}/flags", json={"key": "new-checkout"})).is_success
    await projector.wait_caught_up(30)

    code, out, err = await cli(url, "eval", "new-checkout", "--context", '{"name": "ada"}')
    assert code == 1, (out, err)
    assert "MALFORMED_CONTEXT" in out
    assert "the context cannot be used: no 'key'" in err, err
    code, out, err = await cli(url, "eval", "new-checkout", "--context", '{"key": [1]}', "--json")
    assert code == 1, (out, err)
    assert json.loads(out)["results"][0]["reason"]["error_kind"] == "MALFORMED_CONTEXT"
    code, out, err = await cli(url, "eval", "no-such-flag", "--context", '{"key": "u1"}')
    assert code == 1, (out, err)
    assert "no-such-flag: FLAG_NOT_FOUND" in err, err
    code, out, err = await cli(url, "eval", "new-checkout", "--context", "{not json")
    assert code == 2, (out, err)
    assert "--context is not JSON" in err

    code, out, err = await cli(url, "eval", "new-checkout", "--context", '{"key": 42}')
    assert code == 0, err
    assert "OFF" in out
