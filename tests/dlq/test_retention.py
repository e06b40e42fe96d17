"""Retention warnings against the real brokers: a short-retention SQS (moto) queue and Kafka topic, the oldest message
not yet ingested, and the warning on the sources page, the groups page and GET /api/v1/dead-letter-groups."""

import time
import uuid

from console import brokers
from dlq import ingest, retention
from dlq.models import DeadLetterSource


def _shown_everywhere(world, source: DeadLetterSource) -> None:
    client = world.client(world.viewer)
    warnings = client.get("/api/v1/dead-letter-groups").json()["warnings"]
    assert [w["source"] for w in warnings] == [str(source)]
    assert warnings[0]["retention_seconds"] == source.retention_seconds and "lost in about" in warnings[0]["message"]
    for page in ("/dead-letters/groups/", "/dead-letters/sources/"):
        html = client.get(page).content.decode()
        assert 'data-testid="retention-warning"' in html and source.destination in html, page


def test_it_warns_when_an_sqs_dlq_holds_a_message_near_its_retention(world, destinations, settings):
    dlq = destinations("sqs", attributes={"MessageRetentionPeriod": "60"})  # SQS's minimum
    source = DeadLetterSource.objects.create(broker="sqs", destination=dlq, enabled=False)
    settings.DLQ_RETENTION_WARN_PERCENT = 50
    assert retention.check(source) == ""  # empty queue: nothing to lose
    brokers.get("sqs").publish(dlq, b"{}")
    assert retention.check(source) == ""  # seconds old, half of 60 s is far off
    assert source.oldest_pending_at is not None and source.retention_seconds == 60

    settings.DLQ_RETENTION_WARN_PERCENT = 1  # 0.6 s of 60 s
    time.sleep(1.0)
    text = retention.check(source)
    assert "deletes messages after 0:01:00" in text and "Ingest of this source is disabled" in text
    _shown_everywhere(world, source)


def test_it_warns_about_a_kafka_dlq_from_the_oldest_offset_not_yet_ingested(world, destinations, settings):
    topic = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}.DLQ", **{"retention.ms": "60000"})
    adapter = brokers.get("kafka")
    adapter.publish(topic, b"first")
    adapter.publish(topic, b"second")
    source = DeadLetterSource.objects.create(broker="kafka", destination=topic)
    settings.DLQ_RETENTION_WARN_PERCENT = 1
    time.sleep(1.0)
    text = retention.check(source)
    assert source.retention_seconds == 60 and "lost in about" in text
    first = adapter.read(topic, 1)[0]
    assert source.oldest_pending_at == first.timestamp  # offset 0: nothing ingested yet
    _shown_everywhere(world, source)

    while ingest.run_once(source, timeout=5):  # ingest commits the group's offsets past both messages
        pass
    assert retention.check(source) == "" and source.oldest_pending_at is None
    assert world.client(world.viewer).get("/api/v1/dead-letter-groups").json()["warnings"] == []
