"""The dashboard's charts draw from the timeline endpoint under the Content-Security-Policy (static script only),
every chart has points, the range links switch the window, and a chart's title leads to the filtered list."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_csp import _watch
from tests.conftest import login, wait_for_js
from tests.console.test_dashboard_timeline import _seed

pytestmark = pytest.mark.browser
CHARTS = ("dead-letters", "saga-failures", "outbox", "consumers")


def test_it_draws_every_chart_and_links_each_to_its_list(transactional_db, world, live_console, page):
    _seed()
    violations = _watch(page)
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/")
    for name in CHARTS:
        expect(page.locator(f"#plot-{name} .uplot canvas")).to_have_count(1, timeout=10_000)
    wait_for_js(page, "document.getElementById('timeline').dataset.drawn !== undefined")
    points = page.evaluate(f"{list(CHARTS)}.map((n) => Number(document.getElementById('plot-' + n).dataset.points))")
    assert all(p >= 60 for p in points), points
    expect(page.locator("[data-testid=changes]")).to_contain_text("new failure group")

    page.locator("[data-testid=range-week]").click()
    page.wait_for_url("**/?range=week")
    expect(page.locator("#plot-dead-letters .uplot canvas")).to_have_count(1, timeout=10_000)
    page.locator("[data-testid=chart-link-saga-failures]").click()
    page.wait_for_url("**/sagas/?status=failed")
    expect(page.locator("[data-testid=saga-row]")).to_have_count(1)
    assert violations == [] and page.evaluate("window.cspViolations") == []
