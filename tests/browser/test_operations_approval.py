"""Four eyes in the browser: operator A's noop waits; operator B approves it on its page and watches it reach 100 %."""

import pytest
from playwright.sync_api import expect

from tests.conftest import login, make_user, wait_for_js

pytestmark = pytest.mark.browser


def test_it_runs_an_operation_once_another_operator_approves_it(transactional_db, world, settings, live_console, page):
    # The live console's processes read their settings at start-up; the start goes through this process, where the
    # override holds, and the approval through the console, whose approve needs no setting.
    settings.OPERATION_APPROVAL_KINDS = ["noop"]
    second = make_user("second", "operator")
    body = {
        "kind": "noop",
        "reason": "four eyes",
        "idempotency_key": "ab-1",
        "parameters": {"items": 12, "delay_ms": 150},
    }
    response = world.client(world.operator).post("/api/v1/operations", data=body, content_type="application/json")
    assert response.status_code == 201, response.content
    op_id = response.json()["id"]
    assert response.json()["status"] == "awaiting_approval"

    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/operations/{op_id}/")
    expect(page.locator("[data-testid=approval-note]")).to_contain_text("another operator must approve it")
    expect(page.locator("[data-testid=approve-form]")).to_have_count(0)
    page.wait_for_timeout(1000)  # nothing runs while it waits
    expect(page.locator("[data-testid=status]")).to_have_text("awaiting_approval")
    expect(page.locator("[data-testid=percent]")).to_have_text("0%")
    page.context.clear_cookies()

    login(page, live_console, second.username)
    page.add_init_script(
        "window.wsOpen = false; document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true })"
    )
    page.goto(f"{live_console.url}/operations/{op_id}/")
    form = page.locator("[data-testid=approve-form]")
    form.locator("input[name=reason]").fill("checked the parameters")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{live_console.url}/operations/{op_id}/")
    wait_for_js(page, "window.wsOpen === true")
    expect(page.locator("[data-testid=approved-by]")).to_contain_text("Approved by second")
    # The page the approval led to is the one that sees the run finish: no reload in between.
    page.evaluate("window.__marker = 'same page'")
    expect(page.locator("[data-testid=percent]")).to_have_text("100%", timeout=20_000)
    expect(page.locator("[data-testid=status]")).to_have_text("succeeded")
    assert page.evaluate("window.__marker") == "same page"
