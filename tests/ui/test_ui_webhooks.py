"""The webhooks page: an admin creates a webhook to a real receiver, copies the secret shown once, sees the
deliveries counted, and deletes it after a confirmation. A writer does not see the page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from flagstream.services.webhooks.model import SIGNATURE_HEADER, verify
from tests.helpers import ADMIN_TOKEN, eventually, serving
from tests.ui.conftest import UI, create_env, create_flag
from tests.webhooks.test_webhooks_api import receiving


@pytest.fixture
async def admin_url(nats_url: str) -> AsyncIterator[str]:
    """The admin API allowing the test's receiver on 127.0.0.1 (webhooks refuse loopback by default)."""
    from flagstream.services.admin.app import create_app

    async with serving(create_app(nats_url=nats_url, operator_token=ADMIN_TOKEN, webhook_allow=["127.0.0.1"])) as url:
        yield url


async def test_create_see_deliveries_and_delete_a_webhook(ui: UI) -> None:
    await create_env(ui.api, "production", production=True)
    page = ui.page
    async with receiving() as receiver:
        await ui.sign_in()
        await page.get_by_role("link", name="Webhooks").click()
        await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        await page.get_by_label("URL").fill(receiver.url)
        await page.get_by_label("Description (optional)").fill("#releases")
        await page.get_by_role("checkbox", name="flag", exact=True).check()
        await page.get_by_role("checkbox", name="Production", exact=True).check()
        await page.get_by_role("button", name="Create webhook").click()
        secret = await page.get_by_role("region", name="Signing secret").locator("code.secret").text_content()
        assert secret is not None
        assert secret.startswith("whsec_")
        await expect(page.get_by_role("heading", name="Webhooks (1)")).to_be_visible()

        await create_flag(ui.api, "production", "new-checkout")
        await eventually(lambda: len(receiver.received) == 1, what="the change delivered")
        headers, raw = receiver.received[0]
        assert verify(secret, headers[SIGNATURE_HEADER.lower()], raw) is not None  # the secret the page showed

        row = page.get_by_role("table", name="Webhooks").locator("tbody tr")
        await expect(row).to_contain_text("flag in default/production")
        await page.get_by_role("button", name="Refresh").click()
        await expect(row.locator('[data-label="Delivered"]')).to_contain_text("1")
        await ui.shot("webhooks")

        await page.get_by_role("button", name=f"Send a test delivery to {receiver.url}").click()
        await expect(page.get_by_role("status").filter(has_text="Test delivery taken")).to_contain_text("answered 204")
        assert [b["type"] for b in receiver.bodies] == ["flag.created", "ping"]

        await page.get_by_role("button", name=f"Delete webhook {receiver.url}").click()
        await page.get_by_role("dialog").get_by_role("button", name="Delete webhook").click()
        await expect(page.get_by_role("heading", name="Webhooks (0)")).to_be_visible()
        assert (await ui.api.get("/api/v1/webhooks")).json()["items"] == []


async def test_a_writer_does_not_see_the_webhooks_page(ui: UI) -> None:
    await create_env(ui.api, "production")
    writer = await ui.api.post("/api/v1/tokens", json={"name": "pm", "role": "writer"})
    await ui.sign_in(writer.json()["token"])
    await expect(ui.page.get_by_role("link", name="Flags", exact=True)).to_be_visible()
    await expect(ui.page.get_by_role("link", name="Fleet")).to_be_visible()
    await expect(ui.page.get_by_role("link", name="Webhooks")).to_have_count(0)
