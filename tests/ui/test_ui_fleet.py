"""The fleet page and the staleness filter, fed by a real SDK client's telemetry over a real nats-server."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from flagstream import AsyncFlagstreamClient
from tests.helpers import eventually
from tests.ui.conftest import API, UI, create_env, create_flag

FLEET = f"{API}/environments/production/fleet"


async def test_fleet_instances_evaluations_and_stale_flags(ui: UI, nats_url: str) -> None:
    await create_env(ui.api, "production", production=True)
    for key in ("checkout", "forgotten"):
        await create_flag(ui.api, "production", key, on=True)
    client = AsyncFlagstreamClient(nats_url, environment="production", telemetry_interval=0.05)
    assert await client.start(wait=30)
    try:
        for _ in range(5):
            client.bool_variation("checkout", {"key": "user-1"}, False)
        counted: list[int] = []

        async def poll() -> None:
            while not counted:
                report = (await ui.api.get(f"{FLEET}/evaluations")).json()
                if sum(f["total"] for f in report["flags"]) >= 5:
                    counted.append(1)
                await asyncio.sleep(0.05)

        task = asyncio.create_task(poll())
        await eventually(lambda: task.done(), what="the evaluation counts arrive")
        task.result()

        page = ui.page
        await ui.sign_in()
        await page.get_by_role("link", name="Fleet").click()
        await expect(page.get_by_role("heading", name="SDK instances (1 connected)")).to_be_visible()
        evaluations = page.get_by_role("table", name="Evaluations")
        await expect(evaluations.locator("tr", has_text="checkout")).to_contain_text("on: 5")
        await expect(page.locator("#fl-stale").locator("..")).to_contain_text("forgotten")
        await ui.shot("fleet")

        # The flags list filters stale flags (active, not evaluated for 30 days).
        await page.get_by_role("link", name="Flags", exact=True).click()
        await page.get_by_label("State").select_option("stale")
        await expect(page.locator("tbody tr")).to_have_count(1)
        await expect(page.locator("tbody tr")).to_contain_text("forgotten")
    finally:
        await client.close()
