"""The open inbox receives new dead letters over the WebSocket without a reload, and holds them while paused."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django.db import connection
from playwright.sync_api import expect

from brokers.base import Message
from dlq import ingest
from dlq.models import DeadLetterSource
from tests.conftest import login, wait_for_js

pytestmark = pytest.mark.browser


def _store(source, n: int):
    now = datetime.now(UTC)
    try:
        return ingest.store(
            source,
            [
                Message(
                    source.destination, b'{"live": true}', None, {"x-exception-type": b"app.Boom"}, f"m{n}", 0, n, now
                )
            ],
        )[0]
    finally:
        connection.close()


def _arrive(source, n: int):
    """What the ingest worker does: store, commit, broadcast the new ids on commit. In a thread of its own, because
    broadcast() cannot run on the thread where Playwright keeps its event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_store, source, n).result()


def test_it_shows_a_new_dead_letter_live_and_holds_it_while_paused(transactional_db, world, live_console, page):
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"live-{uuid.uuid4().hex[:6]}.DLQ")
    login(page, live_console, "operator")
    page.add_init_script(
        "window.wsOpen = false; document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true })"
    )
    page.goto(f"{live_console.url}/dead-letters/")
    wait_for_js(page, "window.wsOpen === true")
    expect(page.locator("[data-testid=dl-row]")).to_have_count(0)
    page.evaluate("window.marker = 'same page'")  # gone if anything reloads the page
    first = _arrive(source, 1)
    expect(page.locator(f"#dl-{first.pk}")).to_be_visible(timeout=10_000)

    page.check("[data-testid=pause]")
    expect(page.locator("#dl-paused-note")).to_be_visible()
    held = _arrive(source, 2)
    page.wait_for_timeout(1500)  # longer than a live update takes (the first arrived well within it)
    expect(page.locator(f"#dl-{held.pk}")).to_have_count(0)

    page.uncheck("[data-testid=pause]")  # un-pausing fetches what arrived meanwhile, once
    expect(page.locator(f"#dl-{held.pk}")).to_be_visible(timeout=10_000)
    third = _arrive(source, 3)
    expect(page.locator(f"#dl-{third.pk}")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.marker") == "same page"
    expect(page.locator("[data-testid=dl-row]")).to_have_count(3)
