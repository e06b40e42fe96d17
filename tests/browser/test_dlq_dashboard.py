"""Issue #6: the dashboard's dead-letter tile changes live when a message is dead-lettered and ingested."""

import threading
import uuid

import pytest
from django.db import connection
from playwright.sync_api import expect

from brokers.base import OutgoingMessage
from console import brokers
from dlq import ingest
from dlq.models import DeadLetterSource
from tests.conftest import login, wait_for_socket, watch_socket

pytestmark = pytest.mark.browser


def _ingest(source) -> None:
    try:
        for _ in range(60):
            if ingest.run_once(source):
                break
    finally:
        ingest.close_all()
        connection.close()


def test_it_counts_a_new_dead_letter_on_the_dashboard_live(transactional_db, world, live_console, page):
    kafka = brokers.get("kafka")
    dlq = f"t-{uuid.uuid4().hex[:8]}.DLQ"
    kafka.ensure_destination(dlq)
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq)
    try:
        watch_socket(page)
        login(page, live_console, "viewer")
        tile = page.locator("[data-testid=tile-dlq] .value")
        expect(tile).to_have_text("0")
        wait_for_socket(page)
        page.evaluate("window.__marker = 'same page'")
        kafka.publish_batch([OutgoingMessage(dlq, b'{"x": 1}', None, {"x-exception-type": "app.Boom"})])
        # Ingest in another thread, as the worker would: Playwright's event loop owns this one, and the live
        # broadcast cannot run its sync wrapper inside it.
        worker = threading.Thread(target=_ingest, args=(source,))
        worker.start()
        worker.join(60)
        expect(tile).to_have_text("1", timeout=10_000)
        assert page.evaluate("window.__marker") == "same page"
    finally:
        ingest.close_all()
        kafka.delete_destination(dlq)
