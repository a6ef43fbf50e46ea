"""Change requests in the browser (Chromium over the real admin service): one person turns a flag on in an
environment that asks for approvals and it is held as a change request; another person reads what it changes in
sentences, approves it and applies it; an application's SDK sees the change only once it is applied."""

from __future__ import annotations

from playwright.async_api import expect

from flagstream import AsyncFlagstreamClient
from tests.helpers import until
from tests.ui.conftest import API, UI, create_env, create_flag
from tests.ui.test_ui_people import PASSWORD, person

USER = {"key": "user-1"}


async def test_one_person_requests_another_approves_and_the_sdk_sees_it_only_once_applied(
    hui: UI, nats_url: str
) -> None:
    ui = hui  # an admin service with history: the flag's history names the request that applied its change
    await create_env(ui.api, "production", production=True)
    await create_flag(ui.api, "production", "checkout", name="New checkout")
    gated = await ui.api.patch(f"{API}/environments/production", json={"approvals": 1})
    assert gated.status_code == 200, gated.text
    await person(ui, "ann", [{"role": "writer"}], "Ann Author")
    await person(ui, "bob", [{"role": "writer"}], "Bob Approver")
    client = AsyncFlagstreamClient(nats_url, environment="production")
    assert await client.start(wait=15)
    try:
        page = ui.page
        # Ann turns the flag on: held as a change request, and the flag page says one is pending.
        await ui.sign_in_as("ann", PASSWORD)
        await page.goto(f"{ui.base}/ui/#/production/flags/checkout")
        await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()
        await page.locator("#flag-switch").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("held as a change request")
        await dialog.get_by_label("Comment (required)").fill("launch the new checkout")
        await dialog.get_by_role("button", name="Turn on").click()
        await expect(page.get_by_role("status").filter(has_text="Held for approval")).to_be_visible()
        pending = page.locator("#pending-requests")
        await expect(pending).to_contain_text("A change request is pending on this flag: launch the new checkout")
        await expect(pending).to_contain_text("needs 1 approval in production")
        await expect(page.locator("#flag-state")).to_have_text("OFF")
        request = (await ui.api.get(f"{API}/requests")).json()["items"][0]
        assert await client.wait_for_sequence(request["version"], 15)
        assert client.bool_variation("checkout", USER, False) is False
        # Her own request: she may not approve it.
        await pending.get_by_role("link", name="launch the new checkout").click()
        await expect(page.get_by_role("heading", name="launch the new checkout")).to_be_visible()
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        await expect(page.get_by_role("button", name="Cancel request")).to_be_visible()
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in to Flagstream")).to_be_visible()

        # Bob finds it among the open requests, reads what it changes, comments, approves and applies it.
        await ui.sign_in_as("bob", PASSWORD)
        await page.goto(f"{ui.base}/ui/#/production/requests")
        await expect(page.get_by_role("heading", name="Change requests")).to_be_visible()
        table = page.get_by_role("table", name="Change requests")
        await expect(table).to_contain_text("Ann Author")
        await table.get_by_role("link", name="launch the new checkout").click()
        await expect(page.get_by_role("heading", name="launch the new checkout")).to_be_visible()
        changes = page.get_by_role("list", name="What it changes")
        await expect(changes).to_contain_text("flag checkout in production")
        await expect(changes).to_contain_text("turned on")
        await expect(page.get_by_role("button", name="Apply")).to_have_count(0)  # not approved yet
        await page.get_by_label("Comment", exact=True).fill("checked the dashboards")
        await page.get_by_role("button", name="Comment", exact=True).click()
        await expect(page.get_by_role("list", name="Review")).to_contain_text("Bob Approver: checked the dashboards")
        await page.get_by_role("button", name="Approve").click()
        await page.get_by_role("dialog").get_by_role("button", name="Approve").click()
        await expect(page.locator("#request-state")).to_have_text("approved")
        await expect(page.get_by_role("list", name="Review")).to_contain_text("Bob Approver approved")
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)  # once is enough
        assert await client.wait_for_sequence(
            (await ui.api.get(f"{API}/requests/{request['id']}")).json()["version"], 15
        )
        assert client.bool_variation("checkout", USER, False) is False  # approved is not applied
        await ui.shot("request-approved", full_page=True)
        await page.get_by_role("button", name="Apply").click()
        await page.get_by_role("dialog").get_by_role("button", name="Apply").click()
        await expect(page.locator("#request-state")).to_have_text("applied")

        async def served() -> bool:
            return client.bool_variation("checkout", USER, False) is True

        await until(served, "the SDK sees the flag on once the request is applied")
        flag = (await ui.api.get(f"{API}/environments/production/flags/checkout")).json()
        assert flag["flag"]["on"] is True
        assert flag["actor"] == "Ann Author"  # her change, applied through the request
        await page.get_by_role("link", name="checkout").click()
        await expect(page.locator("#flag-state")).to_have_text("ON")
        await expect(page.locator("#pending-requests")).to_be_empty()
        await page.get_by_role("link", name="History and time travel").click()
        await expect(page.get_by_role("heading", name="History of flag checkout")).to_be_visible()
        toggled = page.locator("li.entry[data-type='flag.toggled']")
        await expect(toggled).to_contain_text("Applied through change request " + request["id"], timeout=30_000)
        await expect(toggled.locator(".actor")).to_have_text("Ann Author")
    finally:
        await client.close()
