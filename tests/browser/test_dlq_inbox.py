"""Hostile dead letters render inertly; a group replay with a rate limit finishes live on the operation page."""

import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from brokers.base import Message
from console import brokers
from dlq import ingest
from dlq.models import DeadLetterSource
from tests.conftest import login

pytestmark = pytest.mark.browser


def _store(source, bodies, headers=None):
    now = datetime.now(UTC)
    return ingest.store(
        source,
        [
            Message(source.destination, body, None, headers or {"x-exception-type": b"app.Boom"}, None, 0, i, now)
            for i, body in enumerate(bodies)
        ],
    )


@pytest.fixture
def kafka_origin(transactional_db):
    """A fresh Kafka origin topic and the DLQ source of its dead letters: (adapter, origin, source)."""
    kafka = brokers.get("kafka")
    origin = f"o-{uuid.uuid4().hex[:8]}"
    kafka.ensure_destination(origin)
    yield kafka, origin, DeadLetterSource.objects.create(broker="kafka", destination=origin + ".DLQ")
    kafka.delete_destination(origin)


def test_it_never_runs_script_from_a_dead_letter(transactional_db, world, live_console, page):
    source = DeadLetterSource.objects.create(broker="kafka", destination=f"h-{uuid.uuid4().hex[:6]}.DLQ")
    hostile = {
        "x-exception-type": b"<img src=x onerror=window.pwned=2>",
        "x-bad": b"\xff<script>window.pwned=3</script>",
    }
    dls = _store(source, [b"<script>window.pwned=1</script>", b"\xff\xfe<script>window.pwned=4</script>"], hostile)
    login(page, live_console, "operator")
    for dl in dls:
        page.goto(f"{live_console.url}/dead-letters/{dl.pk}/")
        expect(page.locator("h1")).to_have_text(f"Dead letter {dl.pk}")
        assert page.evaluate("window.pwned") is None
    # Each page checked before the next navigation (a new page starts with a fresh window, so checking only the last
    # one would miss a script the inbox ran); and any dialog a script opened fails the test too.
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_console.url}/dead-letters/")
    expect(page.locator("[data-testid=dl-row]").first).to_be_visible()
    assert page.evaluate("window.pwned") is None
    page.goto(f"{live_console.url}/dead-letters/groups/")
    expect(page.locator("[data-testid=group-row]").first).to_be_visible()
    assert page.evaluate("window.pwned") is None
    assert dialogs == []


def test_it_replays_a_group_at_a_rate_and_shows_it_finish_live(kafka_origin, world, live_console, page):
    kafka, origin, source = kafka_origin
    _store(source, [f'{{"n": {i}}}'.encode() for i in range(30)])
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/groups/")
    row = page.locator("[data-testid=group-row]").first
    expect(row.locator("[data-testid=group-count]")).to_have_text("30")
    row.locator("[data-testid=group-replay] button[type=submit]").click()
    # The preview first: the frozen set's count and sample; the rate and reason are asked there; then start.
    preview = page.locator("[data-testid=replay-preview]")
    expect(preview.locator("h2")).to_have_text("Replay 30 dead letters")
    preview.locator("input[name=rate]").fill("15")
    preview.locator("input[name=reason]").fill("fixed the bug")
    preview.locator("[data-testid=replay-start]").click()
    page.wait_for_url(re.compile(r"/operations/[0-9a-f-]+/$"))
    page.evaluate("window.__marker = 'same page'")
    expect(page.locator("[data-testid=percent]")).to_have_text("100%", timeout=30_000)
    expect(page.locator("[data-testid=status]")).to_have_text("succeeded")
    assert page.evaluate("window.__marker") == "same page"
    assert len(kafka.read(origin, 100, timeout=10)) == 30


def test_it_previews_the_checked_dead_letters_before_replaying_them(kafka_origin, world, live_console, page):
    # The checkboxes live in the table, outside the actions form (form="dl-actions"): the preview must see them.
    kafka, origin, source = kafka_origin
    rows = _store(source, [f'{{"n": {i}}}'.encode() for i in range(5)])
    login(page, live_console, "operator")
    page.goto(f"{live_console.url}/dead-letters/")
    for dl in rows[:2]:
        page.check(f"input[name=ids][value='{dl.pk}']")
    page.click("[data-testid=replay-preview-button]")
    preview = page.locator("[data-testid=replay-preview]")
    expect(preview.locator("h2")).to_have_text("Replay 2 dead letters")
    expect(preview.locator("[data-testid=replay-sample] tbody tr")).to_have_count(2)
    preview.locator("input[name=reason]").fill("two of them")
    preview.locator("[data-testid=replay-start]").click()
    page.wait_for_url(re.compile(r"/operations/[0-9a-f-]+/$"))
    expect(page.locator("[data-testid=status]")).to_have_text("succeeded", timeout=30_000)
    assert sorted(m.body for m in kafka.read(origin, 10, timeout=10)) == [b'{"n": 0}', b'{"n": 1}']
