"""Browser fixtures: Debian's chromium, headless, driven by Playwright against the real admin service (the
``admin_url`` fixture: uvicorn on a free port over a real nats-server). Nothing is downloaded: the browser is
the system's (``FLAGSTREAM_CHROMIUM``, default /usr/bin/chromium).

Every test fails if the page logs a console error or throws, except HTTP statuses the test declared it expects
(a 409 or 422 the UI is meant to explain).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import playwright.async_api as playwright_api
import pytest

from tests.helpers import ADMIN_TOKEN, auth_headers, served_with_history

CHROMIUM = os.environ.get("FLAGSTREAM_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
API = "/api/v1/projects/default"
_HTTP_ERROR = re.compile(r"status of (\d{3})")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save screenshots (``FLAGSTREAM_SCREENSHOTS`` or a temporary folder)."""
    chosen = os.environ.get("FLAGSTREAM_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class UI:
    page: Any
    base: str
    api: httpx.AsyncClient
    shots: Path
    errors: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if where and not where.startswith(self.base):
            return  # another site's page (an identity provider's login page): not Flagstream's to answer for
        status = _HTTP_ERROR.search(message.text)
        if status and int(status.group(1)) in self.allowed_statuses:
            return
        self.errors.append(f"console error: {message.text} at {message.location}")

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"page error: {error}")

    def expect_http(self, *statuses: int) -> None:
        """The page will receive these statuses on purpose (so the browser's network log line is no failure)."""
        self.allowed_statuses.update(statuses)

    async def sign_in(self, token: str = ADMIN_TOKEN) -> None:
        """Sign in with an API token (the way in for automation and the operator, folded under the people's)."""
        await self.page.goto(f"{self.base}/")
        await self.fill_token(token)
        await playwright_api.expect(self.page.locator("#topbar")).to_be_visible()

    async def fill_token(self, token: str) -> None:
        fold = self.page.get_by_text("Use an API token instead")
        await playwright_api.expect(fold).to_be_visible()  # the sign-in page is there
        if not await self.page.get_by_label("API token").is_visible():  # folded away below the people's ways in
            await fold.click()
        await self.page.get_by_label("API token").fill(token)
        await self.page.get_by_role("button", name="Sign in with token").click()

    async def sign_in_as(self, login: str, password: str) -> None:
        """Sign in as a person, with a login and password."""
        await self.page.goto(f"{self.base}/")
        await self.page.get_by_label("Login").fill(login)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Sign in", exact=True).click()
        await playwright_api.expect(self.page.locator("#topbar")).to_be_visible()

    async def shot(self, name: str, *, full_page: bool = False) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_clean(self) -> None:
        assert not self.errors, "\n".join(self.errors)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def _make_ui(browser: Any, admin_url: str, shots: Path, viewport: dict[str, int]) -> AsyncIterator[UI]:
    context = await browser.new_context(viewport=viewport, is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as api:
        ui = UI(page, admin_url, api, shots)
        page.on("console", ui.on_console)
        page.on("pageerror", ui.on_page_error)
        try:
            yield ui
        finally:
            await context.close()
    ui.assert_clean()


@pytest.fixture
async def ui(browser: Any, admin_url: str, screenshot_dir: Path) -> AsyncIterator[UI]:
    """A desktop-sized page over the running admin service, and an API client signed in as the operator."""
    async for item in _make_ui(browser, admin_url, screenshot_dir, DESKTOP):
        yield item


@pytest.fixture
async def phone(browser: Any, admin_url: str, screenshot_dir: Path) -> AsyncIterator[UI]:
    """The same on a phone-sized viewport."""
    async for item in _make_ui(browser, admin_url, screenshot_dir, PHONE):
        yield item


async def create_env(api: httpx.AsyncClient, key: str, *, production: bool = False) -> None:
    body = {"key": key, "name": key.capitalize(), "production": production}
    response = await api.post(f"{API}/environments", json=body)
    assert response.status_code == 201, response.text


async def create_flag(api: httpx.AsyncClient, env: str, key: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(f"{API}/environments/{env}/flags", json={"key": key, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def history_url(nats_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """The admin service with the projector's read model (history, time travel, revert), over uvicorn."""
    async with served_with_history(nats_url, tmp_path) as (url, _):
        yield url


@pytest.fixture
async def hui(browser: Any, history_url: str, screenshot_dir: Path) -> AsyncIterator[UI]:
    """A desktop page over an admin service that has history (a projector and its read model)."""
    async for item in _make_ui(browser, history_url, screenshot_dir, DESKTOP):
        yield item


@pytest.fixture
async def api(admin_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the admin service signed in as the operator (for tests that need no browser)."""
    async with httpx.AsyncClient(base_url=admin_url, headers=auth_headers(), timeout=30) as client:
        yield client
