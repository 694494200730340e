"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

Playwright never downloads a browser here: it launches the system's Chromium
(``executable_path``; ``.ci/run`` installs Debian's ``chromium``). The job runs
on a manual clock, so each step advances it by whole batches and then waits,
with Playwright's own auto-waiting assertions, for the page to show them. A
screenshot of the page is saved under ``artifacts/`` (ignored by git).
"""

from __future__ import annotations

import operator
import shutil
from pathlib import Path

import anyio
import pytest
from playwright.async_api import async_playwright, expect

from streamio import ManualClock, StreamingContext
from streamio.testing import ListSink

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium")
HANG_GUARD = 60
WAIT_MS = 10_000  # how long the page may take to show a change (a bug, past that)

BATCHES = [["a b a", "c"], ["b b", "d"], ["e e e e", "a"]]


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


async def test_the_page_shows_each_batch_live(artifacts):
    assert CHROMIUM is not None, "Debian's chromium is needed: apt-get install chromium"
    clock = ManualClock()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(1.0, clock=clock, dashboard=0) as ssc:
            lines = ssc.queue_stream(list(BATCHES), name="lines")
            counts = (
                lines.flat_map(str.split, name="split")
                .map(lambda word: (word, 1), name="pair")
                .reduce_by_key(operator.add, name="count")
            )
            counts.to_dashboard("top words", kind="table", top=2)
            counts.foreach_batch(ListSink(), name="kept")
            await ssc.start()
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM)
                try:
                    page = await browser.new_page(viewport={"width": 1300, "height": 900})
                    await check_the_page(page, ssc.dashboard_url, clock, artifacts)
                finally:
                    await browser.close()


async def check_the_page(page, url, clock, artifacts):
    completed = page.locator("#completed tbody tr")
    timeline = page.locator('tr[data-metric="processing-time"] td.timeline svg')
    panel = page.locator('[data-panel="top words"]')

    await page.goto(url)
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    await expect(completed).to_have_count(0)
    await expect(timeline).to_have_attribute("data-points", "0")
    await expect(page.locator('#graph [data-node="split"]')).to_have_attribute(
        "data-fused", "true"
    )

    await clock.advance(1.0)
    await expect(completed).to_have_count(1, timeout=WAIT_MS)
    await expect(timeline).to_have_attribute("data-points", "1")
    await expect(panel).to_have_attribute("data-time", "1")
    await expect(panel.locator("tr").first).to_have_text("a2")

    await clock.advance(2.0)
    await expect(completed).to_have_count(3, timeout=WAIT_MS)
    await expect(timeline).to_have_attribute("data-points", "3")
    await expect(page.locator('tr[data-metric="input-rate"] td.timeline svg')).to_have_attribute(
        "data-points", "3"
    )
    await expect(panel).to_have_attribute("data-time", "3")
    await expect(panel.locator("tr")).to_have_text(["e4", "a1"])  # the latest batch's top 2
    await expect(page.locator('#inputs tr[data-input="lines"]')).to_contain_text("queue")
    await expect(page.locator("#summary")).to_contain_text("3 completed batches, 6 records")

    await page.screenshot(path=artifacts / "dashboard.png", full_page=True)

    await completed.first.locator("a").click()  # the newest batch's page
    await expect(page.locator("#batch-page")).to_be_visible()
    await expect(page.locator("#batch-title")).to_have_text("Batch 3 s")
    outputs = page.locator("#batch-outputs tbody tr")
    await expect(outputs).to_have_count(2)
    await expect(page.locator('#batch-outputs tr[data-output="kept"]')).to_contain_text(
        "foreach_batch"
    )
    await expect(page.locator('#batch-outputs tr[data-output="top words"]')).to_contain_text(
        "to_dashboard"
    )
    await expect(page.locator("#statistics")).to_be_hidden()
    await page.screenshot(path=artifacts / "dashboard-batch.png", full_page=True)
