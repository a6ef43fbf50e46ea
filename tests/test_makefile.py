"""`make test` and `make run` from a fresh clone: what the Makefile runs (read with `make -n`, which prints every
command of a target without running it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dry_run(*targets: str) -> list[str]:
    make = shutil.which("make")
    assert make is not None, "make is needed (the README's two commands)"
    done = subprocess.run(
        [make, "--no-print-directory", "-n", "-B", "-C", str(REPO), *targets],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_test_installs_its_system_packages_in_one_apt_get_that_waits_for_the_dpkg_lock() -> None:
    lines = _dry_run("test")
    installs = [line for line in lines if "apt-get" in line and " install " in line]
    assert len(installs) == 1, "\n".join(lines)
    for package in ("chromium", "openssl", "nodejs", "npm", "prometheus"):
        assert f" {package}" in installs[0], f"{package} is installed in the same step: {installs[0]}"
    for line in (line for line in lines if "apt-get" in line):
        assert "-o DPkg::Lock::Timeout=300" in line, f"waits for another apt's lock: {line}"


def test_make_test_installs_the_test_openid_provider_from_its_lock_file() -> None:
    lines = _dry_run("test")
    assert any("npm ci" in line and "tests/oidc" in line for line in lines), "\n".join(lines)
    npm_at = next(i for i, line in enumerate(lines) if "npm ci" in line)
    pytest_at = next(i for i, line in enumerate(lines) if line.strip().endswith("/pytest"))
    assert npm_at < pytest_at


def test_make_test_checks_the_formatting_too() -> None:
    lines = _dry_run("test")
    assert any(line.strip().endswith("ruff check .") for line in lines), "\n".join(lines)
    assert any(line.strip().endswith("ruff format --check .") for line in lines), "\n".join(lines)
    pytest_at = next(i for i, line in enumerate(lines) if line.strip().endswith("/pytest"))
    format_at = next(i for i, line in enumerate(lines) if line.strip().endswith("ruff format --check ."))
    assert format_at < pytest_at, "lint first: a formatting slip fails in seconds, not after the suite"
