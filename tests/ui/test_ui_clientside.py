"""A web page of another site, with OpenFeature's real web SDK and OFREP web provider (bundled by esbuild), in
Chromium: it evaluates flags with a client-side key, sees a change made through the API without reloading, does
not find a flag that is not available to client-side apps, and is refused by the browser on an origin the key
does not allow. The page is served by its own HTTP server: another origin than the admin's."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import playwright.async_api as playwright_api
import pytest
from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from tests.clientside.build import bundle
from tests.helpers import serving
from tests.ui.conftest import UI, create_env, create_flag

ENV = "/api/v1/projects/default/environments/production"
FLAGS = "banner:string,new-checkout:boolean,internal-kill-switch:boolean"


@pytest.fixture(scope="module")
def page_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle(tmp_path_factory.mktemp("page"))


@pytest.fixture
async def site(page_files: Path) -> AsyncIterator[str]:
    """The page's own origin (a static server on another port than the admin)."""
    app = Starlette()
    app.mount("/", StaticFiles(directory=page_files, html=True))
    async with serving(app) as url:
        yield url


@pytest.fixture
async def other_site(page_files: Path) -> AsyncIterator[str]:
    """The same page on a third origin, one the key does not name."""
    app = Starlette()
    app.mount("/", StaticFiles(directory=page_files, html=True))
    async with serving(app) as url:
        yield url


async def setup(api: httpx.AsyncClient, origins: list[str]) -> str:
    await create_env(api, "production")
    await create_flag(api, "production", "banner", kind="string", client_side=True, on=True,
                      variations=[{"key": "plain", "value": "plain"}, {"key": "nordic", "value": "nordic"}],
                      off_variation="plain", fallthrough={"variation": "plain"})  # fmt: skip
    await create_flag(api, "production", "new-checkout", client_side=True, on=True)
    await create_flag(api, "production", "internal-kill-switch", on=True)
    made = await api.post(f"{ENV}/client-keys", json={"name": "shop", "origins": origins})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


@pytest.fixture
async def pages(browser: Any, admin_url: str) -> AsyncIterator[list[Any]]:
    """Browser contexts the test opens, closed before the admin stops (their event streams end with them)."""
    opened: list[Any] = []
    yield opened
    for context in opened:
        await context.close()


async def open_page(
    browser: Any, pages: list[Any], site: str, admin_url: str, key: str, **query: str
) -> tuple[Any, list[str]]:
    context = await browser.new_context()
    pages.append(context)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    params = urlencode({"base": f"{admin_url}/client/{key}", "flags": FLAGS, **query})
    await page.goto(f"{site}/index.html?{params}")
    return page, console


def flag(page: Any, key: str) -> Any:
    return page.locator(f'li[data-flag="{key}"]')


@pytest.mark.parametrize("mode", ["sse", "polling"])
async def test_a_page_of_another_origin_evaluates_and_follows_changes(
    mode: str, browser: Any, pages: list[Any], api: httpx.AsyncClient, admin_url: str, site: str
) -> None:
    assert site.rsplit(":", 1)[1] != admin_url.rsplit(":", 1)[1]  # two origins
    key = await setup(api, [site])
    page, console = await open_page(browser, pages, site, admin_url, key, mode=mode)
    expect = playwright_api.expect
    await expect(page.locator("#status")).to_have_text("ready")
    await expect(flag(page, "banner")).to_have_text("plain")
    await expect(flag(page, "new-checkout")).to_have_text("true")
    await expect(flag(page, "internal-kill-switch")).to_have_text("error:FLAG_NOT_FOUND")

    changed = await api.patch(f"{ENV}/flags/banner", json={"fallthrough": {"variation": "nordic"}})
    assert changed.status_code == 200, changed.text
    await expect(flag(page, "banner")).to_have_text("nordic")
    off = await api.post(f"{ENV}/flags/new-checkout/off", json={})
    assert off.status_code == 200
    await expect(flag(page, "new-checkout")).to_have_text("false")
    # a flag marked for client-side apps later appears in the page, without a reload
    marked = await api.patch(f"{ENV}/flags/internal-kill-switch", json={"client_side": True})
    assert marked.status_code == 200
    await expect(flag(page, "internal-kill-switch")).to_have_text("true")
    assert not [line for line in console if line.startswith(("error", "pageerror"))], console


async def test_a_page_on_an_origin_the_key_does_not_allow_is_refused_by_the_browser(
    browser: Any, pages: list[Any], api: httpx.AsyncClient, admin_url: str, site: str, other_site: str
) -> None:
    key = await setup(api, [site])
    page, console = await open_page(browser, pages, other_site, admin_url, key)
    await playwright_api.expect(page.locator("#status")).to_have_text(re.compile("^error"))
    assert await page.locator("li").count() == 0
    # the browser, not the page, refused it: CORS
    assert any("CORS" in line or "Access-Control-Allow-Origin" in line for line in console), console
    # the same page on the allowed origin works
    page, _ = await open_page(browser, pages, site, admin_url, key)
    await playwright_api.expect(flag(page, "banner")).to_have_text("plain")


async def test_an_admin_makes_a_key_marks_a_flag_and_revokes_the_key_in_the_ui(ui: UI) -> None:
    await create_env(ui.api, "production")
    await create_flag(ui.api, "production", "new-checkout", name="New checkout", on=True)
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/production/flags/new-checkout")
    await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()
    await page.get_by_role("checkbox", name="Available to client-side apps").check()
    await page.get_by_role("button", name="Save definition").click()
    await expect(page.get_by_role("button", name="Definition saved")).to_be_visible()
    assert (await ui.api.get(f"{ENV}/flags/new-checkout")).json()["flag"]["client_side"] is True

    await page.get_by_role("link", name="Client-side keys").click()
    await expect(page.get_by_role("heading", name="Client-side keys", exact=True)).to_be_visible()
    await page.get_by_label("Name").fill("web shop")
    await page.get_by_label("Allowed origins (one per line)").fill("https://shop.example.com\nhttp://localhost:3000")
    await page.get_by_role("button", name="Create key").click()
    base = await page.locator("#ck-base-url").text_content()
    assert base is not None
    assert base.startswith(f"{ui.base}/client/fsc_")
    row = page.get_by_role("table", name="Client-side keys").locator("tbody tr")
    await expect(row).to_contain_text("https://shop.example.com, http://localhost:3000")
    await ui.shot("client-side-keys")
    answer = await ui.api.post(f"{base}/ofrep/v1/evaluate/flags", json={})
    assert [f["key"] for f in answer.json()["flags"]] == ["new-checkout"]

    ui.expect_http(422)
    await page.get_by_label("Name").fill("bad")
    await page.get_by_label("Allowed origins (one per line)").fill("https://*.example.com")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_role("alert")).to_contain_text("wildcards are not allowed")

    await page.get_by_role("button", name="Revoke key web shop").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("heading", name="Client-side keys of production (0)")).to_be_visible()
    assert (await ui.api.post(f"{base}/ofrep/v1/evaluate/flags", json={})).status_code == 401


async def test_a_writer_does_not_see_the_client_side_keys_page(ui: UI) -> None:
    await create_env(ui.api, "production")
    writer = await ui.api.post("/api/v1/tokens", json={"name": "pm", "role": "writer"})
    await ui.sign_in(writer.json()["token"])
    await expect(ui.page.get_by_role("link", name="Flags", exact=True)).to_be_visible()
    await expect(ui.page.get_by_role("link", name="Client-side keys")).to_have_count(0)
