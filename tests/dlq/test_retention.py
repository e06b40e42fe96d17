"""Retention warnings against the real brokers: a short-retention SQS (moto) queue, Kafka topic, RabbitMQ queue and
NATS stream, the oldest message not yet ingested, and the warning on the sources page, the groups page and
GET /api/v1/dead-letter-groups."""

import json
import time
import uuid

import requests
from pydantic import SecretStr

from console import brokers
from dlq import advisories, ingest, retention
from dlq.models import DeadLetterSource
from tests.dlq.conftest import wait_until


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


def test_it_warns_about_a_rabbitmq_dlq_from_the_x_death_of_its_head(world, destinations, settings):
    adapter = brokers.get("rabbitmq")
    base = f"sy-{uuid.uuid4().hex[:10]}"
    dlx, dlq = f"{base}.dlx", destinations("rabbitmq", f"{base}.dlq", arguments={"x-message-ttl": 60000})
    adapter.bind_queue(dlq, dlx, "dead")
    origin = destinations(
        "rabbitmq", base, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"}
    )
    source = DeadLetterSource.objects.create(broker="rabbitmq", destination=dlq)
    assert retention.check(source) == "" and source.oldest_pending_at is None  # empty queue: nothing to lose
    adapter.publish(origin, b"{}")
    time.sleep(1.1)  # so the x-death time differs from the timestamp property (both whole seconds)
    consumer = adapter.subscribe(origin, "billing")
    consumer.reject(wait_until(lambda: consumer.poll(10, 0.5), 10))  # RabbitMQ dead-letters it, with x-death
    consumer.close()
    wait_until(lambda: adapter.queue_depth(dlq).ready == 1, 10)

    settings.DLQ_RETENTION_WARN_PERCENT = 1  # 0.6 s of 60 s
    time.sleep(1.0)
    text = retention.check(source)
    assert "deletes messages after 0:01:00" in text and "lost in about" in text
    assert source.retention_seconds == 60 and source.oldest_pending_at is not None
    [peeked] = adapter.read(dlq, 10)  # the check's peek gave it back
    assert b"rejected" in peeked.headers["x-death"]
    assert source.oldest_pending_at > peeked.timestamp  # dead-lettered after it was published: x-death's time won
    _shown_everywhere(world, source)

    assert ingest.run_once(source, timeout=5)  # stores and acks the one message
    assert retention.check(source) == "" and source.oldest_pending_at is None
    assert world.client(world.viewer).get("/api/v1/dead-letter-groups").json()["warnings"] == []


def test_it_takes_a_rabbitmq_policy_ttl_below_the_queue_argument_through_the_management_api(db, destinations, settings):
    dlq = destinations("rabbitmq", arguments={"x-message-ttl": 60000})
    # Not the table RabbitMQ writes (a publisher's bytes): ignored for the timestamp property.
    brokers.get("rabbitmq").publish(dlq, b"{}", headers={"x-death": b"[{'time': 'yesterday'}]"})
    management = settings.RABBITMQ_MANAGEMENT_URL or "http://127.0.0.1:15672"
    policy = f"{management}/api/policies/%2F/{dlq}"
    definition = {"pattern": f"^{dlq}$", "definition": {"message-ttl": 30000}, "apply-to": "queues"}
    requests.put(policy, json=definition, auth=("guest", "guest"), timeout=5).raise_for_status()
    spec = settings.BROKERS["rabbitmq"]["default"].model_copy(update={"management_url": SecretStr(management)})
    settings.BROKERS = {**settings.BROKERS, "rabbitmq": {"default": spec}}
    brokers.reset()
    try:
        adapter = brokers.get("rabbitmq")
        wait_until(lambda: adapter.queue_retention(dlq) == 30, 10)  # a policy applies asynchronously
        source = DeadLetterSource.objects.create(broker="rabbitmq", destination=dlq)
        settings.DLQ_RETENTION_WARN_PERCENT = 1
        time.sleep(1.0)
        assert "deletes messages after 0:00:30" in retention.check(source) and source.retention_seconds == 30
        assert source.oldest_pending_at == adapter.read(dlq, 1)[0].timestamp
    finally:
        requests.delete(policy, auth=("guest", "guest"), timeout=5)
        brokers.reset()


def test_it_warns_about_a_nats_dlq_stream_from_the_first_message_not_acked(world, destinations, settings):
    stream = destinations("nats", f"SY{uuid.uuid4().hex[:10]}", max_age=60)
    adapter = brokers.get("nats")
    adapter.publish(stream, b"first")
    adapter.publish(stream, b"second")
    first, second = adapter.read(stream, 2)
    source = DeadLetterSource.objects.create(broker="nats", destination=stream)
    settings.DLQ_RETENTION_WARN_PERCENT = 1
    time.sleep(1.0)
    text = retention.check(source)
    assert source.retention_seconds == 60 and "deletes messages after 0:01:00" in text and "lost in about" in text
    assert source.oldest_pending_at == first.timestamp  # no ingest durable yet: the stream's first message
    _shown_everywhere(world, source)

    assert ingest.run_once(source, max_messages=1, timeout=5)  # acks the first only
    retention.check(source)
    assert source.oldest_pending_at == second.timestamp
    while ingest.run_once(source, timeout=1):
        pass
    assert retention.check(source) == "" and source.oldest_pending_at is None
    assert world.client(world.viewer).get("/api/v1/dead-letter-groups").json()["warnings"] == []


def test_it_warns_about_a_message_a_nats_advisory_names_before_its_stream_drops_it(world, destinations, settings):
    adapter = brokers.get("nats")
    stream = destinations("nats", f"SY{uuid.uuid4().hex[:10]}", max_age=60)
    source = DeadLetterSource.objects.create(broker="nats", destination=f"{advisories.PREFIX}{stream}.>")
    assert ingest.run_once(source, timeout=0.1) is False  # creates the capture stream before any advisory fires
    assert retention.check(source) == "" and source.oldest_pending_at is None
    adapter.publish(stream, json.dumps({"sku": "x"}).encode())
    [stored] = adapter.read(stream, 1)
    worker = adapter.subscribe(stream, "picker", max_deliver=2, ack_wait=1)
    for _ in range(5):  # nak every delivery until the server gives up and sends the advisory
        worker.nack(worker.poll(10, 0.3))
    worker.close()

    settings.DLQ_RETENTION_WARN_PERCENT = 1
    text = wait_until(lambda: retention.check(source), 15)
    # The origin stream's 60 s, not the capture stream's week: the message the advisory names is lost first.
    assert "deletes messages after 0:01:00" in text and source.retention_seconds == 60
    assert source.oldest_pending_at == stored.timestamp

    wait_until(lambda: ingest.run_once(source), 15)
    assert retention.check(source) == "" and source.oldest_pending_at is None
