"""End to end: the dashboard loaded in a real headless browser (Debian's
chromium driven by Playwright) draws its charts with data and logs no error.

The rollups are inserted directly (``dashboard_rows.fill``). The browser gets
the session cookie of a member logged in with ``Client.force_login`` and loads
``/dashboard/`` from pytest-django's live server, which serves our static
files (Chart.js included) itself: nothing comes from the network.

Without chromium the test is skipped on a developer's machine and fails in CI
(``CI`` set), where a missing browser is a broken set-up, not a pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import sync_playwright

from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.insights.dashboard_rows import NOW, fill

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does).")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser test.")
    return str(CHROMIUM)


def test_the_dashboard_draws_its_charts_in_a_real_browser(chromium, live_server, tenant):
    clock.set_now(NOW)
    fill(tenant)
    client = login_as(tenant, Role.VIEWER)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    problems: list[str] = []

    # No database access from here on: Playwright's sync API runs an event
    # loop in this thread, where Django refuses to query.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            context = browser.new_context()
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
            )
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            response = page.goto(f"{live_server.url}/dashboard/", wait_until="load")
            assert response is not None and response.status == 200
            page.wait_for_selector("canvas[data-chart='tiers'][data-rendered]", timeout=10_000)
            rendered = page.eval_on_selector_all(
                "[data-chart]",
                "nodes => Object.fromEntries(nodes.map("
                "n => [n.dataset.chart, Number(n.dataset.rendered)]))",
            )
            drawn = page.evaluate(
                "() => [...document.querySelectorAll('canvas[data-chart]')]"
                ".filter(c => window.Chart && Chart.getChart(c)).length"
            )
            title = page.title()
        finally:
            browser.close()

    assert "Dashboard" in title
    # Two weeks of retention have closed cohorts; three tiers; ten risk buckets;
    # six KPIs for email, five for SMS (no open rate); two cohorts in the heatmap.
    assert rendered == {
        "retention": 2,
        "kpi-channels": 11,
        "cohorts": 2,
        "tiers": 3,
        "churn": 10,
    }
    assert drawn == 4
    assert problems == []
