"""Operator starts a noop and watches its progress reach 100 % live; a viewer gets no button and a 403."""

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import login, wait_for_js

pytestmark = pytest.mark.browser


def test_it_shows_progress_live_to_an_operator(transactional_db, world, live_console, page):
    login(page, live_console, "operator")
    page.click("text=Operations")
    form = page.locator("[data-testid=start-form]")
    form.locator("input[name=items]").fill("15")
    form.locator("input[name=delay_ms]").fill("150")
    form.locator("input[name=reason]").fill("browser check")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/operations/[0-9a-f-]+/$"))
    detail_url = page.url
    # The socket is open before the worker finishes: the page shows an early state and then 100 % without a reload.
    page.evaluate("window.__marker = 'same page'")
    expect(page.locator("[data-testid=percent]")).to_have_text("100%", timeout=20_000)
    expect(page.locator("[data-testid=status]")).to_have_text("succeeded")
    assert page.evaluate("window.__marker") == "same page"
    assert page.url == detail_url


def test_it_gives_a_viewer_no_start_button_and_a_403(transactional_db, world, live_console, page):
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/operations/")
    expect(page.locator("h1")).to_have_text("Operations")
    assert page.locator("[data-testid=start-form]").count() == 0
    # The POST the button would make, with the viewer's own session and CSRF token: refused.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = requests.post(
        f"{live_console.url}/operations/start",
        data={"kind": "noop", "reason": "r", "idempotency_key": "v1", "csrfmiddlewaretoken": cookies["csrftoken"]},
        cookies=cookies,
        headers={"Referer": f"{live_console.url}/operations/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 403


def test_it_puts_an_operation_started_elsewhere_on_the_open_list(transactional_db, world, live_console, page):
    """A colleague's replay (here: a noop through the API) appears on an open Operations list without a reload; a list
    filtered to another status does not take it."""
    token = world.token(world.operator)

    def start(key: str) -> str:
        response = requests.post(
            f"{live_console.url}/api/v1/operations",
            json={"kind": "noop", "reason": "elsewhere", "idempotency_key": key, "parameters": {"items": 3}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    login(page, live_console, "viewer")
    page.add_init_script(
        "window.wsOpen = false; document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true })"
    )
    page.goto(f"{live_console.url}/operations/")
    wait_for_js(page, "window.wsOpen === true")
    expect(page.locator("[data-testid=no-operations]")).to_be_visible()
    page.evaluate("window.__marker = 'same page'")
    op_id = start("live-1")
    row = page.locator(f"#op-row-{op_id}")
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_contain_text("succeeded", timeout=20_000)  # then swapped in place as it progresses
    expect(page.locator("[data-testid=no-operations]")).to_have_count(0)
    expect(page.locator("#operation-rows tr")).to_have_count(1)
    assert page.evaluate("window.__marker") == "same page"

    page.goto(f"{live_console.url}/operations/?status=failed")
    wait_for_js(page, "window.wsOpen === true")
    other = start("live-2")
    page.wait_for_timeout(2000)  # long enough for the worker to run it and its broadcasts to arrive
    expect(page.locator(f"#op-row-{other}")).to_have_count(0)
