"""Layout faults a user sees, in Chromium: the flags table stays within the window whatever a description holds;
a toast never covers the Save button; a field name in the history is never split inside its brackets."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect

from tests.helpers import until
from tests.ui.conftest import API, PHONE, UI, create_env, create_flag

FLAGS = f"{API}/environments/development/flags"


async def _fits_the_window(ui: UI) -> None:
    width = await ui.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]}px wide in a {width[1]}px window"


async def test_a_long_unbroken_description_stays_within_the_flags_table(ui: UI) -> None:
    await create_env(ui.api, "development")
    unbroken = "https://wiki.example.com/" + "x" * 600
    await create_flag(ui.api, "development", "new-checkout", name="New checkout", description=unbroken, tags=["web"])
    await create_flag(ui.api, "development", "dark-mode", name="Dark mode")
    page = ui.page
    for viewport in ({"width": 1366, "height": 900}, PHONE):
        await page.set_viewport_size(viewport)
        await ui.sign_in()
        row = page.locator("tr[data-key='new-checkout']")
        await expect(row).to_contain_text("wiki.example.com")
        await _fits_the_window(ui)
        for cell in ("Flag", "Development", "Last change"):  # every column is still on screen, the switch usable
            box = await row.locator(f"td[data-label='{cell}']").bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= viewport["width"] + 1, (viewport, cell, box)
        tops = {top for _, top in await _line_tops(row.locator(".tag").first)}
        assert len(tops) == 1, "a short tag stays on one line"
        switch = row.get_by_role("switch")
        was = await switch.get_attribute("aria-checked")
        await switch.click()
        await expect(switch).to_have_attribute("aria-checked", "false" if was == "true" else "true")
        await ui.shot(f"flags-long-description-{viewport['width']}")
        await page.get_by_role("button", name="Sign out").click()


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])  # fmt: skip


async def test_the_saved_toast_does_not_cover_the_save_button(ui: UI) -> None:
    await create_env(ui.api, "development")
    await create_flag(ui.api, "development", "new-checkout", name="New checkout")
    page = ui.page
    await ui.sign_in()
    await page.get_by_role("link", name="New checkout").click()
    await expect(page.get_by_role("heading", name="New checkout")).to_be_visible()
    # The save bar that stays at the bottom is the environment tab's.
    panel = page.get_by_role("tabpanel")
    await panel.get_by_role("button", name="+ Individual target").click()
    keys = panel.get_by_label("with these keys")
    await keys.fill("qa-1")
    await page.get_by_role("button", name="Save Development").click()
    toast = page.locator(".toast", has_text="Saved new-checkout in Development")
    await expect(toast).to_be_visible()
    save = page.locator("#save-environment")
    toast_box, save_box = await toast.bounding_box(), await save.bounding_box()
    assert toast_box is not None
    assert save_box is not None
    assert not _overlap(toast_box, save_box), f"the toast {toast_box} covers Save {save_box}"

    # While it is shown, the next change can be saved: the click reaches the button.
    first = (await ui.api.get(f"{FLAGS}/new-checkout")).json()["version"]
    await keys.fill("qa-1\nqa-2")
    await save.click(timeout=2000)

    async def saved_again() -> bool:
        return (await ui.api.get(f"{FLAGS}/new-checkout")).json()["version"] != first

    await until(saved_again, "the second save")
    flag = (await ui.api.get(f"{FLAGS}/new-checkout")).json()
    await expect(page.locator(".toast", has_text=f"(version {flag['version']})")).to_be_visible()
    assert flag["flag"]["targets"][0]["values"] == ["qa-1", "qa-2"]


async def _line_tops(cell: Any) -> list[tuple[str, int]]:
    """Each character of the cell with the top of the line it is drawn on."""
    return [  # type: ignore[no-any-return]
        tuple(pair)
        for pair in await cell.evaluate(
            """(cell) => {
                const out = [];
                const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
                for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                  for (let i = 0; i < node.length; i++) {
                    const range = document.createRange();
                    range.setStart(node, i); range.setEnd(node, i + 1);
                    out.push([node.data[i], Math.round(range.getBoundingClientRect().top)]);
                  }
                }
                return out;
            }"""
        )
    ]


async def test_a_history_field_name_is_not_split_inside_its_brackets(hui: UI) -> None:
    ui = hui
    await create_env(ui.api, "development")
    europe = ["Norway", "Sweden", "Denmark", "Finland", "Iceland", "Netherlands", "Belgium", "Luxembourg"]
    americas = ["Canada", "United States", "Mexico", "Brazil", "Argentina", "Chile", "Colombia", "Peru"]
    rule = {"id": "launch", "clauses": [{"attribute": "country", "op": "in", "values": europe}],
            "serve": {"variation": "on"}}  # fmt: skip
    await create_flag(ui.api, "development", "new-checkout", name="New checkout", rules=[rule])
    wider = {"rules": [{**rule, "clauses": [{"attribute": "country", "op": "in", "values": americas}]}]}
    patched = await ui.api.patch(f"{FLAGS}/new-checkout", json=wider)
    assert patched.status_code == 200, patched.text
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/development/history/flag/new-checkout")
    entry = page.locator("li.entry").first
    await entry.get_by_text("Field by field").click()  # a flag's change reads as sentences; the fields under them
    change = entry.locator("tr.change").first
    await expect(change).to_be_visible()
    await expect(change).to_contain_text("rules[0]")
    field = change.locator("td").first
    chars = await _line_tops(field)
    text = "".join(c for c, _ in chars)
    for m in re.finditer(r"[A-Za-z_]+\[[^\]]*\]", text):
        tops = {top for _, top in chars[m.start() : m.end()]}
        assert len(tops) == 1, f"{m.group()!r} is split across lines in {text!r}"
    await ui.shot("history-field-names")
