"""Double-clicked in the browser (issue 14): the dead letter's Replay button and a saga's Resolve button clicked twice
in a row each start one operation, whatever reaches the server twice."""

import uuid

import pytest
from django.utils import timezone

from console.models import AuditEntry, Operation
from dlq.models import DeadLetter, DeadLetterSource
from sagas.recording import record_events, validate_event
from tests.conftest import login
from tests.dlq.conftest import wait_until
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser


def test_it_replays_a_double_clicked_dead_letter_once(transactional_db, world, live_console, page):
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"dbl-{uuid.uuid4().hex[:6]}.DLQ")
    now = timezone.now()
    dl = DeadLetter.objects.create(
        source=source, origin="dbl.orders", message_id="0:0", body=b"{}", first_failure_at=now, last_failure_at=now
    )
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/{dl.pk}/")
    page.fill("input[name=reason]", "double-click drill")
    page.dblclick("button:has-text('Replay to dbl.orders')")
    page.wait_for_load_state("networkidle")
    wait_until(lambda: Operation.objects.filter(kind="dlq.replay").exists(), 20)
    assert Operation.objects.filter(kind="dlq.replay").count() == 1
    assert AuditEntry.objects.filter(action__startswith="operation.start").count() == 1


def test_it_resolves_a_double_clicked_saga_once(transactional_db, world, live_console, page):
    steps = [ev("dbl-1", "reserve", seq=1), ev("dbl-1", "charge", status="failed", seq=2)]
    record_events([validate_event(e)[0] for e in steps])
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/sagas/dbl-1/")
    form = page.locator("[data-testid=action-resolve]")
    form.locator("input[name=note]").fill("fixed by hand")
    form.locator("input[name=reason]").fill("double-click drill")
    form.locator("button[type=submit]").dblclick()
    page.wait_for_selector("[data-testid=action-started]")
    page.wait_for_load_state("networkidle")
    wait_until(lambda: Operation.objects.filter(kind="saga-action").exists(), 20)
    assert Operation.objects.filter(kind="saga-action").count() == 1
    assert AuditEntry.objects.filter(action="operation.start").count() == 1
