"""XSS in a real browser (issue 14): the hostile corpus loaded as messages, sagas, outbox events and operator-written
text, then every page that shows them opened in Chromium as an operator; the drill fails if any script runs (it would
set window.pwned) or any dialog opens."""

import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from console.models import AuditEntry, Operation
from dlq.models import DeadLetter, DeadLetterSource
from monitoring.models import AlertRule, Incident
from outbox.publishing import publish
from sagas.recording import record_events, validate_event
from tests.conftest import login
from tests.drills import figures
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>window.pwned='script'</script>",
    "<img src=x onerror=\"window.pwned='img'\">",
    '"><svg onload=alert(1)>',
    "' onmouseover='window.pwned=\"attr\"' x='",
    "</textarea><script>alert(2)</script>",
    "javascript:window.pwned='href'",
    '<a href="javascript:alert(3)">x</a>',
    "{{7*7}}<iframe src=javascript:alert(4)>",
]


def _seed(world) -> list[str]:
    """The corpus everywhere a page shows data; the paths that show it."""
    paths = [
        "/",
        "/sagas/",
        "/sagas/failures",
        "/dead-letters/",
        "/dead-letters/groups/",
        "/dead-letters/sources/",
        "/outbox/",
        "/operations/",
        "/audit/",
        "/consumers/alerts/",
        "/tokens/",
        "/processes/",
    ]
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"xss-{uuid.uuid4().hex[:6]}.DLQ")
    now = timezone.now()
    for n, payload in enumerate(PAYLOADS):
        saga = f"xss-{n}"
        events = [
            ev(saga, "reserve", seq=1, correlation_id=f"X-{n}", context={"note": payload, payload[:40]: payload}),
            ev(
                saga,
                payload[:100],
                status="failed",
                seq=2,
                error={"type": payload[:100], "message": payload, "traceback": payload},
            ),
        ]
        record_events([validate_event(e)[0] for e in events])
        dl = DeadLetter.objects.create(
            source=source,
            origin=payload[:200],
            message_id=f"0:{n}",
            body=payload.encode(),
            body_text=payload,
            headers={"x-exception-message": payload, payload[:50]: payload},
            exception_type=payload[:200],
            exception_message=payload,
            correlation_id=f"X-{n}",
            first_failure_at=now,
            last_failure_at=now,
            fingerprint=f"xss{n}",
        )
        with transaction.atomic():
            event = publish("kafka://xss.events", payload[:100], payload[:100], {"html": payload})
        op = Operation.objects.create(
            kind="noop",
            requested_by=world.operator,
            reason=payload,
            message=payload,
            idempotency_key=f"xss-{n}",
            errors=[{"item": payload, "error": payload}],
        )
        AuditEntry.objects.create(
            actor=world.operator,
            action="drill.note",
            target_type="saga",
            target_id=saga,
            reason=payload,
            parameters={"note": payload},
        )
        rule = AlertRule.objects.create(name=payload[:120], kind="consumer_status", minutes=5)
        Incident.objects.create(rule=rule, subject=payload[:200], summary=payload)
        paths += [
            f"/sagas/{saga}/",
            f"/dead-letters/{dl.pk}/",
            f"/outbox/events/{event.pk}/",
            f"/operations/{op.pk}/",
            f"/trace/?correlation=X-{n}",
        ]
    return paths


def test_it_runs_no_script_and_opens_no_dialog_on_any_page_showing_hostile_data(
    transactional_db, world, live_console, page
):
    paths = _seed(world)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, live_console, "operator")
    errors = 0
    for path in paths:
        response = page.goto(f"{live_console.url}{path}")
        errors += response.status >= 500
        page.wait_for_load_state("networkidle")
        # Hover everything once: an attribute-breaking payload would hang its handler on some element.
        page.evaluate("document.querySelectorAll('body *').forEach(e => e.dispatchEvent(new MouseEvent('mouseover')))")
        assert page.evaluate("window.pwned") is None, (path, page.evaluate("window.pwned"))
        assert dialogs == [], (path, dialogs)
    figures.record("XSS in Chromium (pages with the corpus)", inputs=len(paths) * len(PAYLOADS), http_500=errors)
    assert errors == 0
