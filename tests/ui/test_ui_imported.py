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
