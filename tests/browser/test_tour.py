"""The README's five-minute tour, walked in a browser step by step against a running console (daphne and a Celery
worker), with real Kafka: find the failing saga, read its timeline, resolve the failed compensation, replay a
dead-letter group at a rate, watch the lag clear. Each step saves the screenshot the README shows (docs/screenshots/),
so the pictures stay current with the pages."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from console import brokers
from dlq.models import DeadLetter, DeadLetterSource
from sagas.recording import record_events, validate_event
from tests.browser.test_dlq_inbox import _store
from tests.browser.test_monitoring_charts import _sample
from tests.conftest import login
from tests.sagas.helpers import ev

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "screenshots"
SIZE = {"width": 1280, "height": 800}


def _shot(page, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}.png"))


def _seed_sagas() -> str:
    now = timezone.now()
    saga = f"order-{uuid.uuid4().hex[:6]}"
    events = [
        ev(saga, "reserve_stock", seq=1, correlation_id="ORD-1042",
           occurred_at=(now - timedelta(seconds=9)).isoformat()),
        ev(saga, "charge_card", seq=2, occurred_at=(now - timedelta(seconds=8)).isoformat()),
        ev(saga, "ship_parcel", status="failed", seq=3, occurred_at=(now - timedelta(seconds=6)).isoformat(),
           error={"type": "CarrierRejected", "message": "fragile parcel refused by carrier"}),
        ev(saga, "charge_card", direction="compensate", seq=4, occurred_at=(now - timedelta(seconds=5)).isoformat()),
        ev(saga, "reserve_stock", direction="compensate", status="failed", seq=5,
           occurred_at=(now - timedelta(seconds=4)).isoformat(),
           error={"type": "WarehouseTimeout", "message": "warehouse refused to release stock"}),
    ]  # fmt: skip
    for _ in range(6):  # a few that went well, around it
        events.append(ev(f"order-ok-{uuid.uuid4().hex[:6]}", "reserve_stock", seq=1, saga_status="completed"))
    record_events([validate_event(e)[0] for e in events])
    return saga


def test_it_walks_the_readme_tour_and_saves_its_screenshots(transactional_db, world, live_console, page):
    kafka = brokers.get("kafka")
    origin, topic, group = (f"tour-{uuid.uuid4().hex[:6]}-{n}" for n in ("orders", "payments", "billing"))
    kafka.ensure_destination(origin)
    kafka.ensure_destination(topic)
    try:
        saga = _seed_sagas()
        source = DeadLetterSource.objects.create(broker="kafka", destination=f"{origin}.DLQ")
        letters = _store(source, [f'{{"order": {i}}}'.encode() for i in range(12)], {"x-exception-type": b"KeyError"})
        for i, letter in enumerate(letters):  # arrived over the last hour, faster lately: the chart has a shape
            DeadLetter.objects.filter(pk=letter.pk).update(ingested_at=timezone.now() - timedelta(minutes=55 / (i + 1)))
        for i in range(8):
            kafka.publish(topic, f"payment-{i}".encode())
        kafka.commit_offsets(group, {(topic, 0): 2})  # a consumer 6 behind
        now = timezone.now()
        for minutes in (30, 20, 10, 0):
            _sample(now - timedelta(minutes=minutes))

        page.set_viewport_size(SIZE)
        login(page, live_console, "operator")
        # 0. The dashboard: tiles, and the charts over the last hour.
        expect(page.locator("#plot-dead-letters .uplot canvas")).to_have_count(1, timeout=10_000)
        _shot(page, "tour-0-dashboard")

        # 1. Find the failing saga: the tile leads to the list filtered to compensation_failed.
        page.locator("[data-testid=tile-sagas-compensation-failed]").click()
        expect(page.locator("[data-testid=saga-row]")).to_have_count(1)
        _shot(page, "tour-1-failing-saga")

        # 2. Read its timeline: execution on the left, compensation on the right, the failed steps in red.
        page.click(f"text={saga}")
        expect(page.locator("[data-testid=saga-status]")).to_have_text("compensation_failed")
        _shot(page, "tour-2-timeline")

        # 3. Resolve the failed compensation, with a note, evidence and a reason (audited).
        form = page.locator("[data-testid=action-resolve]")
        form.locator("input[name=note]").fill("stock released by hand in the warehouse system")
        form.locator("input[name=evidence_url]").fill("https://tickets.example/1042")
        form.locator("input[name=reason]").fill("warehouse API was down; released manually")
        form.locator("button[type=submit]").click()
        expect(page.locator("[data-testid=saga-status]")).to_have_text("resolved_manually", timeout=20_000)
        page.locator("[data-testid=operator-action]").scroll_into_view_if_needed()
        _shot(page, "tour-3-resolved")

        # 4. Replay a dead-letter group at a rate: preview the frozen set, then start; the operation runs live.
        page.goto(f"{live_console.url}/dead-letters/groups/")
        row = page.locator("[data-testid=group-row]").first
        row.locator("[data-testid=group-replay] button[type=submit]").click()
        preview = page.locator("[data-testid=replay-preview]")
        expect(preview.locator("h2")).to_have_text("Replay 12 dead letters")
        preview.locator("input[name=rate]").fill("10")
        preview.locator("input[name=reason]").fill("fixed the missing customer_id")
        _shot(page, "tour-4-replay-preview")
        preview.locator("[data-testid=replay-start]").click()
        expect(page.locator("[data-testid=status]")).to_have_text("succeeded", timeout=30_000)
        _shot(page, "tour-4-replayed")
        assert len(kafka.read(origin, 100, timeout=10)) == 12

        # 5. Watch the lag clear: the consumer catches up, the next sampler pass shows it OK at lag 0.
        page.goto(f"{live_console.url}/consumers/kafka:default/{group}/")
        expect(page.locator("#chart .uplot canvas")).to_be_visible(timeout=10_000)
        assert "lag 6" in page.locator("p.muted").first.inner_text()
        kafka.commit_offsets(group, {(topic, 0): 8})
        _sample()
        page.reload()
        assert "lag 0" in page.locator("p.muted").first.inner_text()
        expect(page.locator("#chart .uplot canvas")).to_be_visible(timeout=10_000)
        _shot(page, "tour-5-lag-cleared")
    finally:
        kafka.delete_destination(origin)
        kafka.delete_destination(topic)
