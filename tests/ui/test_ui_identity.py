"""Who is signed in decides what is recorded and what is allowed: a writer's changes carry its name in the
actor column; a reader sees everything, and what it may not change is not offered (disabled, saying why); a
wrong or revoked token brings the sign-in back."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.ui.conftest import API, UI, create_env, create_flag


async def token(ui: UI, name: str, role: str) -> dict[str, str]:
    response = await ui.api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_changes_carry_the_signed_in_name_and_readers_are_told_no(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_flag(ui.api, "development", "dark-mode", name="Dark mode")
    ada = await token(ui, "ada", "writer")
    viewer = await token(ui, "viewer", "reader")
    page = ui.page

    # A wrong token is refused at the door.
    ui.expect_http(401, 403)
    await page.goto(f"{ui.base}/")
    await ui.fill_token("not-a-token")
    await expect(page.get_by_text("That token was not accepted")).to_be_visible()

    # ada turns the flag on: the list says it was ada.
    await page.get_by_label("API token").fill(ada["token"])
    await page.get_by_role("button", name="Sign in with token").click()
    row = page.locator("tr[data-key='dark-mode']")
    await row.get_by_role("switch").click()
    await expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    await expect(row.locator(".actor")).to_have_text("ada")
    assert (await ui.api.get(f"{API}/environments/development/flags/dark-mode")).json()["actor"] == "ada"

    # A reader sees the same, but is not offered the change: the switch is disabled and says why.
    await page.get_by_role("button", name="Sign out").click()
    await ui.fill_token(viewer["token"])
    await expect(row.locator(".actor")).to_have_text("ada")
    switch = row.get_by_role("switch")
    await expect(switch).to_be_disabled()
    assert "reader" in (await switch.get_attribute("title") or "")
    await expect(page.locator("#role-banner")).to_contain_text("your role here is reader")
    await expect(switch).to_have_attribute("aria-checked", "true")

    # Revoked while signed in: the next call brings the sign-in form back.
    revoked = await ui.api.delete(f"/api/v1/tokens/{viewer['id']}")
    assert revoked.status_code == 200, revoked.text
    await page.get_by_role("link", name="Segments").click()
    await expect(page.get_by_text("Your session ended or your token was revoked")).to_be_visible()
    await expect(page.get_by_label("API token")).to_be_visible()


async def test_a_token_for_one_environment_starts_there_and_sees_only_its_environments(ui: UI) -> None:
    """The README's token (`--role writer --env production`): the UI opens on production, lists only the
    environments the token may act on, and goes live there (no 403, no endless "Reconnecting")."""
    await create_env(ui.api, "development")
    await create_env(ui.api, "production", production=True)
    await create_env(ui.api, "staging")
    await create_flag(ui.api, "production", "new-checkout", name="New checkout")
    ada = {"name": "ada", "role": "writer", "environments": ["production"]}
    created = await ui.api.post("/api/v1/tokens", json=ada)
    assert created.status_code == 201, created.text
    page = ui.page

    # The operator last looked at development in this browser: that choice must not lead ada there.
    await ui.sign_in()
    await expect(page.locator("#env-select")).to_have_value("development")
    await page.get_by_role("button", name="Sign out").click()

    await ui.fill_token(created.json()["token"])
    await expect(page.locator("tr[data-key='new-checkout']")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/ui/#/production/flags$"))
    options = page.locator("#env-select option")
    await expect(options).to_have_count(1)
    await expect(options).to_have_text(["Production"])
    await expect(page.locator("#live")).to_have_text("Live")

    # A link to an environment the token may not act on lands on one it may.
    await page.goto(f"{ui.base}/ui/#/development/segments")
    await expect(page).to_have_url(re.compile(r"/ui/#/production/segments$"))
    await expect(page.locator("#live")).to_have_text("Live")
