"""An operator watches the outbox backlog change live (no reload), pauses live updates, and retries a failed row."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import transaction
from playwright.sync_api import expect

from outbox import publish
from outbox.live import announce_backlog
from outbox.models import OutboxEvent
from tests.conftest import login

pytestmark = pytest.mark.browser


def _off_main_thread(fn):
    """Playwright's event loop lives on the main thread; broadcast() needs a thread without one."""
    from django.db import connection

    def run():
        try:
            fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def _publish(n: int, start: int = 0) -> None:
    def work():
        with transaction.atomic():
            for i in range(start, start + n):
                publish("kafka://browser-orders", f"k-{i}", "order.created", {"i": i})
        announce_backlog()  # what the relay and the actions do after a change

    _off_main_thread(work)


def test_it_updates_the_backlog_live_and_holds_it_while_paused(transactional_db, world, live_console, page):
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/outbox/")
    expect(page.locator("[data-testid=unpublished]")).to_have_text("0")
    page.evaluate("window.__marker = 'same page'")
    page.wait_for_timeout(1000)  # the socket is open
    _publish(3)
    expect(page.locator("[data-testid=unpublished]")).to_have_text("3", timeout=10_000)
    expect(page.locator("[data-testid=destination-row]")).to_have_count(1)
    page.locator("[data-testid=live-pause]").check()
    _publish(2, start=3)
    page.wait_for_timeout(1500)
    expect(page.locator("[data-testid=unpublished]")).to_have_text("3")  # held while paused
    page.locator("[data-testid=live-pause]").uncheck()
    _off_main_thread(announce_backlog)
    expect(page.locator("[data-testid=unpublished]")).to_have_text("5", timeout=10_000)
    assert page.evaluate("window.__marker") == "same page"


def test_it_retries_a_failed_row_from_the_page(transactional_db, world, live_console, page):
    with transaction.atomic():
        event = publish("kafka://browser-orders", "k-1", "order.created", {"i": 1})
    OutboxEvent.objects.filter(pk=event.pk).update(status="failed", attempts=8, last_error="broker said no")
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/outbox/?status=failed")
    row = page.locator(f"[data-testid=event-row][data-id='{event.pk}']")
    expect(row).to_contain_text("broker said no")
    row.locator("form:has([data-testid=retry]) input[name=reason]").fill("broker fixed")
    row.locator("[data-testid=retry]").click()
    expect(page.locator(".flash-ok")).to_contain_text("1 row(s) will be relayed again")
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("pending", 0)
