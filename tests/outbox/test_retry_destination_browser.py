"""An operator retries every failed row of a destination from a backlog table that live updates have re-rendered
(the socket's render has no request, so no CSRF token of its own)."""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from console.models import AuditEntry
from outbox import publish
from outbox.live import announce_backlog
from outbox.models import OutboxEvent
from tests.browser.test_outbox_live import _off_main_thread
from tests.conftest import login

pytestmark = pytest.mark.browser


def _failed(n: int, start: int = 0) -> list[int]:
    with transaction.atomic():
        events = [
            publish("kafka://browser-retry", f"k-{i}", "order.created", {"i": i}) for i in range(start, start + n)
        ]
    ids = [e.pk for e in events]
    OutboxEvent.objects.filter(pk__in=ids).update(status="failed", attempts=8, last_error="broker said no")
    return ids


def test_it_retries_all_failed_rows_of_a_destination_after_a_live_update(transactional_db, world, live_console, page):
    ids = _failed(2)
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/outbox/")
    row = page.locator("[data-testid=destination-row][data-destination='kafka://browser-retry']")
    expect(row.locator("[data-testid=retry-destination]")).to_have_text("Retry 2 failed")
    page.wait_for_timeout(1000)  # the socket is open
    ids += _failed(1, start=2)
    _off_main_thread(announce_backlog)
    expect(row.locator("[data-testid=retry-destination]")).to_have_text("Retry 3 failed", timeout=10_000)
    row.locator("[data-testid=retry-destination-form] input[name=reason]").fill("broker fixed")
    row.locator("[data-testid=retry-destination]").click()
    expect(page.locator(".flash-ok")).to_contain_text("kafka://browser-retry: 3 failed row(s) will be relayed again")
    assert set(OutboxEvent.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"pending"}
    assert AuditEntry.objects.get(action="outbox.retry").target_id == "kafka://browser-retry"
