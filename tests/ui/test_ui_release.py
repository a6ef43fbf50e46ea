"""Releases in the browser (Chromium over the real admin service): a plan made from the flag page (a mistake shown
next to its field), watched, paused, resumed and aborted; a plan the guardian rolls back, with what it saw and why,
and the chart of its interval; the experiment results page with its chart."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from flagstream import AsyncFlagstreamClient
from tests.helpers import until
from tests.release.app import SimulatedApp
from tests.release.helpers import ENV, ok, seed
from tests.ui.conftest import UI


async def test_plan_watch_pause_resume_abort_and_a_rollback_explained(ui: UI, nats_url: str) -> None:
    await seed(ui.api, nats_url)
    page = ui.page
    await ui.sign_in()
    await page.goto(f"{ui.base}/ui/#/production/flags/checkout")
    await expect(page.get_by_role("tab", name="production", selected=True)).to_be_visible()  # the flag page's own tab
    await page.get_by_role("link", name="Release in steps").click()
    await expect(page.get_by_role("heading", name="Release checkout in steps")).to_be_visible()
    await expect(page.get_by_label("Metric of guardrail 1")).to_have_value("errors")  # what the app tracks

    # A mistake is said next to its field.
    ui.expect_http(422)
    await page.get_by_label("Steps (% of users)").fill("50, 20")
    await page.get_by_role("button", name="Start the release").click()
    await expect(page.locator("#plan-error")).to_contain_text("$.steps[1].percent")
    await expect(page.get_by_label("Steps (% of users)")).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("Steps (% of users)").fill("20, 100")
    await page.get_by_label("Hold each step").fill("1h")
    await page.get_by_label("Users on each side first").fill("30")
    await page.get_by_role("button", name="Start the release").click()
    await expect(page.get_by_role("heading", name="checkout: on instead of off")).to_be_visible()
    steps = page.get_by_role("list", name="Steps")
    await expect(steps.locator("[aria-current=step]")).to_contain_text("20%", timeout=30_000)  # the runner wrote it
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#plan-status")).to_have_text("paused")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#plan-status")).to_have_text("running")
    await page.get_by_role("button", name="Abort").click()
    await page.get_by_role("dialog").get_by_role("button", name="Abort").click()
    await expect(page.locator("#plan-status")).to_have_text("aborted")
    timeline = page.get_by_role("list", name="Timeline")
    for kind in ("plan.created", "plan.advanced", "plan.paused", "plan.resumed", "plan.aborted"):
        await expect(timeline).to_contain_text(kind)

    # A second plan, and an app whose users on the new variation see errors: the guardian rolls it back.
    await until(lambda: _flag_serves(ui, "off"), "the abort written back")
    body = {"flag": "checkout", "variation": "on", "min_users": 30, "steps": [{"percent": 20, "hold": "1h"},
            {"percent": 100}], "guardrails": [{"metric": "errors", "max_change": 0}]}  # fmt: skip
    plan = await ok(ui.api, "POST", f"{ENV}/plans", body, 201)
    client = AsyncFlagstreamClient(nats_url, environment="production", track_interval=0.2)
    stop = asyncio.Event()
    try:
        assert await client.start(wait=15)
        app = SimulatedApp(client, "checkout", rates={"on": 0.3}, base=0.01, rate=400, users=2_000)
        task = asyncio.create_task(app.run(stop))
        await page.goto(f"{ui.base}/ui/#/production/releases/{plan['id']}")
        await expect(page.locator("#rollback")).to_contain_text("Rolled back by guardian:", timeout=90_000)
        await expect(page.locator("#rollback")).to_contain_text("errors (events per user) rose by")
        stop.set()
        await task
    finally:
        stop.set()
        await client.close()
    await expect(page.get_by_role("table", name="Guardrails now")).to_contain_text("breached")
    await expect(page.get_by_role("img", name="Difference in errors over time, with its interval")).to_be_visible()
    await ui.shot("release-rolled-back", full_page=True)

    # The experiment results of the flag, from the same data.
    await page.get_by_role("link", name="Experiment results").click()
    await expect(page.get_by_role("heading", name="Experiment results: checkout")).to_be_visible()
    chart = page.get_by_role("img", name="errors (events per user): difference to off per variation, with intervals")
    await expect(chart).to_be_visible()
    await expect(page.get_by_role("table", name="errors (count) per variation")).to_contain_text("off (control)")
    await ui.shot("release-results", full_page=True)
    await page.get_by_role("link", name="Releases").click()
    await expect(page.get_by_role("table", name="Release plans")).to_contain_text("rolled back")


async def _flag_serves(ui: UI, variation: str) -> bool:
    flag = await ok(ui.api, "GET", f"{ENV}/flags/checkout")
    return bool(flag["flag"]["fallthrough"]["variation"] == variation)
