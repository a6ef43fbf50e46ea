"""A flag imported from another system (a partial rollout with Unleash's bucketing) edited in the browser:
its bucketing scheme survives the save, so nobody's answer changes because someone renamed the flag."""

from __future__ import annotations

from playwright.async_api import expect

from tests.ui.conftest import API, UI, create_env

FLAGS = f"{API}/environments/development/flags"
ROLLOUT = {
    "partial": True,
    "algorithm": "unleash",
    "hash_prefix": "checkout",
    "bucket_by": "key",
    "variations": [{"variation": "on", "weight": 25000}],
}


async def test_editing_an_imported_partial_rollout_keeps_its_bucketing(ui: UI) -> None:
    await create_env(ui.api, "development")
    created = await ui.api.post(FLAGS, json={
        "key": "imported", "name": "Imported", "on": True, "fallthrough": {"variation": "off"},
        "rules": [{"id": "unleash-0", "serve": {"rollout": ROLLOUT}}],
    })  # fmt: skip
    assert created.status_code == 201, created.text
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/development/flags/imported")
    await expect(page.get_by_role("heading", name="Imported")).to_be_visible()
    await expect(page.locator(".rule").first).to_contain_text("unleash-compatible")
    await page.get_by_label("Name", exact=True).fill("Imported, renamed")
    await page.get_by_role("button", name="Save definition").click()
    await expect(page.get_by_role("button", name="Definition saved")).to_be_visible()
    # The environment's configuration saved whole from the editor: the rollout goes back as it came.
    await page.locator(".rule").first.get_by_label("Description").fill("from Unleash")
    await page.get_by_role("button", name="Save Development").click()
    await expect(page.get_by_role("button", name="Saved", exact=True)).to_be_visible()

    stored = (await ui.api.get(f"{FLAGS}/imported")).json()["flag"]
    assert stored["name"] == "Imported, renamed"
    assert stored["rules"][0]["description"] == "from Unleash"
    rollout = stored["rules"][0]["serve"]["rollout"]
    assert {k: rollout[k] for k in ("partial", "algorithm", "hash_prefix")} == {
        "partial": True, "algorithm": "unleash", "hash_prefix": "checkout"}  # fmt: skip
    served = [wv for wv in rollout["variations"] if wv["weight"]]  # the editor lists every variation, unused at 0
    assert served == [{"variation": "on", "weight": 25000}]


# Conditions as the importers write them (Flagsmith, Unleash, flagd, LaunchDarkly): options the editor has no
# control for, which decide how each reads its attribute and compares.
IMPORTED_CLAUSES = [
    {"attribute": "state", "op": "equals", "values": ["ca"], "case_insensitive": True},
    {"attribute": "age", "op": "gt", "values": ["30"], "cast": "python", "numeric_strings": True},
    {"attribute": "version", "op": "semver_gte", "values": ["2.0.0"], "semver": "strict"},
    {"attribute": "/address/city", "op": "in", "values": ["Paris"]},
]
SHOWN = [
    "state equals ca (any case)",
    "age is more than 30 (numbers read from strings, compared as Flagsmith does)",
    "version is a version from 2.0.0 (strict semver)",
    "/address/city is Paris",
]


async def test_an_imported_condition_shows_how_it_reads_and_a_save_keeps_it(ui: UI) -> None:
    await create_env(ui.api, "development")
    assert (await ui.api.post(FLAGS, json={"key": "login-v2"})).status_code == 201
    created = await ui.api.post(FLAGS, json={
        "key": "flagsmith-beta", "name": "Flagsmith beta", "on": True, "fallthrough": {"variation": "off"},
        "rules": [{"id": "segment-1", "clauses": IMPORTED_CLAUSES, "serve": {"variation": "on"}}],
        "prerequisites": [{"flag": "login-v2", "variation": "on", "require_on": True}],  # as from LaunchDarkly
    })  # fmt: skip
    assert created.status_code == 201, created.text
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/development/flags/flagsmith-beta")
    await expect(page.get_by_role("heading", name="Flagsmith beta")).to_be_visible()
    rule = page.locator(".rule").first
    # Every condition in words, with how it reads: the rule's sentence, and each condition's own line.
    await expect(rule.locator(".sentence")).to_have_text(f"If {' and '.join(SHOWN)}, serve on")
    reading = rule.locator(".clause .reading")
    await expect(reading).to_have_text([
        "Read as imported: numbers read from strings, compared as Flagsmith does",
        "Read as imported: strict semver",
    ])  # fmt: skip
    await expect(rule.get_by_label("ignore case").first).to_be_checked()
    await expect(page.locator("#reads li").first).to_have_text("Only if login-v2 is on (not while switched off)")
    await expect(page.locator("[data-path='$.prerequisites[0]'] .reading")).to_have_text(
        "Read as imported: not met while login-v2 is switched off, whatever it serves then"
    )
    # Compared as Flagsmith does, "30" (text) is not 30 (a number): the value is shown typed.
    await expect(rule.locator(".clause").nth(1).get_by_label("Values")).to_have_value('"30"')
    await rule.scroll_into_view_if_needed()
    await ui.shot("imported-reading-options")

    # An unrelated change saved from the editor: every option, and the text value, stays as imported.
    await rule.get_by_label("Description").fill("beta testers, from Flagsmith")
    await page.get_by_role("button", name="Save Development").click()
    await expect(page.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    stored = (await ui.api.get(f"{FLAGS}/flagsmith-beta")).json()
    assert stored["flag"]["rules"][0]["description"] == "beta testers, from Flagsmith"
    for sent, kept in zip(IMPORTED_CLAUSES, stored["flag"]["rules"][0]["clauses"], strict=True):
        assert {name: kept[name] for name in sent} == sent
    project_wide = (await ui.api.get(f"{API}/flags/flagsmith-beta")).json()["environments"]["development"]
    assert project_wide["lines"][:2] == [  # the server says the same
        "Only if login-v2 is on (not while switched off)", f"Rule 1: If {' and '.join(SHOWN)}, serve on"]  # fmt: skip
    assert stored["flag"]["prerequisites"] == [{"flag": "login-v2", "variation": "on", "require_on": True}]

    # A value typed there keeps its type too: "40" as text, as Flagsmith's segment had it.
    await page.locator(".rule").first.locator(".clause").nth(1).get_by_label("Values").fill('"40"')
    await page.get_by_role("button", name="Save Development").click()
    await expect(page.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    age = (await ui.api.get(f"{FLAGS}/flagsmith-beta")).json()["flag"]["rules"][0]["clauses"][1]
    assert age["values"] == ["40"]
    assert (age["cast"], age["numeric_strings"]) == ("python", True)
