"""The UI on a phone-sized viewport: nothing wider than the screen, the main tasks reachable and usable."""

from __future__ import annotations

from playwright.async_api import expect

from tests.ui.conftest import API, UI, create_env, create_flag


async def no_horizontal_scroll(ui: UI) -> None:
    width = await ui.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 1, f"the page is {width}px wider than the phone screen"


async def test_phone_layout_list_toggle_and_editor(phone: UI) -> None:
    ui = phone
    await create_env(ui.api, "development")
    await create_env(ui.api, "production", production=True)
    rule = {
        "id": "nl",
        "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
        "serve": {
            "rollout": {"variations": [{"variation": "on", "weight": 10_000}, {"variation": "off", "weight": 90_000}]}
        },
    }
    await create_flag(ui.api, "production", "new-checkout", name="New checkout", tags=["checkout"], rules=[rule])
    await create_flag(ui.api, "production", "dark-mode", name="Dark mode", tags=["ui"], on=True)
    page = ui.page
    await ui.sign_in()
    await page.get_by_label("Environment").select_option("production")
    row = page.locator("tr[data-key='new-checkout']")
    await expect(row).to_be_visible()
    await no_horizontal_scroll(ui)
    await ui.shot("phone-flags")

    switch = row.locator("td[data-env='production']").get_by_role("switch")
    await switch.click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Comment (required)").fill("launch NL")
    await ui.shot("phone-confirm", full_page=False)
    await dialog.get_by_role("button", name="Turn on").click()
    await expect(switch).to_have_attribute("aria-checked", "true")
    assert (await ui.api.get(f"{API}/environments/production/flags/new-checkout")).json()["flag"]["on"] is True

    await row.get_by_role("link", name="New checkout").click()
    await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()
    await expect(page.locator(".rule .sum").first).to_have_text("100%")
    await no_horizontal_scroll(ui)
    await ui.shot("phone-flag")
