"""One flag across every environment, in the browser (Debian's chromium against the real admin service on a real
nats-server): the list's column per environment, the editor's definition once and a tab per environment,
conditions built from choices (attributes the fleet has seen, a date picker, segments without an attribute),
compare and promote with a conflict shown, and a flag's history across environments in sentences."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from flagstream import AsyncFlagstreamClient
from tests.helpers import until
from tests.ui.conftest import API, UI, create_env

FLAGS = f"{API}/flags"


def rollout(on: int) -> dict[str, Any]:
    return {
        "rollout": {"variations": [{"variation": "on", "weight": on}, {"variation": "off", "weight": 100_000 - on}]}
    }


#: Scrolls the flag page to its tabs, below the sticky top bar (for the screenshots).
SHOW_TABS = "() => { document.querySelector('.environments').scrollIntoView(); window.scrollBy(0, -60); }"

CA_10 = {"id": "ca", "clauses": [{"attribute": "state", "op": "in", "values": ["CA"]}], "serve": rollout(10_000)}


async def three(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_env(ui.api, "staging")
    await create_env(ui.api, "production", production=True)


async def configure(ui: UI, key: str, env: str, **config: Any) -> dict[str, Any]:
    response = await ui.api.patch(f"{FLAGS}/{key}/environments/{env}", json=config)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_list_has_a_column_per_environment_with_what_it_serves_there(ui: UI) -> None:
    await three(ui)
    assert (await ui.api.post(FLAGS, json={"key": "checkout", "name": "Checkout"})).status_code == 201
    await configure(ui, "checkout", "staging", on=True)
    await configure(ui, "checkout", "production", on=True, rules=[CA_10], fallthrough={"variation": "off"})
    page = ui.page
    await ui.sign_in()
    table = page.get_by_role("table", name="Flags")
    headings = ["Flag", "Development", "Productionprod", "Staging", "Last change"]
    await expect(table.locator("thead th")).to_have_text(headings)
    row = page.locator("tr[data-key='checkout']")
    cell = {env: row.locator(f"td[data-env='{env}']") for env in ("development", "staging", "production")}
    await expect(cell["development"].locator(".summary")).to_have_text("off")
    await expect(cell["staging"].locator(".summary")).to_have_text("on to everyone")
    await expect(cell["production"].locator(".summary")).to_have_text("10% on for state is CA; else off")
    await expect(cell["production"].get_by_role("switch")).to_have_accessible_name(
        "Checkout is on in Production; turn it off"
    )
    await ui.shot("flags-list")

    # A change made elsewhere, in one environment, shows live in its column: the same words the API says.
    changed = await configure(ui, "checkout", "production", rules=[{**CA_10, "serve": rollout(25_000)}])
    assert changed["summary"] == "25% on for state is CA; else off"
    await expect(cell["production"].locator(".summary")).to_have_text(changed["summary"])
    await expect(row).to_contain_text("in Production")  # the last change, and where
    # Toggling in a column acts on that environment only (no confirmation outside production).
    await cell["development"].get_by_role("switch").click()
    await expect(cell["development"].locator(".summary")).to_have_text("on to everyone")
    listed = (await ui.api.get(FLAGS)).json()["items"][0]["environments"]
    assert [listed[env]["on"] for env in ("development", "staging", "production")] == [True, True, True]
    assert listed["development"]["summary"] == "on to everyone"
    # The state filter reads the current environment.
    await page.get_by_label("State").select_option("off")
    await expect(page.locator("tbody")).to_contain_text("No flag matches")


async def test_the_editor_has_the_definition_once_and_a_tab_per_environment(ui: UI) -> None:
    await three(ui)
    created = await ui.api.post(FLAGS, json={"key": "checkout", "name": "Checkout"})
    assert created.status_code == 201, created.text
    await configure(ui, "checkout", "production", on=True, rules=[CA_10], fallthrough={"variation": "off"})
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/staging/flags/checkout")
    await expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    tabs = page.get_by_role("tablist", name="Environments").get_by_role("tab")
    await expect(tabs).to_have_count(3)
    staging = page.get_by_role("tab", name="Staging")
    await expect(staging).to_have_attribute("aria-selected", "true")  # opened on the environment of the link
    panel = page.get_by_role("tabpanel")
    await expect(panel).to_have_accessible_name("Staging off")

    # Keyboard: arrows move between the tabs (focus and selection), Home and End too.
    await staging.focus()
    await page.keyboard.press("ArrowLeft")
    production = page.get_by_role("tab", name="Production")
    await expect(production).to_be_focused()
    await expect(production).to_have_attribute("aria-selected", "true")
    await expect(panel.locator("#reads")).to_contain_text("Rule 1: If state is CA, serve on to 10%, off to 90%")
    await expect(panel.locator(".rule .sentence")).to_have_text("If state is CA, serve on to 10%, off to 90%")
    await page.keyboard.press("Home")
    await expect(page.get_by_role("tab", name="Development")).to_be_focused()
    await page.keyboard.press("ArrowLeft")  # wraps around
    await expect(page.get_by_role("tab", name="Staging")).to_be_focused()

    # An edit in one tab stays while looking at another, marked as unsaved on its tab.
    await page.get_by_role("tab", name="Staging").click()
    await panel.get_by_role("button", name="+ Individual target").click()
    await panel.get_by_label("with these keys").fill("qa-1\nqa-2")
    await expect(page.get_by_role("tab", name="Staging").locator(".dirty")).to_be_visible()
    await production.click()
    await page.get_by_role("tab", name="Staging").click()
    await expect(panel.get_by_label("with these keys")).to_have_value("qa-1\nqa-2")

    # Someone changes production meanwhile: staging's draft is not touched and still saves (its own version).
    await configure(ui, "checkout", "production", fallthrough={"variation": "on"})
    await panel.get_by_role("button", name="Save Staging").click()
    await expect(panel.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    staged = (await ui.api.get(f"{FLAGS}/checkout/environments/staging")).json()
    assert staged["targets"] == [{"variation": "on", "values": ["qa-1", "qa-2"], "context_kind": "user"}]
    assert (await ui.api.get(f"{FLAGS}/checkout/environments/development")).json()["targets"] == []
    await page.evaluate(SHOW_TABS)
    await ui.shot("flag-tabs")

    # The definition is edited once, for every environment.
    await page.get_by_label("Name", exact=True).fill("One-page checkout")
    await page.get_by_label("Maintainer").fill("team-payments")
    await page.locator("#definition").get_by_label("Comment (required: written to production too)").fill("rename")
    await page.get_by_role("button", name="Save definition").click()
    await expect(page.get_by_role("button", name="Definition saved")).to_be_visible()
    doc = (await ui.api.get(f"{FLAGS}/checkout")).json()
    assert (doc["definition"]["name"], doc["definition"]["maintainer"]) == ("One-page checkout", "team-payments")
    for env in ("development", "staging", "production"):
        flag = (await ui.api.get(f"{API}/environments/{env}/flags/checkout")).json()
        assert flag["flag"]["name"] == "One-page checkout"
        assert flag["comment"] == "rename"

    # Someone changes staging while it is being edited: the save is refused (409) and the page offers a reload.
    await panel.get_by_label("with these keys").fill("qa-1")
    theirs = await configure(ui, "checkout", "staging", on=True, comment="from the CLI")
    await expect(panel.locator("#changed-elsewhere")).to_contain_text(theirs["actor"])
    ui.expect_http(409)
    await panel.get_by_role("button", name="Save Staging").click()
    conflict = page.get_by_role("alert").filter(has_text="someone else saved this flag in Staging first")
    await expect(conflict).to_contain_text("from the CLI")
    stored = (await ui.api.get(f"{FLAGS}/checkout/environments/staging")).json()
    assert stored["targets"][0]["values"] == ["qa-1", "qa-2"], "nothing was overwritten"
    await conflict.get_by_role("button", name="Reload their version").click()
    await expect(page.locator("#conflict")).to_have_count(0)
    await expect(panel.get_by_label("with these keys")).to_have_value("qa-1\nqa-2")
    await expect(panel.locator("#flag-state")).to_have_text("ON")


async def test_conditions_from_choices_a_date_picker_and_segments_without_an_attribute(ui: UI) -> None:
    await create_env(ui.api, "development")
    segment = await ui.api.post(f"{API}/environments/development/segments", json={"key": "beta-testers"})
    assert segment.status_code == 201
    assert (await ui.api.post(FLAGS, json={"key": "checkout", "name": "Checkout"})).status_code == 201
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/development/flags/checkout")
    await expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    await page.get_by_role("button", name="+ Rule").click()
    rule = page.locator(".rule").first
    await expect(rule.get_by_label("Context kind")).to_have_value("user")
    await rule.get_by_label("Operator").select_option("before")
    date = rule.get_by_label("Date and time")
    await expect(date).to_have_attribute("type", "datetime-local")
    await expect(rule.get_by_label("Values")).to_have_count(0)
    await date.fill("2030-06-01T09:30")
    await rule.get_by_role("button", name="+ Condition").click()
    second = rule.locator(".clause").nth(1)
    await second.get_by_label("Operator").select_option("in_segment")
    await expect(second.get_by_label("Attribute")).to_have_count(0)  # irrelevant for a segment
    await second.get_by_label("Segments").select_option("beta-testers")
    await expect(rule.locator(".sentence")).to_contain_text("the user is in segment beta-testers")
    await page.get_by_role("button", name="Save Development").click()
    await expect(page.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    clauses = (await ui.api.get(f"{FLAGS}/checkout/environments/development")).json()["rules"][0]["clauses"]
    local = await page.evaluate("() => new Date('2030-06-01T09:30').toISOString().replace('.000Z', 'Z')")
    expected = {"attribute": "key", "op": "before", "values": [local], "negate": False, "context_kind": "user"}
    assert {k: clauses[0][k] for k in expected} == expected
    assert (clauses[1]["op"], clauses[1]["values"]) == ("in_segment", ["beta-testers"])
    # Reopened, the date reads back in the picker.
    await page.reload()
    await expect(page.locator(".rule").first.get_by_label("Date and time")).to_have_value("2030-06-01T09:30")


async def test_compare_and_promote_with_a_conflict_shown(ui: UI) -> None:
    await three(ui)
    for key in ("checkout", "search", "banner"):
        assert (await ui.api.post(FLAGS, json={"key": key})).status_code == 201
    await configure(ui, "checkout", "staging", on=True, rules=[CA_10], fallthrough={"variation": "off"})
    await configure(ui, "search", "staging", on=True)
    page = ui.page
    await ui.sign_in()
    await page.get_by_role("link", name="Compare and promote").click()
    await expect(page.get_by_role("heading", name="Compare and promote")).to_be_visible()
    await page.get_by_label("Copy from").select_option("staging")
    await page.get_by_label("Copy to").select_option("production")
    items = page.locator("li.promote-flag")
    await expect(items).to_have_count(2)  # banner serves the same in both
    checkout = page.locator("li.promote-flag[data-key='checkout']")
    await expect(checkout.locator(".from li.changed")).to_have_text(
        ["On", "When on: Rule 1: If state is CA, serve on to 10%, off to 90%", "When on: Otherwise serve off"]
    )
    await expect(checkout.locator(".to")).to_contain_text("Off: serve off")
    apply = page.get_by_role("button", name="Copy 2 flags from Staging to Production")
    await ui.shot("promote")

    # Someone changes search in production after the preview: the page says so, and the copy is refused.
    await configure(ui, "search", "production", targets=[{"variation": "on", "values": ["vip"]}], comment="hotfix")
    await expect(page.locator("#changed-since")).to_contain_text("changed search in Production")
    before = (await ui.api.get(FLAGS)).json()
    await page.get_by_label("Comment (required in production)").fill("release 42")
    ui.expect_http(409)
    await apply.click()
    refused = page.get_by_role("alert").filter(has_text="Not copied")
    await expect(refused).to_contain_text("search")
    await expect(refused).to_contain_text("nothing was promoted")
    await expect(page.get_by_role("button", name="Preview again")).to_be_focused()
    after = (await ui.api.get(FLAGS)).json()
    assert after == before, "none applied"

    await page.get_by_role("button", name="Preview again").click()
    await expect(refused).to_have_count(0)
    await expect(items).to_have_count(2)
    await expect(page.locator("li.promote-flag[data-key='search'] .to")).to_contain_text("vip get on")
    await page.locator("#pick-search").uncheck()  # only checkout this time
    await page.get_by_label("Comment (required in production)").fill("release 42")
    await page.get_by_role("button", name="Copy 1 flag from Staging to Production").click()
    await expect(page.locator("li.promote-flag")).to_have_count(1)  # search still differs
    production = (await ui.api.get(f"{FLAGS}/checkout/environments/production")).json()
    assert production["lines"] == ["Rule 1: If state is CA, serve on to 10%, off to 90%", "Otherwise serve off"]
    assert production["comment"] == "release 42"

    # One flag from its page: the same comparison for that flag only.
    await page.goto(f"{ui.base}/ui/#/staging/promote/search")
    await expect(page.get_by_role("heading", name="Compare search")).to_be_visible()
    await expect(page.locator("li.promote-flag")).to_have_count(1)


async def test_a_rule_set_in_production_from_choices_reads_as_a_sentence_in_history(hui: UI, nats_url: str) -> None:
    ui = hui
    await create_env(ui.api, "development")
    await create_env(ui.api, "production", production=True)
    # An application in production evaluates with a context that has a "state": the fleet reports the name.
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry_interval=0.05)
    assert await client.start(wait=30)
    try:
        client.bool_variation("anything", {"key": "user-1", "state": "NY", "plan": "pro"}, False)

        async def reported() -> bool:
            seen = (await ui.api.get(f"{API}/environments/production/fleet/attributes")).json()
            return any("state" in k["attributes"] for k in seen["kinds"])

        await until(reported, "the fleet reports the attribute names")
    finally:
        await client.close()

    page = ui.page
    await ui.sign_in()
    await expect(page.get_by_role("heading", name="Flags")).to_be_visible()
    await page.get_by_role("button", name="New flag").click()
    await expect(page.get_by_role("heading", name="New flag")).to_be_visible()
    await page.get_by_label("Key").fill("new-checkout")
    await page.get_by_role("button", name="Create flag").click()
    await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()
    await page.get_by_role("tab", name="Production").click()
    panel = page.get_by_role("tabpanel", name="Production")
    await expect(panel).to_be_visible()
    await panel.get_by_role("button", name="+ Rule").click()
    rule = panel.locator(".rule").first
    attribute = rule.get_by_label("Attribute")
    await expect(attribute.locator("option")).to_contain_text(["key", "plan", "state", "Other…"])
    await attribute.select_option("state")
    await expect(rule.get_by_label("Operator")).to_have_value("in")
    await rule.get_by_label("Values").fill("CA")
    await rule.get_by_label("a percentage rollout").check()
    await rule.get_by_label("Percentage of on").fill("10")
    await rule.get_by_label("Percentage of off").fill("90")
    await expect(rule.locator(".sentence")).to_have_text("If state is CA, serve on to 10%, off to 90%")
    await panel.get_by_role("switch").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Comment (required)").fill("launch in CA")
    await dialog.get_by_role("button", name="Turn on").click()
    await expect(panel.locator("#flag-state")).to_have_text("ON")
    await panel.get_by_label("Comment (required in production)").fill("10% in CA")
    await panel.get_by_role("button", name="Save Production").click()
    await expect(panel.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    await page.evaluate(SHOW_TABS)
    await ui.shot("flag-production-rule")
    stored = (await ui.api.get(f"{FLAGS}/new-checkout/environments/production")).json()
    assert (
        stored["lines"] == ["Rule 1: If state is CA, serve on to 10%, off to 90%", "Serve on"][:1] + stored["lines"][1:]
    )
    assert stored["summary"] == "10% on for state is CA; else on"

    await page.get_by_role("link", name="History and time travel").click()
    await expect(page.get_by_role("heading", name="History of flag new-checkout")).to_be_visible()
    entries = page.locator("li.entry")
    await expect(entries.first).to_contain_text("10% in CA")
    await expect(entries.first.locator(".env-tag")).to_have_text("Production")
    await expect(entries.first.locator("ul.said")).to_contain_text("If state is CA, serve on to 10%, off to 90%")
    await ui.shot("history-everywhere")
    # Filtered by environment: development has only the creation.
    await page.get_by_label("Changes in").select_option("development")
    await expect(entries).to_have_count(1)
    await expect(entries.first.locator(".env-tag")).to_have_text("Development")
    await page.get_by_label("Changes in").select_option("")
    await expect(entries).to_have_count(4)  # created in both, turned on and the rule in production
