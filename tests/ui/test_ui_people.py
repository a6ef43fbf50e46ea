"""People in the browser: signing in with a password or through the identity provider's own login page (a real
node-oidc-provider), a shell that says who is signed in and offers only what their role allows, the admin's
People and API tokens pages, and a session that ends bringing the sign-in back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from playwright.async_api import expect

from flagstream.services.admin.app import create_app
from flagstream.services.people import GroupRole, OidcConfig, PeopleConfig
from flagstream.services.runtime import free_port
from tests.helpers import ADMIN_TOKEN, auth_headers, projecting, serving
from tests.oidc.provider import CLIENT_ID, CLIENT_SECRET, oidc_provider
from tests.ui.conftest import API, DESKTOP, UI, _make_ui, create_env, create_flag

PASSWORD = "correct horse battery staple"


async def person(ui: UI, login: str, grants: list[dict[str, str]], name: str) -> dict[str, Any]:
    body = {"login": login, "name": name, "password": PASSWORD, "grants": grants, "email": f"{login}@example.com"}
    made = await ui.api.post("/api/v1/users", json=body)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def test_a_person_signs_in_with_a_password_and_the_shell_knows_their_role(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_env(ui.api, "production", production=True)
    await create_flag(ui.api, "development", "dark-mode", name="Dark mode")  # in production too, off
    await person(ui, "ada", [{"role": "writer", "environment": "development"}, {"role": "reader"}], "Ada Lovelace")
    page = ui.page

    ui.expect_http(401)
    await page.goto(f"{ui.base}/")
    await page.get_by_label("Login").fill("ada")
    await page.get_by_label("Password").fill("not her password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("wrong login or password")

    await ui.sign_in_as("ada", PASSWORD)
    await expect(page.locator("#whoami")).to_have_text("Signed in as Ada Lovelace")
    await expect(page.get_by_role("link", name="People")).to_have_count(0), "not an admin: no People page"
    await expect(page.get_by_role("link", name="API tokens")).to_have_count(0)

    # In development she is a writer: the switch works, and the change carries her name.
    await page.goto(f"{ui.base}/ui/#/development/flags")
    await expect(page.get_by_role("heading", name="Flags")).to_be_visible()
    await expect(page.get_by_label("Environment")).to_have_value("development")
    row = page.locator("tr[data-key='dark-mode']")
    development = row.locator("td[data-env='development']").get_by_role("switch")
    await development.click()
    await expect(development).to_have_attribute("aria-checked", "true")
    await expect(row.locator(".actor")).to_have_text("Ada Lovelace")
    await expect(page.locator("#role-banner")).to_be_hidden()
    # The production column next to it: she only reads there, so its switch is not offered, even from here.
    await expect(row.locator("td[data-env='production']").get_by_role("switch")).to_be_disabled()

    # In production she only reads: nothing that changes it is offered, and the page says why.
    await page.get_by_label("Environment").select_option("production")
    await expect(page.locator("#role-banner")).to_contain_text("your role here is reader")
    switch = page.locator("tr[data-key='dark-mode'] td[data-env='production']").get_by_role("switch")
    await expect(switch).to_be_disabled()
    assert "reader" in (await switch.get_attribute("title") or "")
    await ui.shot("people-reader-in-production")
    # Reading stays offered: the playground evaluates for a reader.
    await page.get_by_role("link", name="Playground").click()
    await expect(page.get_by_role("button", name="Evaluate")).to_be_enabled()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Flagstream")).to_be_visible()
    assert (await ui.api.get(f"{API}/environments/production/flags/dark-mode")).json()["flag"]["on"] is False


async def test_an_admin_manages_people_and_tokens_in_the_browser(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_env(ui.api, "production", production=True)
    await person(ui, "root", [{"role": "admin"}], "Rosa Admin")
    page = ui.page
    await ui.sign_in_as("root", PASSWORD)

    await page.get_by_role("link", name="People").click()
    await expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()
    await page.get_by_label("Login").fill("linus")
    await page.get_by_label("Name (shown in the history)").fill("Linus Release")
    await page.get_by_label("Password (12 characters or more)").fill("a release manager pass")
    form = page.locator("form", has=page.get_by_role("button", name="Create person"))
    await form.get_by_label("Production (production)").select_option("writer")
    await page.get_by_role("button", name="Create person").click()
    row = page.locator("tr[data-login='linus']")
    await expect(row).to_contain_text("writer on production")
    users = (await ui.api.get("/api/v1/users")).json()["items"]
    assert [u["grants"] for u in users if u["login"] == "linus"] == [[{"role": "writer", "environment": "production"}]]
    await ui.shot("people-page", full_page=True)

    await page.get_by_role("link", name="API tokens").click()
    await page.get_by_label("Name (recorded with its changes)").fill("ci-deploy")
    await page.get_by_label("Role").select_option("writer")
    await page.get_by_role("button", name="Create token").click()
    secret = await page.locator("#tok-secret-value").text_content()
    assert secret is not None
    assert secret.startswith("fs_")
    assert (await ui.api.get(f"{API}/environments", headers=auth_headers(secret))).status_code == 200
    await page.get_by_role("button", name="Revoke token ci-deploy").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    await expect(page.get_by_text("Token ci-deploy revoked.")).to_be_visible()
    assert (await ui.api.get(f"{API}/environments", headers=auth_headers(secret))).status_code == 401


async def test_an_ended_session_brings_the_sign_in_back(ui: UI) -> None:
    await create_env(ui.api, "development")
    ada = await person(ui, "ada", [{"role": "writer"}], "Ada Lovelace")
    page = ui.page
    await ui.sign_in_as("ada", PASSWORD)
    ui.expect_http(401)
    ended = await ui.api.post(f"/api/v1/users/{ada['id']}/signout")
    assert ended.status_code == 200
    await page.get_by_role("link", name="Segments").click()
    await expect(page.get_by_text("Your session ended")).to_be_visible()
    await expect(page.get_by_label("Login")).to_be_visible()


# -- single sign-on through the provider's own login page ---------------------------------------------------


@pytest.fixture
async def sso_ui(browser: Any, nats_url: str, tmp_path: Path, screenshot_dir: Path) -> AsyncIterator[UI]:
    """The admin service with history and single sign-on, on a fixed port the provider knows, and a page whose
    requests can reach nothing but this machine's loopback (the provider's page links a web font)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    accounts = {"grace": {"name": "Grace Hopper", "email": "grace@example.com", "groups": ["flag-editors"]}}
    async with oidc_provider([f"{base}/auth/oidc/callback"], accounts=accounts) as provider:
        roles = msgspec.convert([{"group": "flag-editors", "role": "writer"}], list[GroupRole])
        config = PeopleConfig(oidc=OidcConfig(
            issuer=provider.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, label="Acme SSO",
            scopes=["openid", "profile", "email", "groups"], roles=roles,
        ))  # fmt: skip
        db = tmp_path / "readmodel.sqlite"
        app = create_app(nats_url=nats_url, read_model=db, operator_token=ADMIN_TOKEN, people=config)
        async with projecting(nats_url, db), serving(app, port) as url:
            async for item in _make_ui(browser, url, screenshot_dir, DESKTOP):
                await item.page.context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda r: r.abort())
                yield item


async def test_a_person_signs_in_at_the_provider_changes_a_flag_and_history_names_them(sso_ui: UI) -> None:
    ui = sso_ui
    await create_env(ui.api, "development")
    await create_flag(ui.api, "development", "search", name="Search")
    page = ui.page

    await page.goto(f"{ui.base}/")
    await page.get_by_role("link", name="Sign in with Acme SSO").click()
    # The provider's own login page (node-oidc-provider), on its own origin.
    await expect(page).to_have_url(re.compile(r"/interaction/"))
    await page.locator("input[name=login]").fill("grace")
    await page.locator("input[name=password]").fill("whatever the provider checks")
    await page.locator("button[type=submit]").click()

    await expect(page.locator("#topbar")).to_be_visible()
    await expect(page.locator("#whoami")).to_have_text("Signed in as Grace Hopper via single sign-on")
    row = page.locator("tr[data-key='search']")
    await row.get_by_role("switch").click()
    await expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")

    await page.goto(f"{ui.base}/ui/#/development/history/flag/search")
    newest = page.locator("li.entry").first
    await expect(newest).to_contain_text("flag.toggled")
    await expect(newest.locator(".actor")).to_have_text("Grace Hopper")
    await expect(newest).to_contain_text("grace@example.com")
    assert "via" in (await newest.locator(".actor").get_attribute("title") or "")
    await ui.shot("people-sso-history")

    async with httpx.AsyncClient(base_url=ui.base, headers=auth_headers()) as api:
        history = (await api.get(f"{API}/environments/development/flags/search/history")).json()["items"]
    assert history[0]["author"]["name"] == "Grace Hopper"
    assert history[0]["author"]["via"] == "oidc"
