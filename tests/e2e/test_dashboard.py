"""The dashboard in a real browser over a real pipeline: charts drawn, audit live, approvals decided.

Needs Debian's Chromium at /usr/bin/chromium (CI: ``apt-get install -y chromium``) and the
``playwright`` Python package; Playwright's own browser download is never used.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from medic.bus import Topology
from medic.runtime import HttpServer
from medic.sandbox.simulate import simulate
from medic.services.dashboard import router as dashboard_router
from tests.pipeline import Pipeline, running_pipeline

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.requires(Path(CHROMIUM).exists(), f"{CHROMIUM} (apt-get install -y chromium)"),
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard.png"
TOKEN = "dashboard-e2e-token"
"""The shared token: the page can be read with it, nothing decided."""
ALICE_TOKEN = "dashboard-e2e-alice"
BOB_TOKEN = "dashboard-e2e-bob"
APPROVER = "<b>alice</b>"
"""Markup in a person's name must come back as text, never as an element."""

CHARTS_DRAWN = """() => {
  const charts = Object.values((window.medicDashboard || {}).charts || {});
  return charts.length === 4 && charts.every((c) =>
    c.canvas.width > 0 && c.canvas.height > 0 &&
    c.data.datasets.some((ds, i) => c.getDatasetMeta(i).data.length > 0 && ds.data.some((v) => v > 0)));
}"""


@pytest.fixture
async def settled(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[tuple[Pipeline, str]]:
    """Twenty settled failures and the host app with the dashboard included, on its own port."""
    async with running_pipeline(
        nats_url=nats_url,
        database_url=database_url,
        topology=topology,
        db_schema=db_schema,
        api_token=SecretStr(TOKEN),
        api_tokens={APPROVER: {"token": ALICE_TOKEN}, "bob": {"token": BOB_TOKEN}},
        protected_repositories=("octo-org/web-frontend",),  # a few more wait for a person
    ) as pipeline:
        await simulate(pipeline.sandbox_url, 20)
        await pipeline.wait_settled(20, within=60)
        app = pipeline.host.app()
        app.include_router(dashboard_router())
        server = HttpServer(app)
        await server.start()
        try:
            yield pipeline, server.url
        finally:
            await server.stop()


async def pending_ids(pipeline: Pipeline) -> list[str]:
    response = await pipeline.http.get(f"{pipeline.url}/api/approvals", params={"status": "pending"})
    return [a["approval_id"] for a in response.json()]


async def test_dashboard_draws_charts_and_decides_approvals(settled: tuple[Pipeline, str]) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=10_000)

    pipeline, url = settled
    pending = await pending_ids(pipeline)
    assert len(pending) >= 2, "the simulation leaves failures waiting for a person"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            await check_without_javascript(browser, url, pending)
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            await sign_in(page, url, TOKEN)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if console_error(msg) else None)
            await page.goto(f"{url}/")
            await page.wait_for_function(CHARTS_DRAWN, timeout=15_000)
            assert await page.locator("#approvals-body tr[data-approval-id]").count() == len(pending)
            await decide_in_page(page, pipeline, pending)
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#audit-body tr')]"
                ".some((tr) => tr.textContent.includes('ApprovalGranted'))",
                timeout=15_000,
            )
            assert APPROVER in await page.locator("#audit-body").inner_text()
            await page.wait_for_timeout(600)  # let the last chart animation finish
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert errors == [], errors
        finally:
            await browser.close()
    assert_non_trivial_png(SCREENSHOT.read_bytes())


async def check_without_javascript(browser: Any, url: str, pending: list[str]) -> None:
    """Server-rendered numbers and tables, with every chart's data as a table."""
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{url}/")
    assert await page.locator("form input[name=token]").count() == 1  # the sign-in page, not data
    await sign_in(page, url, TOKEN)
    assert await page.locator("#kpi-total .kpi-value").inner_text() == "20"
    assert await page.locator("#audit-body tr").count() == 50
    assert await page.locator("#approvals-body tr[data-approval-id]").count() == len(pending)
    assert await page.locator("#card-categories .chart-data tbody tr").count() >= 1
    assert not await page.locator("#chart-hourly").is_visible()
    await context.close()


async def sign_in(page: Any, url: str, token: str) -> None:
    """The sign-in form sets the session cookie (no script needed) and lands on the dashboard."""
    await page.goto(f"{url}/auth/session")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/")


async def decide_in_page(page: Any, pipeline: Pipeline, pending: list[str]) -> None:
    """403 with the read-only session; with a person's token, 409 for one decided elsewhere,
    then a clean approval recorded as that person."""
    from playwright.async_api import expect

    await page.route("**/api/dashboard", lambda route: route.abort())  # hold the rows still
    await page.fill("#approver", APPROVER)
    first, second = pending[0], pending[1]
    message = page.locator("#approval-message")
    row = page.locator(f'#approvals-body tr[data-approval-id="{first}"]')

    await row.locator("button.approve").click()
    await expect(message).to_have_text(re.compile("^403"))
    assert "approve scope" in await page.locator("#approval-message").inner_text()
    assert await row.count() == 1

    await page.fill("#token", ALICE_TOKEN)
    assert await page.evaluate("sessionStorage.getItem('medic.apiToken')") == ALICE_TOKEN
    elsewhere = await pipeline.http.post(
        f"{pipeline.url}/api/approvals/{second}/reject",
        json={},
        headers={"Authorization": f"Bearer {BOB_TOKEN}"},
    )
    assert elsewhere.status_code == 200, elsewhere.text
    await page.locator(f'#approvals-body tr[data-approval-id="{second}"] button.approve').click()
    await expect(message).to_have_text(re.compile("^409"))
    assert "already rejected" in await page.locator("#approval-message").inner_text()

    await row.locator("button.approve").click()
    await expect(message).to_have_text(re.compile("^Approved"))
    assert f"as token:{APPROVER}" in await message.inner_text()
    assert await message.locator("b").count() == 0
    await row.wait_for(state="detached", timeout=5_000)
    assert first not in await pending_ids(pipeline)
    await page.unroute("**/api/dashboard")


def console_error(msg: Any) -> bool:
    """Script errors and CSP refusals; the 401/409/aborted requests this test causes are expected."""
    return bool(msg.type == "error" and not msg.text.startswith("Failed to load resource"))


def assert_non_trivial_png(png: bytes) -> None:
    from PIL import Image

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000, f"screenshot is only {len(png)} bytes"
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, f"screenshot has only {len(colours or [])} colours"
