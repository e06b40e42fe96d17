"""The Content-Security-Policy: every main page loads with no violation reported (no inline script, style attribute
or eval left anywhere), the pages still work under it (live updates, htmx forms, the moved sagas script), and markup
that slips through — an inline handler, a `javascript:` link — cannot run."""

import uuid

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from console.models import Operation
from dlq.models import DeadLetter, DeadLetterSource
from sagas.recording import record_events, validate_event
from tests.conftest import login, wait_for_js
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser

# Registered before any page script: a violation on the document itself is reported as this event.
WATCH = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sample || ''));
});
window.wsOpen = false;
document.addEventListener('htmx:wsOpen', () => { window.wsOpen = true });
"""


def _watch(page) -> list[str]:
    """CSP messages Chromium prints to the console (also those no event reaches, e.g. in a fragment htmx swaps)."""
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(WATCH)
    return messages


def _seed() -> dict[str, str]:
    events = [
        ev("csp-1", "reserve", seq=1, correlation_id="CSP-1", context={"note": "<script>window.pwned=1</script>"}),
        ev("csp-1", "charge", status="failed", seq=2, error={"type": "Declined", "message": "<img src=x onerror=x>"}),
    ]
    record_events([validate_event(e)[0] for e in events])
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"csp-{uuid.uuid4().hex[:6]}.DLQ")
    now = timezone.now()
    dl = DeadLetter.objects.create(
        source=source,
        origin="csp",
        message_id="0:0",
        body=b'{"html": "<script>window.pwned=2</script>"}',
        body_text='{"html": "<script>window.pwned=2</script>"}',
        first_failure_at=now,
        last_failure_at=now,
        fingerprint="fp-csp",
    )
    return {"dead_letter": str(dl.pk)}


PAGES = [
    "/",
    "/sagas/",
    "/sagas/?status=failed",
    "/sagas/csp-1/",
    "/sagas/failures",
    "/dead-letters/",
    "/dead-letters/groups/",
    "/dead-letters/sources/",
    "/dead-letters/{dead_letter}/",
    "/outbox/",
    "/consumers/",
    "/consumers/alerts/",
    "/operations/",
    "/audit/",
    "/brokers/",
    "/processes/",
    "/trace/?correlation=CSP-1",
    "/tokens/",
    "/admin/auth/user/",
]


def test_it_sends_the_policy_and_every_main_page_loads_without_a_violation(transactional_db, world, live_console, page):
    ids = _seed()
    world.admin.is_staff = True
    world.admin.save(update_fields=["is_staff"])
    header = requests.get(f"{live_console.url}/login/", timeout=10).headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:"):
        assert directive in header, header
    assert "frame-ancestors 'none'" in header and "connect-src 'self'" in header and "unsafe" not in header

    messages = _watch(page)
    page.goto(f"{live_console.url}/login/")
    assert page.evaluate("window.cspViolations") == []
    login(page, live_console, "admin")
    for path in PAGES:
        page.goto(f"{live_console.url}{path.format(**ids)}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.cspViolations") == [], path
        assert page.evaluate("window.pwned") is None, path
    assert messages == []


def test_it_keeps_live_updates_forms_and_the_sagas_script_working(transactional_db, world, live_console, page):
    _seed()
    messages = _watch(page)
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/sagas/?saga_type=order")
    wait_for_js(page, "window.wsOpen === true")
    # A live row over the WebSocket (connect-src 'self' lets it open).
    token = world.token(world.viewer)
    answer = requests.post(
        f"{live_console.url}/api/v1/saga-events",
        json=ev("csp-live", "reserve", seq=1),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 201
    expect(page.locator("[data-testid=saga-row]", has_text="csp-live")).to_be_visible(timeout=10_000)
    # The list's script, now a static file: pause and resume.
    page.click("[data-testid=live-toggle]")
    expect(page.locator("#live-state")).to_have_text("paused")
    page.click("[data-testid=live-toggle]")
    expect(page.locator("#live-state")).to_have_text("live")
    # An htmx form posts (hx-post with the CSRF header from hx-headers) and its answer is swapped in.
    page.goto(f"{live_console.url}/sagas/csp-1/")
    form = page.locator("[data-testid=action-resolve]")
    form.locator("input[name=note]").fill("refunded by hand")
    form.locator("input[name=reason]").fill("card declined twice")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-testid=action-started]")).to_be_visible()
    assert Operation.objects.filter(kind="saga-action").count() == 1
    assert page.evaluate("window.cspViolations") == [] and messages == []


def test_it_stops_markup_that_slips_through_from_running(transactional_db, world, live_console, page):
    messages = _watch(page)
    login(page, live_console, "viewer")
    page.goto(f"{live_console.url}/sagas/")
    page.evaluate(
        """() => {
        const main = document.querySelector('main');
        main.insertAdjacentHTML('beforeend', '<img src="data:," onerror="window.pwned = 1">');
        main.insertAdjacentHTML('beforeend', '<a id="evil" href="javascript:window.pwned = 2">evidence</a>');
        const s = document.createElement('script');
        s.textContent = 'window.pwned = 3';
        main.appendChild(s);
    }"""
    )
    page.click("#evil")
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    violations = page.evaluate("window.cspViolations")
    assert len(violations) >= 3 and all(v.startswith("script-src") for v in violations), violations
    assert messages  # Chromium says so on the console too
