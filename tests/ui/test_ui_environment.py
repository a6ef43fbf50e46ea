"""An environment's approvals setting in the browser (Chromium over the real admin service): an admin turns
approvals on for production on the environment's page, after which a flag change there is held as a change
request (and so is a change of the setting itself); a reader sees the setting but cannot change it; whatever
the API refuses, the page says in the API's words."""

from __future__ import annotations

from playwright.async_api import expect

from tests.ui.conftest import API, UI, create_env, create_flag
from tests.ui.test_ui_people import PASSWORD, person
from tests.ui.test_ui_phone import no_horizontal_scroll

PRODUCTION = f"{API}/environments/production"


async def test_an_admin_asks_for_approvals_and_a_change_in_production_becomes_a_change_request(ui: UI) -> None:
    await create_env(ui.api, "production", production=True)
    await create_flag(ui.api, "production", "checkout", name="Checkout")
    await person(ui, "ada", [{"role": "admin"}], "Ada Admin")
    await person(ui, "vic", [{"role": "reader"}], "Vic Viewer")
    page = ui.page

    await ui.sign_in_as("ada", PASSWORD)
    await page.get_by_role("link", name="Environment", exact=True).click()
    await expect(page.get_by_role("heading", name="Production settings")).to_be_visible()
    state = page.locator("#approvals-state")
    await expect(state).to_have_text("Changes apply at once: no approval needed.")

    # The API judges what is typed: its 422 is shown at the field, in its words, and nothing changes.
    ui.expect_http(422)
    await page.get_by_label("Approvals needed").fill("11")
    await page.get_by_label("Comment (required in production)").fill("four eyes")
    await page.get_by_role("button", name="Save approvals").click()
    refused = "must be from 0 (no approvals) to 10"
    await expect(page.locator("#env-error")).to_have_text(f"invalid environment: {refused} at $.approvals")
    await expect(page.locator("[data-error-for='$.approvals']")).to_have_text(refused)
    await expect(page.get_by_label("Approvals needed")).to_have_attribute("aria-invalid", "true")
    assert (await ui.api.get(PRODUCTION)).json()["environment"]["approvals"] == 0

    await page.get_by_label("Approvals needed").fill("1")
    await page.get_by_label("Writers (and admins) of this environment").check()
    await page.get_by_label("Single sign-on groups").fill("sre")
    await page.get_by_label("Let a flag be turned off at once", exact=False).check()
    await page.get_by_label("Comment (required in production)").fill("four eyes on production")
    await page.get_by_role("button", name="Save approvals").click()
    await expect(state).to_have_text(
        "Changes need 1 approval, from writer or group:sre; a flag can still be turned off at once, with a reason."
    )
    stored = (await ui.api.get(PRODUCTION)).json()
    assert {k: stored["environment"][k] for k in ("approvals", "approvers", "emergency_off")} == {
        "approvals": 1, "approvers": ["writer", "group:sre"], "emergency_off": True}  # fmt: skip
    assert stored["comment"] == "four eyes on production"
    await ui.shot("environment-approvals", full_page=True)

    # A flag change in production is now held as a change request, and shown as one.
    await page.goto(f"{ui.base}/ui/#/production/flags/checkout")
    await expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    await page.locator("#flag-switch").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("held as a change request")
    await dialog.get_by_label("Comment (required)").fill("launch")
    await dialog.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_role("status").filter(has_text="Held for approval")).to_be_visible()
    await expect(page.locator("#pending-requests")).to_contain_text("needs 1 approval in production")
    assert (await ui.api.get(f"{PRODUCTION}/flags/checkout")).json()["flag"]["on"] is False
    assert [r["title"] for r in (await ui.api.get(f"{API}/requests")).json()["items"]] == ["launch"]

    # Changing the setting is a change to production too: held, and the page says so (the setting stays).
    await page.get_by_role("link", name="Change requests").click()
    await expect(page.get_by_role("heading", name="Change requests")).to_be_visible()
    await page.get_by_role("link", name="Approvals in Production").click()  # the setting, from the requests
    await expect(page.get_by_role("heading", name="Production settings")).to_be_visible()
    await page.get_by_label("Approvals needed").fill("0")
    await page.get_by_label("Comment (required in production)").fill("no more approvals")
    await page.get_by_role("button", name="Save approvals").click()
    await expect(page.locator("#approvals-held")).to_contain_text("Held for approval as change request")
    await expect(state).to_contain_text("Changes need 1 approval")
    assert (await ui.api.get(PRODUCTION)).json()["environment"]["approvals"] == 1
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Flagstream")).to_be_visible()

    # A reader sees the setting, read-only.
    await ui.sign_in_as("vic", PASSWORD)
    await page.goto(f"{ui.base}/ui/#/production/settings")
    await expect(page.get_by_role("heading", name="Production settings")).to_be_visible()
    await expect(state).to_have_text(
        "Changes need 1 approval, from writer or group:sre; a flag can still be turned off at once, with a reason."
    )
    await expect(page.get_by_label("Approvals needed")).to_have_value("1")
    await expect(page.get_by_label("Approvals needed")).to_be_disabled()
    await expect(page.get_by_label("Single sign-on groups")).to_have_value("sre")
    await expect(page.get_by_label("Let a flag be turned off at once", exact=False)).to_be_disabled()
    await expect(page.get_by_role("button", name="Save approvals")).to_have_count(0)
    await expect(page.locator("#approvals-read-only")).to_have_text(
        "Your role in Production is reader: you can see this setting but not change it."
    )


async def test_what_the_api_refuses_the_page_says_in_its_words(ui: UI) -> None:
    await create_env(ui.api, "production", production=True)
    wes = await person(ui, "wes", [{"role": "writer", "environment": "production"}], "Wes Writer")
    page = ui.page
    await ui.sign_in_as("wes", PASSWORD)
    await page.goto(f"{ui.base}/ui/#/production/settings")
    await expect(page.get_by_role("heading", name="Production settings")).to_be_visible()
    # An admin makes Wes a reader while his page is open: the form is still there, the API says no.
    demoted = await ui.api.patch(f"/api/v1/users/{wes['id']}", json={"grants": [{"role": "reader"}]})
    assert demoted.status_code == 200, demoted.text
    ui.expect_http(403)
    await page.get_by_label("Approvals needed").fill("2")
    await page.get_by_label("Comment (required in production)").fill("more eyes")
    await page.get_by_role("button", name="Save approvals").click()
    refused = page.locator("#env-error")
    await expect(refused).to_contain_text("'Wes Writer' has the role reader on environment 'production'")
    await expect(refused).to_have_attribute("role", "alert")
    await expect(page.get_by_label("Approvals needed")).to_have_value("2")  # what he typed stays
    assert (await ui.api.get(PRODUCTION)).json()["environment"]["approvals"] == 0


async def test_the_environment_page_fits_a_phone(phone: UI) -> None:
    await create_env(phone.api, "production", production=True)
    gated = await phone.api.patch(PRODUCTION, json={"approvals": 2, "approvers": ["admin", "group:site-reliability"]})
    assert gated.status_code == 200, gated.text
    page = phone.page
    await phone.sign_in()
    await page.goto(f"{phone.base}/ui/#/production/settings")
    await expect(page.get_by_role("heading", name="Production settings")).to_be_visible()
    await expect(page.locator("#approvals-state")).to_have_text(
        "Changes need 2 approvals, from admin or group:site-reliability; turning a flag off is held too."
    )
    await no_horizontal_scroll(phone)
    await phone.shot("phone-environment", full_page=True)
