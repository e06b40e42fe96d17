"""The dashboard over time: dead letters per connection, saga and compensation failures, outbox backlog and latency,
consumers not OK, per bucket over an hour / day / week, each chart and line linked to its filtered list, and what
changed in the last hour. Read-only: the same JSON for the page and GET /api/v1/dashboard/timeline."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from console.dashboard import Window
from dlq.models import DeadLetter, DeadLetterSource
from monitoring.models import ConsumerTarget, Sample, StatusTally
from outbox import publish
from outbox.models import OutboxEvent
from sagas.models import SagaInstance
from sagas.recording import record_events, validate_event
from tests.sagas.helpers import ev


def _dead_letters(source, n, minutes_ago, fingerprint):
    now = timezone.now()
    rows = DeadLetter.objects.bulk_create(
        DeadLetter(source=source, origin="orders", message_id=f"{fingerprint}:{minutes_ago}:{i}", body=b"{}",
                   first_failure_at=now, last_failure_at=now, fingerprint=fingerprint, exception_type="KeyError")
        for i in range(n)
    )  # fmt: skip
    DeadLetter.objects.filter(pk__in=[r.pk for r in rows]).update(ingested_at=now - timedelta(minutes=minutes_ago))


def _seed():
    now = timezone.now()
    kafka = DeadLetterSource.objects.create(broker="kafka", destination="orders.DLQ")
    sqs = DeadLetterSource.objects.create(broker="sqs", connection="billing", destination="bills-dlq")
    _dead_letters(kafka, 3, 10, "old-group")
    _dead_letters(kafka, 2, 90, "old-group")  # older than the hour: old-group is not new
    _dead_letters(sqs, 4, 5, "fresh-group")
    record_events(
        [
            validate_event(e)[0]
            for e in (
                ev("s-failed", "charge", status="failed", seq=1, occurred_at=now.isoformat()),
                ev("s-comp", "charge", status="failed", seq=1, occurred_at=now.isoformat()),
                ev("s-comp", "reserve", direction="compensate", status="failed", seq=2, occurred_at=now.isoformat(),
                   saga_status="compensation_failed"),
            )
        ]
    )  # fmt: skip
    SagaInstance.objects.filter(pk__in=["s-failed", "s-comp"]).update(state_since=now - timedelta(minutes=3))
    target = ConsumerTarget.objects.create(broker="kafka", connection="default", kind="group", name="billing")
    ConsumerTarget.objects.filter(pk=target.pk).update(status="WARN", status_since=now - timedelta(minutes=7))
    StatusTally.objects.create(time=now - timedelta(minutes=20), counts={"OK": 3}, not_ok=0)
    StatusTally.objects.create(time=now - timedelta(minutes=7), counts={"OK": 2, "WARN": 1}, not_ok=1)
    outbox_target = ConsumerTarget.objects.create(broker="outbox", kind="backlog", name="outbox")
    Sample.objects.create(target=outbox_target, time=now - timedelta(minutes=4), depth=42)
    with transaction.atomic():
        event = publish("kafka://orders", "k1", "OrderPlaced", {"n": 1})
    OutboxEvent.objects.filter(pk=event.pk).update(
        status="published", published_at=now - timedelta(minutes=2), latency_ms=12.5
    )


def _chart(body, name):
    return next(c for c in body["charts"] if c["name"] == name)


def _series(chart, label):
    return next(s for s in chart["series"] if s["label"] == label)


def test_it_charts_each_signal_per_bucket_with_links_to_the_lists(world):
    _seed()
    body = world.client(world.viewer).get("/api/v1/dashboard/timeline").json()
    assert body["range"] == "hour" and body["bucket_seconds"] == 60
    assert 60 <= len(body["t"]) <= 61 and body["t"] == sorted(body["t"])

    dead = _chart(body, "dead-letters")
    assert dead["href"] == "/dead-letters/"
    assert {s["label"] for s in dead["series"]} == {"kafka:default", "sqs:billing"}
    assert sum(_series(dead, "kafka:default")["values"]) == 3  # the 90-minute-old ones are outside the hour
    assert sum(_series(dead, "sqs:billing")["values"]) == 4
    assert _series(dead, "sqs:billing")["href"] == "/dead-letters/?connection=sqs:billing"
    assert all(len(s["values"]) == len(body["t"]) for c in body["charts"] for s in c["series"])

    sagas = _chart(body, "saga-failures")
    assert sum(_series(sagas, "step failures")["values"]) == 2
    assert sum(_series(sagas, "compensation failures")["values"]) == 1
    assert _series(sagas, "compensation failures")["href"] == "/sagas/?status=compensation_failed"

    outbox = _chart(body, "outbox")
    assert max(v for v in _series(outbox, "backlog")["values"] if v is not None) == 42
    assert [v for v in _series(outbox, "p95 latency ms")["values"] if v is not None] == [12.5]
    assert outbox["href"] == "/outbox/?status=pending"

    consumers = _chart(body, "consumers")
    values = _series(consumers, "not OK")["values"]
    assert [v for v in values if v is not None] == [0, 1] and values[0] is None  # no pass: a gap, not "0"
    assert consumers["href"] == "/consumers/?status=bad"


def test_it_lists_what_changed_in_the_last_hour(world):
    _seed()
    changes = world.client(world.viewer).get("/api/v1/dashboard/timeline").json()["changes"]
    kinds = [(c["kind"], c["href"]) for c in changes]
    assert ("dead-letter group", "/dead-letters/?group=fresh-group") in kinds
    assert not any("old-group" in c["href"] for c in changes)  # it failed before the hour too
    assert ("consumer", "/consumers/kafka:default/billing/") in kinds
    assert ("saga", "/sagas/s-comp/") in kinds and ("saga", "/sagas/s-failed/") in kinds
    assert [c["when"] for c in changes] == sorted((c["when"] for c in changes), reverse=True)


def test_it_buckets_a_day_and_a_week_and_refuses_other_ranges(world):
    client = world.client(world.viewer)
    day = client.get("/api/v1/dashboard/timeline", {"range": "day"}).json()
    week = client.get("/api/v1/dashboard/timeline", {"range": "week"}).json()
    assert day["bucket_seconds"] == 900 and 96 <= len(day["t"]) <= 97
    assert week["bucket_seconds"] == 7200 and 84 <= len(week["t"]) <= 85
    assert client.get("/api/v1/dashboard/timeline", {"range": "year"}).status_code == 400
    assert world.client(None).get("/api/v1/dashboard/timeline").status_code in (302, 401)


def test_it_renders_the_charts_links_and_changes_in_the_page_without_inline_script(world):
    _seed()
    response = world.client(world.viewer).get("/?range=day")
    page = response.content.decode()
    for name in ("dead-letters", "saga-failures", "outbox", "consumers"):
        assert f'data-testid="chart-{name}"' in page
    assert 'href="/dead-letters/?connection=sqs:billing"' in page
    assert 'href="/sagas/?status=compensation_failed"' in page
    assert 'data-timeline-url="/api/v1/dashboard/timeline?range=day"' in page
    assert "/dead-letters/?group=fresh-group" in page
    assert "<script>" not in page and "<script " not in page.replace('<script src="', "")


def test_it_reads_the_timeline_in_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    _seed()
    client = world.client(world.viewer)
    with django_assert_max_num_queries(25):
        assert client.get("/api/v1/dashboard/timeline", {"range": "week"}).status_code == 200


def test_it_aligns_buckets_to_the_window():
    window = Window.of("hour")
    times = window.times()
    assert all(t % 60 == 0 for t in times) and times[-1] <= window.until.timestamp()
