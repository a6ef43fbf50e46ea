"""Every example of docs/clientside.md, run as written: the shell blocks (curl and the CLI) against a real admin,
the web page and the React example bundled by esbuild and run in Chromium on an allowed origin, the Node example
with node. Only the documented base URL, ``localhost:8080`` and the key are replaced by the test's own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from tests.clientside.build import NODE, NODE_MODULES, WEB, require_packages
from tests.helpers import ADMIN_TOKEN, serving
from tests.ui.conftest import create_env, create_flag

DOC = Path(__file__).resolve().parents[2] / "docs" / "clientside.md"
TEXT = DOC.read_text()
DOC_BASE = "https://flags.example.com/client/fsc_Vq3m0M2rQk1yq2c8dY7u4w"
ENV = "/api/v1/environments/production"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


@pytest.fixture
async def key(api: httpx.AsyncClient, site: str) -> str:
    await create_env(api, "production")
    await create_flag(api, "production", "new-checkout", on=True)
    made = await api.post(f"{ENV}/client-keys", json={"name": "docs", "origins": [site]})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[str]:
    app = Starlette()
    app.mount("/", StaticFiles(directory=tmp_path, html=True))
    async with serving(app) as url:
        app.state.root = tmp_path
        yield url


async def mark(api: httpx.AsyncClient) -> None:
    """What the first shell example does: new-checkout available to client-side apps."""
    answer = await api.patch(f"{ENV}/flags/new-checkout", json={"client_side": True})
    assert answer.status_code == 200, answer.text


def bundle(source: str, out: Path, *extra: str) -> None:
    require_packages()
    entry = WEB / "dist" / f"docs-{out.stem}.jsx"
    entry.parent.mkdir(exist_ok=True)
    entry.write_text(source)
    command = [str(NODE_MODULES / ".bin" / "esbuild"), str(entry), "--bundle", "--format=esm", "--target=es2022",
               "--jsx=automatic", "--define:process.env.NODE_ENV=\"production\"", "--log-level=warning",
               f"--outfile={out}", *extra]  # fmt: skip
    done = subprocess.run(command, cwd=WEB, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


async def test_the_shell_examples_run_as_written(admin_url: str, api: httpx.AsyncClient, key: str) -> None:
    flag = await api.get(f"{ENV}/flags/new-checkout")
    assert flag.json()["flag"]["client_side"] is False
    env = {**os.environ, "ADMIN_TOKEN": ADMIN_TOKEN, "KEY": key, "FLAGSTREAM_TOKEN": ADMIN_TOKEN,
           "FLAGSTREAM_API": admin_url, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    outputs = []
    for block in blocks("sh"):
        script = block.replace("localhost:8080", admin_url.removeprefix("http://"))
        if "revoke fsc_..." in script:  # the CLI example revokes a key of its own
            script = script.replace("revoke fsc_...", 'revoke "$OTHER"')
            other = await api.post(f"{ENV}/client-keys", json={"name": "to revoke"})
            env["OTHER"] = other.json()["key"]
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (script, done.stdout, done.stderr)
        outputs.append(done.stdout)
    patched, cli, created, evaluated = outputs
    assert json.loads(patched)["flag"]["client_side"] is True
    assert "created client-side key for production (web shop; origins: https://shop.example.com, " in cli
    assert f"revoked client-side key {env['OTHER']}" in cli
    made = json.loads(created)
    assert made["origins"] == ["https://shop.example.com"]
    assert set(made) >= set(json.loads(blocks("json")[0]))
    # the documented answer: the available flag, the event stream under the key
    answer = json.loads(evaluated)
    documented = json.loads(blocks("json")[1])
    assert [(f["key"], f["value"], f["variant"]) for f in answer["flags"]] == [("new-checkout", True, "on")]
    assert set(answer) == set(documented)
    assert answer["eventStreams"][0]["endpoint"]["requestUri"] == f"/client/{key}/ofrep/v1/events"


async def test_the_web_page_and_the_react_examples_run_in_chromium(
    browser: Any, admin_url: str, api: httpx.AsyncClient, key: str, site: str, tmp_path: Path
) -> None:
    await mark(api)
    base = f"{admin_url}/client/{key}"
    web, react = blocks("js")[0], blocks("jsx")[0]
    assert DOC_BASE in web
    assert DOC_BASE in react
    bundle(web.replace(DOC_BASE, base), tmp_path / "web.js")
    bundle(react.replace(DOC_BASE, base), tmp_path / "react.js")
    head = '<!doctype html><link rel="icon" href="data:,">'
    (tmp_path / "web.html").write_text(f'{head}<script type="module" src="web.js"></script>')
    (tmp_path / "react.html").write_text(f'{head}<div id="root"></div><script type="module" src="react.js"></script>')
    context = await browser.new_context()
    try:
        page = await context.new_page()
        logged: list[str] = []
        page.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
        await page.goto(f"{site}/web.html")
        await expect(page.locator("body")).to_be_attached()
        for _ in range(400):
            if "log: new-checkout true" in logged:
                break
            await asyncio.sleep(0.05)
        assert "log: new-checkout true" in logged, logged

        await page.goto(f"{site}/react.html")
        await expect(page.locator("#checkout")).to_have_text("New checkout")
        off = await api.post(f"{ENV}/flags/new-checkout/off", json={})
        assert off.status_code == 200
        await expect(page.locator("#checkout")).to_have_text("Classic checkout")  # re-rendered on the change
        assert not [line for line in logged if line.startswith("error")], logged
    finally:
        await context.close()


async def test_the_node_example_runs(admin_url: str, api: httpx.AsyncClient, key: str) -> None:
    await mark(api)
    source = blocks("js")[1]
    assert DOC_BASE in source
    require_packages()
    script = WEB / "dist" / "docs-node.mjs"
    script.parent.mkdir(exist_ok=True)
    script.write_text(source.replace(DOC_BASE, f"{admin_url}/client/{key}"))
    proc = await asyncio.create_subprocess_exec(
        NODE, str(script), cwd=WEB, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "new-checkout true"
