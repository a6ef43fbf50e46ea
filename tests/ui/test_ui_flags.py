"""The web UI in a real browser (Debian's chromium, headless) against the real admin service on a real
nats-server: sign in, create a flag, a rule with a 10% rollout, save, toggle, live changes, production
confirmation, 409 conflicts and 422 problems shown next to their fields.
"""

from __future__ import annotations

import re

from playwright.async_api import expect

from flagstream.services.admin.ui import STATIC
from tests.ui.conftest import API, UI, create_env, create_flag


async def test_root_redirects_to_the_ui_and_files_are_served(ui: UI) -> None:
    response = await ui.api.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
    index = await ui.api.get("/ui/")
    assert index.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in index.headers
    script = await ui.api.get("/ui/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await ui.api.get("/ui/nothing.js")).status_code == 404
    assert (await ui.api.get("/ui/.hidden")).status_code == 404
    for path in sorted(STATIC.iterdir()):
        if path.suffix in (".html", ".css", ".js"):
            body = (await ui.api.get(f"/ui/{path.name}")).text
            assert not re.search(r"https?://|//cdn", body), f"{path.name} must not fetch anything from elsewhere"


async def test_sign_in_create_flag_rule_rollout_save_toggle(ui: UI) -> None:
    await create_env(ui.api, "development")
    page = ui.page
    await ui.sign_in()
    await expect(page.get_by_role("heading", name="Flags")).to_be_visible()
    await expect(page.get_by_label("Environment")).to_have_value("development")
    await ui.shot("flags-empty")

    await page.get_by_role("button", name="New flag").click()
    await page.get_by_label("Key").fill("new-checkout")
    await page.get_by_label("Tags").fill("checkout, team-payments")
    await page.get_by_role("button", name="Create flag").click()
    await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()

    # A rule: country in NL, served to 10% of users.
    await page.get_by_role("button", name="+ Rule").click()
    rule = page.locator(".rule").first
    # An attribute nobody's application has reported yet: "Other…", then its name.
    await rule.get_by_label("Attribute").select_option("Other…")
    await rule.get_by_label("Condition 1: name not listed").fill("country")
    await rule.get_by_label("Values").fill("NL\nBE")
    await rule.get_by_label("a percentage rollout").check()
    await rule.get_by_label("Percentage of on").fill("10")
    # Not yet 100%: explained before saving, next to the rollout, nothing written.
    await page.get_by_role("button", name="Save Development").click()
    problem = rule.locator(".field-error", has_text="add up to 10%")
    await expect(problem).to_be_visible()
    await expect(page.locator("#problems")).to_contain_text("1 problem")
    assert (await ui.api.get(f"{API}/environments/development/flags/new-checkout")).json()["revision"] == 1
    await rule.get_by_label("Percentage of off").fill("90")
    await expect(rule.locator(".sum")).to_have_text("100%")
    await expect(rule.locator(".sentence")).to_have_text("If country is one of NL, BE, serve on to 10%, off to 90%")
    await page.get_by_role("button", name="Save Development").click()
    await expect(page.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    stored = (await ui.api.get(f"{API}/environments/development/flags/new-checkout")).json()
    serve = stored["flag"]["rules"][0]["serve"]["rollout"]["variations"]
    assert {v["variation"]: v["weight"] for v in serve} == {"on": 10_000, "off": 90_000}
    assert stored["flag"]["rules"][0]["clauses"][0]["values"] == ["NL", "BE"]
    assert stored["flag"]["tags"] == ["checkout", "team-payments"]
    await ui.shot("flag-editor")

    # Toggle it on (development: no confirmation).
    await page.get_by_role("switch").click()
    await expect(page.locator("#flag-state")).to_have_text("ON")
    stored = (await ui.api.get(f"{API}/environments/development/flags/new-checkout")).json()
    assert stored["flag"]["on"] is True
    await expect(page.locator("#last-change .actor")).to_have_text(stored["actor"])

    # The list shows it on, with who changed it last.
    await page.get_by_role("link", name="← Flags").click()
    row = page.locator("tr[data-key='new-checkout']")
    await expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    await expect(row.locator(".actor")).to_have_text(stored["actor"])
    await expect(row.locator(".tag")).to_have_text(["checkout", "team-payments"])
    await ui.shot("flags-one-environment")


async def test_changes_made_elsewhere_appear_live(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_flag(ui.api, "development", "dark-mode", name="Dark mode")
    page = ui.page
    await ui.sign_in()
    row = page.locator("tr[data-key='dark-mode']")
    await expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "false")
    await expect(page.locator("#live")).to_have_text("Live")

    # Over the API: a new flag, then a toggle; both appear without a reload.
    await create_flag(ui.api, "development", "search-v2", name="Search v2", tags=["search"])
    await expect(page.locator("tr[data-key='search-v2']")).to_be_visible()
    response = await ui.api.post(f"{API}/environments/development/flags/dark-mode/on", json={"comment": "launch"})
    assert response.status_code == 200
    await expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    await expect(row).to_contain_text("launch")

    # On the flag page too (nothing edited there: it just shows the new state).
    await page.get_by_role("link", name="Dark mode").click()
    await expect(page.locator("#flag-state")).to_have_text("ON")
    response = await ui.api.post(f"{API}/environments/development/flags/dark-mode/off", json={})
    await expect(page.locator("#flag-state")).to_have_text("OFF")

    # Filters: search and state.
    await page.get_by_role("link", name="← Flags").click()
    await page.get_by_role("searchbox", name="Search").fill("search")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await page.get_by_role("searchbox", name="Search").fill("")
    await page.get_by_label("State").select_option("on")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody")).to_contain_text("No flag matches")


async def test_production_toggle_asks_for_confirmation_and_a_comment(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_env(ui.api, "production", production=True)
    await create_flag(ui.api, "production", "payments-v2", name="Payments v2")
    page = ui.page
    await ui.sign_in()
    await page.get_by_label("Environment").select_option("production")
    await expect(page.locator("#env-badge")).to_have_text("Production")
    row = page.locator("tr[data-key='payments-v2']")
    switch = row.locator("td[data-env='production']").get_by_role("switch")
    await switch.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Turn Payments v2 on in Production?")
    await dialog.get_by_role("button", name="Turn on").click()
    await expect(dialog.get_by_text("A comment is required")).to_be_visible()
    await ui.shot("production-confirm", full_page=False)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert (await ui.api.get(f"{API}/environments/production/flags/payments-v2")).json()["flag"]["on"] is False

    # With the keyboard only: Space on the switch, type the comment, Tab to the button, Enter.
    await switch.focus()
    await page.keyboard.press("Space")
    await expect(dialog.get_by_label("Comment (required)")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(switch).to_be_focused()  # the focus goes back where it was
    await page.keyboard.press("Space")
    await expect(dialog.get_by_label("Comment (required)")).to_be_focused()
    # A quick hand: Escape and at once Space again opens the dialog again (the switch is not left busy).
    await page.keyboard.press("Escape")
    await page.keyboard.press("Space")
    await expect(dialog.get_by_label("Comment (required)")).to_be_focused()
    await page.keyboard.type("INC-42: roll forward")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Turn on")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(switch).to_have_attribute("aria-checked", "true")
    stored = (await ui.api.get(f"{API}/environments/production/flags/payments-v2")).json()
    assert stored["flag"]["on"] is True
    assert stored["comment"] == "INC-42: roll forward"
    await expect(page.get_by_role("status").filter(has_text="is now ON")).to_be_visible()
