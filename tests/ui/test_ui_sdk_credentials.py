"""SDK credentials in the browser, against `flagstream up` (its own nats-server with users): an admin makes one on
the SDK credentials page, the password shown once and the connect snippet shown with it connect a real SDK that
receives the environment's flags; the listing never shows the password; revoking it on the page cuts that SDK off.
A writer is not offered the page, an admin of production only is offered it in production and makes one there."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import nats
import pytest
from playwright.async_api import expect

from flagstream import ClientStatus
from tests.helpers import ADMIN_TOKEN, eventually
from tests.runtime.test_up import Up, processes_using
from tests.security.test_security_up import NATS_LINE, data_dir  # noqa: F401 (the fixture)
from tests.ui.conftest import DESKTOP, UI, _make_ui

PRODUCTION = "/api/v1/environments/production"
PASSWORD = "correct horse battery staple"
#: A creation answers once nats-server accepts the credential (after `flagstream up` reloads it), or after the
#: admin's ACCEPT_WAIT (5 s) with accepted false: the page waits for that answer, so the test gives it more.
WITHIN = 15_000


def with_operator_token(folder: Path) -> None:
    """The data folder with the operator token the UI fixture's API client carries (`flagstream up` keeps it)."""
    folder.mkdir(parents=True)
    token_file = folder / "operator-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    os.chmod(token_file, 0o600)


async def test_an_admin_makes_a_credential_an_sdk_connects_with_its_snippet_and_revoking_cuts_it_off(
    browser: Any,
    screenshot_dir: Path,
    data_dir: Path,  # noqa: F811
) -> None:
    await asyncio.to_thread(with_operator_token, data_dir)
    up = Up(data_dir)
    clients: list[Any] = []
    try:
        await asyncio.to_thread(up.wait_ready)
        nats_url = next(m.group(1) for line in up.output if (m := NATS_LINE.search(line)))
        async for ui in _make_ui(browser, up.url, screenshot_dir, DESKTOP):
            await scenario(ui, nats_url, clients)
    finally:
        for client in clients:
            await asyncio.to_thread(client.close)
        assert up.interrupt() == 0, "".join(up.output)
    assert processes_using(data_dir) == []


async def scenario(ui: UI, nats_url: str, clients: list[Any]) -> None:
    """The admin's and the writer's visits; the SDK clients it starts go into ``clients``."""
    assert (await ui.api.post(f"{PRODUCTION}/flags", json={"key": "checkout"})).status_code == 201
    writer = {"login": "wendy", "name": "Wendy Writer", "password": PASSWORD, "grants": [{"role": "writer"}]}
    assert (await ui.api.post("/api/v1/users", json=writer)).status_code == 201
    grants = [{"role": "admin", "environment": "production"}, {"role": "reader"}]
    admin = {"login": "pat", "name": "Pat Prod", "password": PASSWORD, "grants": grants}
    assert (await ui.api.post("/api/v1/users", json=admin)).status_code == 201
    page = ui.page

    await ui.sign_in_as("wendy", PASSWORD)
    await expect(page.locator("#whoami")).to_have_text("Signed in as Wendy Writer")
    await expect(page.get_by_role("link", name="Flags", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="SDK credentials")).to_have_count(0), "a writer: not offered"
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Flagstream")).to_be_visible()

    # An admin of production only: offered the page in production, not in development; her session makes one.
    await ui.sign_in_as("pat", PASSWORD)
    await expect(page.locator("#whoami")).to_have_text("Signed in as Pat Prod")
    await expect(page.get_by_role("link", name="Flags", exact=True)).to_have_attribute("href", "#/development/flags")
    await expect(page.get_by_role("link", name="SDK credentials")).to_have_count(0), "not an admin of development"
    await page.get_by_label("Environment").select_option("production")
    link = page.get_by_role("link", name="SDK credentials")
    await expect(link).to_have_attribute("href", "#/production/sdk-credentials")
    await link.click()
    await expect(page.get_by_role("heading", name="New SDK credential for production")).to_be_visible()
    await page.get_by_label("Name (what uses it)").fill("search-service")
    await page.get_by_role("button", name="Create credential").click()
    await expect(page.get_by_role("heading", name="SDK credential search-service")).to_be_visible(timeout=WITHIN)
    row = page.locator("tr", has=page.get_by_text("search-service"))
    await expect(row).to_contain_text("by Pat Prod")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Flagstream")).to_be_visible()

    await ui.sign_in()
    await page.get_by_label("Environment").select_option("production")
    link = page.get_by_role("link", name="SDK credentials")
    await expect(link).to_have_attribute("href", "#/production/sdk-credentials")  # the nav of production, drawn
    await link.click()
    await expect(page.get_by_role("heading", name="SDK credentials", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="New SDK credential for production")).to_be_visible()
    await page.get_by_label("Name (what uses it)").fill("checkout-service")
    await page.get_by_role("button", name="Create credential").click()
    await expect(page.get_by_role("heading", name="SDK credential checkout-service")).to_be_visible(timeout=WITHIN)
    password = await page.locator("#sc-password").text_content()
    user = await page.locator("#sc-user").text_content()
    snippet = await page.locator("#sc-snippet").text_content()
    assert password
    assert user
    assert snippet
    assert user.startswith("sdk-default-production.")
    assert password in snippet
    assert user in snippet
    await expect(page.locator("#sc-pending")).to_have_count(0), "flagstream up took it at once"
    row = page.locator("tr", has=page.get_by_text(user))
    await expect(row).to_contain_text("checkout-service")
    await expect(page.get_by_role("table", name="SDK credentials")).not_to_contain_text(password)
    await ui.shot("sdk-credentials-created", full_page=True)

    # The snippet as shown, with the address of this nats-server: a real SDK, ready with the flags.
    namespace: dict[str, Any] = {"NATS_URL": nats_url}
    await asyncio.to_thread(exec, compile(snippet, "the page's snippet", "exec"), namespace)
    client = namespace["client"]
    clients.append(client)
    assert client.is_ready, f"not ready: {client.last_error!r}"
    assert client.bool_variation("checkout", {"key": "u1"}, True) is False
    assert (await ui.api.post(f"{PRODUCTION}/flags/checkout/on")).status_code == 200
    await eventually(lambda: client.bool_variation("checkout", {"key": "u1"}, False), what="the change")

    # After a reload, the listing has it and nothing of its password.
    await page.reload()
    await expect(page.get_by_role("heading", name="SDK credentials", exact=True)).to_be_visible()
    await expect(page.get_by_role("table", name="SDK credentials")).to_contain_text(user)
    assert password not in await page.content()

    await page.get_by_role("button", name="Revoke credential checkout-service").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading", name="Revoke checkout-service?")).to_be_visible()
    await dialog.get_by_role("button", name="Revoke credential").click()
    await expect(page.get_by_text("SDK credential checkout-service revoked.")).to_be_visible()
    await expect(page.get_by_role("heading", name="SDK credentials of production (1)")).to_be_visible()
    await expect(page.get_by_role("table", name="SDK credentials")).not_to_contain_text("checkout-service")
    await eventually(lambda: client.status is ClientStatus.STALE, what="the SDK cut off")
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(nats_url, user=user, password=password, allow_reconnect=False)
