"""The test page's bundle: esbuild (from the npm registry, installed by ``make test``'s ``npm ci`` in
``tests/clientside/web``) bundles ``page.js`` with OpenFeature's web SDK and OFREP web provider."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).parent / "web"
NODE_MODULES = WEB / "node_modules"
NODE = shutil.which("node") or "node"


def require_packages() -> None:
    """Fail (never skip) when the npm packages are missing: ``make test`` installs them (npm ci)."""
    if not (NODE_MODULES / ".bin" / "esbuild").exists():
        pytest.fail(f"the npm packages are not installed: run `npm ci --prefix {WEB}` (make test does it)")


def bundle(out: Path) -> Path:
    """``index.html`` and the bundled ``page.js`` in ``out``; returns ``out``."""
    require_packages()
    out.mkdir(parents=True, exist_ok=True)
    command = [str(NODE_MODULES / ".bin" / "esbuild"), str(WEB / "page.js"), "--bundle", "--format=iife",
               "--target=es2020", "--log-level=warning", f"--outfile={out / 'page.js'}"]  # fmt: skip
    done = subprocess.run(command, cwd=WEB, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shutil.copy(WEB / "index.html", out / "index.html")
    return out
