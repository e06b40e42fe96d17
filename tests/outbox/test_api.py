"""Backlog API, operator actions (role, reason, idempotency, audit), the page, /metrics and the dashboard tiles."""

import json
import re
import uuid

from django.db import transaction
from django.utils import timezone

from console.models import AuditEntry
from outbox import publish
from outbox.models import OutboxDestinationState, OutboxEvent

Status = OutboxEvent.Status


def _seed():
    """Two destinations: a failed head blocking one key, a later row held behind it, a free pending row, and a
    published one with a latency."""
    with transaction.atomic():
        failed = publish("kafka://orders", "o-1", "order.created", {"n": 1})
        held = publish("kafka://orders", "o-1", "order.paid", {"n": 2})
        pending = publish("sqs://billing", "b-1", "invoice.created", {"n": 3})
        done = publish("kafka://orders", "o-2", "order.created", {"n": 4})
    OutboxEvent.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=8, last_error="boom")
    OutboxEvent.objects.filter(pk=done.pk).update(status=Status.PUBLISHED, published_at=timezone.now(), latency_ms=12.0)
    old = timezone.now() - timezone.timedelta(seconds=90)
    OutboxEvent.objects.filter(pk=pending.pk).update(created_at=old)
    return failed, held, pending, done


def _post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_it_reports_the_backlog_in_stats(db, world):
    _seed()
    body = world.client(world.viewer).get("/api/v1/outbox/stats").json()
    assert (body["unpublished"], body["failed"], body["blocked_keys"]) == (3, 1, 1)
    assert body["oldest_unpublished_age_seconds"] >= 89
    assert body["destinations"]["kafka://orders"]["unpublished"] == 2
    assert body["destinations"]["kafka://orders"]["failed"] == 1
    assert body["destinations"]["sqs://billing"]["oldest_unpublished_age_seconds"] >= 89
    assert body["event_types"]["order.paid"]["unpublished"] == 1
    assert body["latency"]["p99_ms"] == 12.0


def test_it_lists_events_by_status_with_keyset_paging(db, world):
    failed, held, pending, done = _seed()
    client = world.client(world.viewer)
    assert [e["id"] for e in client.get("/api/v1/outbox/events", {"status": "failed"}).json()["events"]] == [failed.pk]
    listed = client.get("/api/v1/outbox/events", {"status": "pending"}).json()
    assert [e["id"] for e in listed["events"]] == [pending.pk, held.pk] and listed["next_before"] is None
    assert [e["id"] for e in client.get("/api/v1/outbox/events", {"before": held.pk}).json()["events"]] == [failed.pk]
    assert client.get("/api/v1/outbox/events", {"status": "nope"}).status_code == 400


def test_it_retries_failed_rows_for_an_operator_with_reason_audit_and_idempotency(db, world):
    failed, *_ = _seed()
    client = world.client(world.operator)
    body = {"ids": [failed.pk], "reason": "broker fixed", "idempotency_key": "k-1"}
    assert _post(client, "/api/v1/outbox/events/retry", body).json() == {"retried": [failed.pk]}
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (Status.PENDING, 0)
    assert _post(client, "/api/v1/outbox/events/retry", body).status_code == 200  # same key: same answer, once
    entries = AuditEntry.objects.filter(action="outbox.retry")
    assert entries.count() == 1 and entries.get().reason == "broker fixed" and entries.get().actor == world.operator
    again = _post(client, "/api/v1/outbox/events/retry", {**body, "idempotency_key": "k-2"})
    assert again.status_code == 409  # nothing failed any more


def test_it_refuses_actions_to_a_viewer_and_without_a_reason(db, world):
    failed, *_ = _seed()
    viewer = _post(world.client(world.viewer), "/api/v1/outbox/events/retry", {"ids": [failed.pk]})
    assert viewer.status_code == 403
    missing = _post(world.client(world.operator), f"/api/v1/outbox/events/{failed.pk}/skip", {"idempotency_key": "x"})
    assert missing.status_code == 400 and "reason" in missing.json()["fields"]
    assert world.client(None).get("/api/v1/outbox/stats").status_code == 401


def test_it_skips_a_row_and_refuses_to_skip_a_published_one(db, world):
    failed, held, pending, done = _seed()
    client = world.client(world.operator)
    ok = _post(client, f"/api/v1/outbox/events/{failed.pk}/skip", {"reason": "obsolete", "idempotency_key": "s-1"})
    assert ok.json()["status"] == "skipped"
    stats = world.client(world.viewer).get("/api/v1/outbox/stats").json()
    assert (stats["failed"], stats["blocked_keys"]) == (0, 0)
    no = _post(client, f"/api/v1/outbox/events/{done.pk}/skip", {"reason": "r", "idempotency_key": "s-2"})
    assert no.status_code == 409
    assert (
        _post(client, "/api/v1/outbox/events/999999/skip", {"reason": "r", "idempotency_key": "s-3"}).status_code == 404
    )
    assert AuditEntry.objects.filter(action="outbox.skip").count() == 1


def test_it_pauses_and_resumes_a_destination(db, world):
    client = world.client(world.operator)
    body = {"destination": "kafka://orders", "reason": "broker maintenance", "idempotency_key": "p-1"}
    assert _post(client, "/api/v1/outbox/destinations/pause", body).json()["paused"] is True
    assert OutboxDestinationState.objects.get(destination="kafka://orders").paused
    assert world.client(world.viewer).get("/api/v1/outbox/stats").json()["destinations"]["kafka://orders"]["paused"]
    resume = {**body, "idempotency_key": "p-2"}
    assert _post(client, "/api/v1/outbox/destinations/resume", resume).json()["paused"] is False
    assert not OutboxDestinationState.objects.get(destination="kafka://orders").paused
    bad = _post(client, "/api/v1/outbox/destinations/pause", {**body, "destination": "x", "idempotency_key": "p-3"})
    assert bad.status_code == 400
    assert list(
        AuditEntry.objects.filter(target_type="outbox_destination").values_list("action", flat=True).order_by("id")
    ) == [
        "outbox.pause",
        "outbox.resume",
    ]


def test_it_renders_the_page_in_a_fixed_number_of_queries(db, world, django_assert_max_num_queries):
    _seed()
    client = world.client(world.operator)
    with transaction.atomic():
        for i in range(60):
            publish("kafka://orders", f"many-{i}", "order.created", {"i": i})
    OutboxEvent.objects.filter(key__startswith="many-").update(status=Status.FAILED)
    with django_assert_max_num_queries(14):
        response = client.get("/outbox/", {"status": "failed"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-testid="event-row"') == 61
    assert 'data-testid="retry"' in html and "kafka://orders" in html


def test_it_never_marks_payload_or_errors_safe_on_the_page(db, world):
    failed, *_ = _seed()
    OutboxEvent.objects.filter(pk=failed.pk).update(last_error="<script>alert(1)</script>")
    html = world.client(world.viewer).get("/outbox/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'data-testid="retry"' not in html  # a viewer gets no action buttons


def test_it_retries_and_skips_through_the_page_forms(db, world):
    failed, held, *_ = _seed()
    client = world.client(world.operator)
    key = str(uuid.uuid4())
    # Back to the filtered page the form was on (never off-site), so the message shows where the operator was.
    filtered = "http://testserver/outbox/?status=failed&key=order-1"
    response = client.post(
        "/outbox/retry", {"ids": str(failed.pk), "reason": "fixed", "idempotency_key": key}, HTTP_REFERER=filtered
    )
    assert response.status_code == 302 and response["Location"] == filtered
    failed.refresh_from_db()
    assert failed.status == Status.PENDING
    response = client.post(
        f"/outbox/{held.pk}/skip",
        {"reason": "obsolete", "idempotency_key": key + "s"},
        HTTP_REFERER="https://elsewhere.example/outbox/",
    )
    assert response["Location"] == "/outbox/"
    held.refresh_from_db()
    assert held.status == Status.SKIPPED
    assert (
        world.client(world.viewer)
        .post(f"/outbox/{failed.pk}/skip", {"reason": "r", "idempotency_key": "v"})
        .status_code
        == 403
    )


def test_it_lists_the_rows_that_hold_their_key_back(db, world):
    failed, held, pending, done = _seed()
    with transaction.atomic():
        backing_off = publish("kafka://orders", "o-3", "order.created", {"n": 5})
        publish("kafka://orders", "o-3", "order.paid", {"n": 6})  # waits behind it: not blocking
    retry_at = timezone.now() + timezone.timedelta(minutes=2)
    OutboxEvent.objects.filter(pk=backing_off.pk).update(attempts=1, last_error="timed out", next_attempt_at=retry_at)
    client = world.client(world.viewer)

    body = client.get("/api/v1/outbox/events", {"status": "blocked"}).json()
    assert [e["id"] for e in body["events"]] == [backing_off.pk, failed.pk]  # not the rows behind them
    assert body["events"][0]["next_attempt_at"] == retry_at.isoformat()
    only_billing = client.get("/api/v1/outbox/events", {"status": "blocked", "destination": "sqs://billing"})
    assert only_billing.json()["events"] == []
    refused = client.get("/api/v1/outbox/events", {"status": "stuck"})
    assert refused.status_code == 400 and "blocked" in refused.json()["fields"]["status"][0]

    page = client.get("/outbox/", {"status": "blocked"}).content.decode()
    assert '<option value="blocked" selected>' in page
    ids = [int(i) for i in re.findall(r'data-testid="event-row" data-id="(\d+)"', page)]
    assert ids == [backing_off.pk, failed.pk]
    assert 'data-testid="next-attempt"' in page and "timed out" in page
    assert 'href="?status=blocked&amp;destination=kafka%3A//orders" data-testid="blocked-link">2<' in page


def test_it_exports_gauges_and_dashboard_tiles(db, world):
    _seed()
    metrics = world.client(world.viewer).get("/metrics").content.decode()
    assert 'switchyard_outbox_unpublished{destination="kafka://orders"} 2.0' in metrics
    assert 'switchyard_outbox_failed{destination="kafka://orders"} 1.0' in metrics
    assert "switchyard_outbox_oldest_unpublished_age_seconds" in metrics
    html = world.client(world.viewer).get("/").content.decode()
    assert 'data-testid="tile-outbox-backlog"' in html and 'data-testid="tile-outbox-oldest"' in html


def test_it_serves_the_chart_series(db, world):
    _seed()
    series = world.client(world.viewer).get("/api/v1/outbox/series").json()
    assert sum(series["rate_out"]) > 0 and sum(series["rate_in"]) > 0
    assert any(p == 12.0 for p in series["p99_ms"])


def test_it_refuses_a_key_first_used_for_another_action(db, world):
    """Resuming with the key that paused must not answer "done" with the pause's result: the destination would stay
    paused while the client believes it resumed."""
    client = world.client(world.operator)
    body = {"destination": "kafka://orders", "reason": "broker maintenance", "idempotency_key": "same-key"}
    assert _post(client, "/api/v1/outbox/destinations/pause", body).json()["paused"] is True
    assert _post(client, "/api/v1/outbox/destinations/pause", body).json()["paused"] is True  # a true repeat
    resumed = _post(client, "/api/v1/outbox/destinations/resume", body)
    assert resumed.status_code == 409 and "different request" in resumed.json()["error"]
    assert OutboxDestinationState.objects.get(destination="kafka://orders").paused
    page = world.client(world.operator).post("/outbox/destination/resume", body, follow=True)
    assert "different request" in page.content.decode()
    assert OutboxDestinationState.objects.get(destination="kafka://orders").paused
    assert AuditEntry.objects.filter(target_type="outbox_destination").count() == 1
