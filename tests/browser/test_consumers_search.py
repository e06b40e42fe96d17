"""Typing in the Consumers search narrows the list without a reload, and the live socket then follows the new filter:
a new target that matches is appended, one that does not is not."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from console.live import broadcast
from monitoring.models import ConsumerTarget
from tests.conftest import login, wait_for_js

pytestmark = pytest.mark.browser

WS_OPEN = "window.wsOpens = 0; document.addEventListener('htmx:wsOpen', () => { window.wsOpens += 1 })"


def _new_targets(*names: str) -> None:
    """A sampler pass that found these targets, from a thread: Playwright's event loop owns this one."""

    def run():
        from django.db import connection

        try:
            ids = [
                ConsumerTarget.objects.create(
                    broker="kafka", connection="default", kind=ConsumerTarget.Kind.GROUP, name=n, lag=1
                ).pk
                for n in names
            ]
            broadcast("consumers", {"type": "consumers", "targets": [], "new": ids})
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def test_it_searches_by_name_and_keeps_the_live_list_to_the_search(transactional_db, world, live_console, page):
    for name in ("billing-workers", "shipping-workers"):
        ConsumerTarget.objects.create(
            broker="kafka", connection="default", kind=ConsumerTarget.Kind.GROUP, name=name, lag=0
        )
    login(page, live_console, "viewer")
    page.add_init_script(WS_OPEN)
    page.goto(f"{live_console.url}/consumers/")
    wait_for_js(page, "window.wsOpens === 1")
    rows = page.locator("[data-testid=consumer-row]")
    expect(rows).to_have_count(2)
    page.evaluate("window.marker = 'same page'")

    page.fill("[data-testid=consumer-search]", "billing")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-name", "billing-workers")
    assert "q=billing" in page.url
    wait_for_js(page, "window.wsOpens === 2")  # the swapped block opened its own socket

    _new_targets("billing-reports", "audit-workers")
    expect(page.locator("[data-testid=consumer-row][data-name='billing-reports']")).to_be_visible(timeout=10_000)
    page.wait_for_timeout(500)
    expect(rows).to_have_count(2)  # audit-workers does not match the search
    assert page.evaluate("window.marker") == "same page"
