"""Relay heartbeats: the backlog page, the API, /metrics and the dashboard tell "no relay runs" apart from "relaying
slowly", and a killed relay (no goodbye) goes stale instead of looking alive."""

import threading
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from outbox import publish
from outbox.models import OutboxEvent, OutboxRelay
from outbox.relay import Heartbeat, Relay, serve
from outbox.tasks import watch_relays


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_it_reports_a_running_relay_and_forgets_it_on_a_graceful_stop(transactional_db, world, targets):
    target = targets("kafka")
    with transaction.atomic():
        publish(target.uri, "k", "order.created", {"n": 1})
    stop = threading.Event()
    beat = Heartbeat(name="relay-host:4242")

    def run():
        try:
            serve(stop, Relay(batch_size=50), heartbeat=beat)
        finally:
            connection.close()  # this thread's own connection

    loop = threading.Thread(target=run)
    loop.start()
    try:
        _wait_for(lambda: OutboxRelay.objects.filter(name="relay-host:4242").exists())
        _wait_for(lambda: not OutboxEvent.objects.exclude(status="published").exists())
        body = world.client(world.viewer).get("/api/v1/outbox/stats").json()
        assert body["relays_running"] == 1
        (relay,) = body["relays"]
        assert relay["name"] == "relay-host:4242" and relay["running"] and relay["seen_age_seconds"] < 10
        page = world.client(world.viewer).get("/outbox/").content.decode()
        assert 'data-testid="relay-running">relay-host:4242<' in page and 'data-testid="no-relay"' not in page
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    assert not OutboxRelay.objects.exists()
    assert world.client(world.viewer).get("/api/v1/outbox/stats").json()["relays_running"] == 0


def test_it_reports_what_the_relay_published_at_the_next_beat(transactional_db, targets, monkeypatch):
    monkeypatch.setattr(OutboxRelay, "HEARTBEAT_SECONDS", 0)
    target = targets("kafka")
    beat = Heartbeat(name="counting")
    relay = Relay(batch_size=50)
    with transaction.atomic():
        for n in range(3):
            publish(target.uri, f"k{n}", "order.created", {"n": n})
    beat(relay.totals, relay.run_once())
    row = OutboxRelay.objects.get(name="counting")
    assert row.published == 3 and row.last_batch_at is not None and row.started_at <= row.seen_at
    relay.close()


def test_it_warns_that_nothing_publishes_while_events_wait_and_no_relay_runs(db, world):
    with transaction.atomic():
        publish("kafka://orders", "o-1", "order.created", {"n": 1})
        publish("kafka://orders", "o-2", "order.created", {"n": 2})
    page = world.client(world.viewer).get("/outbox/").content.decode()
    assert 'class="flash flash-error" data-testid="no-relay"' in page
    assert "2 events wait and nothing will publish them" in page
    dashboard = world.client(world.viewer).get("/").content.decode()
    tile = dashboard.split('data-testid="tile-outbox-backlog"', 1)[1].split("</a>", 1)[0]
    assert "no relay running" in tile
    assert 'class="tile bad" id="tile-outbox-backlog"' in dashboard

    now = timezone.now()
    OutboxRelay.objects.create(name="alive:1", started_at=now, seen_at=now)
    page = world.client(world.viewer).get("/outbox/").content.decode()
    assert 'data-testid="no-relay"' not in page and "alive:1" in page
    assert "no relay running" not in world.client(world.viewer).get("/").content.decode()


def test_it_counts_a_silent_relay_as_stale_not_running(db, world):
    long_ago = timezone.now() - timedelta(minutes=3)
    OutboxRelay.objects.create(name="killed:7", started_at=long_ago, seen_at=long_ago)
    with transaction.atomic():
        publish("kafka://orders", "o-1", "order.created", {"n": 1})
    body = world.client(world.viewer).get("/api/v1/outbox/stats").json()
    assert body["relays_running"] == 0
    assert body["relays"][0]["name"] == "killed:7" and not body["relays"][0]["running"]
    assert body["relays"][0]["seen_age_seconds"] >= 180
    page = world.client(world.viewer).get("/outbox/").content.decode()
    assert 'data-testid="no-relay"' in page and 'data-testid="relays-stale"' in page
    assert "killed:7</span>, last seen 3 min ago" in page
    metrics = world.client(world.viewer).get("/metrics").content.decode()
    assert "switchyard_outbox_relays_running 0.0" in metrics


def test_it_forgets_relays_silent_for_a_day_and_says_when_events_are_stalled(db):
    now = timezone.now()
    OutboxRelay.objects.create(name="gone:1", started_at=now - timedelta(days=3), seen_at=now - timedelta(days=2))
    OutboxRelay.objects.create(name="quiet:2", started_at=now, seen_at=now - timedelta(minutes=5))
    with transaction.atomic():
        publish("kafka://orders", "o-1", "order.created", {"n": 1})
    assert watch_relays() == {"running": 0, "stale": 1, "stalled": True}
    assert list(OutboxRelay.objects.values_list("name", flat=True)) == ["quiet:2"]
