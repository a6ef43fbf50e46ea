"""History in the browser: the audit timeline with field-level diffs, time travel, revert with a comment, and
scheduled changes; against the admin service with a real projector and read model on a real nats-server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.ui.conftest import API, UI, create_env, create_flag

FLAG = f"{API}/environments/development/flags/new-checkout"


def rollout(on: int) -> dict[str, object]:
    return {
        "rollout": {"variations": [{"variation": "on", "weight": on}, {"variation": "off", "weight": 100_000 - on}]}
    }


async def test_history_diff_time_travel_and_revert(hui: UI) -> None:
    ui = hui
    await create_env(ui.api, "development")
    rule = {"id": "nl", "clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}], "serve": rollout(10_000)}
    created = await create_flag(ui.api, "development", "new-checkout", name="New checkout", rules=[rule])
    page = ui.page
    await ui.sign_in()
    await page.get_by_role("link", name="New checkout").click()
    await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()

    # Toggle on, then raise the rollout to 20% and save, in the browser.
    await page.get_by_role("switch").click()
    await expect(page.locator("#flag-state")).to_have_text("ON")
    await page.get_by_label("Percentage of on").fill("20")
    await page.get_by_label("Percentage of off").fill("80")
    await page.locator("#environment-panel").get_by_label("Comment").fill("widen the rollout")
    await page.get_by_role("button", name="Save Development").click()
    await expect(page.get_by_role("button", name="Saved", exact=True)).to_be_visible()

    # The history: newest first, field-level diffs, who and why.
    await page.get_by_role("link", name="History and time travel").click()
    await expect(page.get_by_role("heading", name="History of flag new-checkout")).to_be_visible()
    entries = page.locator("li.entry")
    await expect(entries).to_have_count(3)
    newest = entries.nth(0)
    await expect(newest).to_contain_text("flag.updated")
    await expect(newest).to_contain_text("widen the rollout")
    await expect(newest.locator("tr.change", has_text="rules[0].serve.rollout.variations[0].weight")).to_contain_text(
        "10%"
    )
    await expect(newest.locator("tr.change").first.locator(".new")).to_have_text("20%")
    toggled = entries.nth(1)
    await expect(toggled).to_contain_text("flag.toggled")
    await expect(toggled.locator("tr.change", has_text="on")).to_contain_text("false")
    await expect(toggled.locator(".actor")).to_have_text(created["actor"])

    # Time travel: the flag as it was right after it was created.
    first = entries.nth(2)
    await first.get_by_role("button", name="View as of this change").click()
    view = page.locator("#time-travel .state-view")
    await expect(view).to_contain_text("OFF")
    await expect(view).to_contain_text("on to 10%")
    # ... and as of a time (now: the current state).
    now = datetime.now().astimezone() + timedelta(minutes=1)
    await page.get_by_label("Show it as of").fill(now.strftime("%Y-%m-%dT%H:%M:%S"))
    await page.get_by_role("button", name="Time travel").click()
    await expect(view).to_contain_text("on to 20%")
    await expect(view).to_contain_text("ON")
    await ui.shot("history")

    # Revert to the first version, with a (required) comment.
    await first.get_by_role("button", name="Revert to this version").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Comment (required)").fill("INC-7: back to 10%")
    await dialog.get_by_role("button", name="Revert").click()
    await expect(entries).to_have_count(4)
    await expect(entries.nth(0)).to_contain_text("INC-7: back to 10%")
    stored = (await ui.api.get(FLAG)).json()
    assert stored["flag"]["on"] is False
    assert stored["flag"]["rules"][0]["serve"]["rollout"]["variations"][0]["weight"] == 10_000
    assert "INC-7: back to 10%" in stored["comment"]

    # The whole environment: its timeline, and every flag as of an earlier change.
    await page.get_by_role("link", name="History", exact=True).click()
    await expect(page.get_by_role("heading", name="History of Development")).to_be_visible()
    created_entry = page.locator(f"li.entry[data-seq='{created['version']}']")
    await expect(created_entry).to_contain_text("flag new-checkout")
    await created_entry.get_by_role("button", name="View as of this change").click()
    then = page.locator("#time-travel tr[data-key='new-checkout']")
    await expect(then).to_contain_text("OFF")
    await expect(then).to_contain_text("r1")


async def test_scheduled_changes_are_listed_and_cancellable(hui: UI) -> None:
    ui = hui
    await create_env(ui.api, "development")
    await create_flag(ui.api, "development", "new-checkout", name="New checkout")
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = await ui.api.post(
        f"{API}/environments/development/schedules",
        json={"flag": "new-checkout", "action": "on", "due": due, "comment": "launch tomorrow"},
    )
    assert response.status_code == 201, response.text
    schedule = response.json()
    page = ui.page
    await ui.sign_in()
    await page.get_by_role("link", name="History").click()
    row = page.locator(f"#schedules tr[data-id='{schedule['id']}']")
    await expect(row).to_contain_text("launch tomorrow")
    await expect(row).to_contain_text("pending")
    await row.get_by_role("button", name="Cancel").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel the change").click()
    await expect(row).to_contain_text("cancelled")

    async def cancelled() -> bool:
        got = await ui.api.get(f"{API}/environments/development/schedules/{schedule['id']}")
        return got.json()["status"] == "cancelled"

    assert await cancelled()

    # Schedule one from the flag's history page.
    await page.goto(f"{ui.base}/ui/#/development/history/flag/new-checkout")
    tomorrow = datetime.now().astimezone() + timedelta(days=1)
    form = page.locator("#schedules")
    await form.get_by_label("Action").select_option("off")
    await form.get_by_label("Due at").fill(tomorrow.strftime("%Y-%m-%dT%H:%M"))
    await form.get_by_label("Comment").fill("end of the campaign")
    await form.get_by_role("button", name="Schedule", exact=True).click()
    pending = page.locator("#schedules tr[data-status='pending']")
    await expect(pending).to_contain_text("end of the campaign")
    listed = (await ui.api.get(f"{API}/environments/development/schedules", params={"status": "pending"})).json()
    assert [(s["change"]["key"], s["change"]["action"]) for s in listed["items"]] == [("new-checkout", "off")]
