"""An operator resolves a compensation_failed saga and sees its status change without a reload."""

import pytest
from playwright.sync_api import expect

from sagas.recording import record_events, validate_event
from tests.conftest import login
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser


def test_it_resolves_a_failed_compensation_live(transactional_db, world, live_console, page):
    events = [
        ev("web-1", "reserve", seq=1, correlation_id="ORD-9"),
        ev("web-1", "charge", status="failed", seq=2),
        ev(
            "web-1",
            "reserve",
            direction="compensate",
            status="failed",
            seq=3,
            error={
                "type": "Timeout",
                "message": "stock service down",
                "traceback": "Traceback (most recent call last)",
            },
        ),
    ]
    record_events([validate_event(e)[0] for e in events])
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/sagas/?status=compensation_failed")
    page.click("text=web-1")
    expect(page.locator("[data-testid=saga-status]")).to_have_text("compensation_failed")
    page.evaluate("window.__marker = 'same page'")
    form = page.locator("[data-testid=action-resolve]")
    form.locator("input[name=note]").fill("stock released by hand")
    form.locator("input[name=evidence_url]").fill("https://tickets.example/77")
    form.locator("input[name=reason]").fill("stock service was down for an hour")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=action-started]")).to_be_visible()
    # The worker runs the operation; the socket brings the new status and the operator's entry in the timeline.
    expect(page.locator("[data-testid=saga-status]")).to_have_text("resolved_manually", timeout=20_000)
    expect(page.locator("[data-testid=operator-action]")).to_contain_text("operator: stock released by hand")
    expect(page.locator("[data-testid=operator-action]")).to_contain_text("why: stock service was down for an hour")
    assert page.evaluate("window.__marker") == "same page"
