"""The rows list follows the relay live (and holds still while live updates are paused), and the uPlot chart of
rates and latency renders (a screenshot is saved for a person to look at)."""

from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from outbox import publish
from outbox.live import announce_backlog
from outbox.models import OutboxEvent
from tests.browser.test_outbox_live import _off_main_thread
from tests.conftest import login

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"


def _publish_and_announce(keys: list[str]) -> None:
    def work():
        with transaction.atomic():
            for key in keys:
                publish("kafka://browser-rows", key, "order.created", {"key": key})
        announce_backlog()

    _off_main_thread(work)


def test_it_shows_new_rows_live_and_holds_them_while_paused(transactional_db, world, live_console, page):
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/outbox/?status=pending")
    rows = page.locator("[data-testid=event-row]")
    expect(rows).to_have_count(0)
    page.wait_for_timeout(1000)  # the socket is open
    _publish_and_announce(["a-1", "a-2"])
    expect(rows).to_have_count(2, timeout=10_000)
    page.locator("[data-testid=live-pause]").check()
    _publish_and_announce(["a-3"])
    page.wait_for_timeout(2000)
    expect(rows).to_have_count(2)  # held while paused
    page.locator("[data-testid=live-pause]").uncheck()
    _off_main_thread(announce_backlog)
    expect(rows).to_have_count(3, timeout=10_000)
    expect(page.locator("#outbox-rows")).to_contain_text("a-3")


def test_it_draws_the_rates_and_latency_chart(transactional_db, world, live_console, page):
    with transaction.atomic():
        events = [publish("kafka://browser-chart", f"k-{i}", "order.created", {"i": i}) for i in range(30)]
    now = timezone.now()
    for i, event in enumerate(events):  # published over the last few minutes with a spread of latencies
        at = now - timezone.timedelta(seconds=10 * i)
        OutboxEvent.objects.filter(pk=event.pk).update(
            status="published", created_at=at, published_at=at, latency_ms=5.0 + i
        )
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/outbox/")
    expect(page.locator("#outbox-chart .uplot canvas")).to_have_count(1, timeout=10_000)
    box = page.locator("#outbox-chart .uplot canvas").bounding_box()
    assert box is not None and box["width"] >= 400 and box["height"] >= 200
    expect(page.locator("#outbox-chart .u-legend")).to_contain_text("p99 ms")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "outbox-chart.png"), full_page=True)
