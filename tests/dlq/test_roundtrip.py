"""Per broker, against the real service: a consumer fails a message → the DLQ → Switchyard ingests it with origin and
failure facts → replay puts it back on the origin → the healthy consumer processes it once."""

import json
import uuid

import pytest

from brokers.base import OutgoingMessage
from console import brokers
from console.operations import execute
from dlq import discovery, ingest
from dlq.consumer_kit import RetryingConsumer
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
from tests.dlq.conftest import wait_until

OPTIONS = {"kafka": {"session.timeout.ms": 6000}, "sqs": {"visibility_timeout": 5}, "rabbitmq": {}, "nats": {}}


def _setup(broker, destinations, settings) -> tuple[str, str]:
    """(origin, dlq) named the way discovery finds them on this broker."""
    base = f"sy-{uuid.uuid4().hex[:10]}"
    if broker == "kafka":
        return destinations("kafka", base), destinations("kafka", base + ".DLQ")
    if broker == "sqs":
        dlq = destinations("sqs", base + "-dlq")
        arn = brokers.get("sqs").queue_attributes(dlq)["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})
        return destinations("sqs", base, attributes={"RedrivePolicy": policy}), dlq
    if broker == "rabbitmq":
        settings.DLQ_RABBITMQ_QUEUES = [base + "-dlq"]
        return destinations("rabbitmq", base), destinations("rabbitmq", base + "-dlq")
    settings.DLQ_NATS_STREAMS = [base + "-dlq"]
    return destinations("nats", base), destinations("nats", base + "-dlq")


@pytest.mark.parametrize("broker", ["kafka", "sqs", "rabbitmq", "nats"])
def test_it_takes_a_failed_message_through_the_dlq_and_back_once(broker, world, destinations, settings):
    adapter = brokers.get(broker)
    origin, dlq = _setup(broker, destinations, settings)
    event = {"order": 42, "note": "<script>alert(1)</script>"}
    adapter.publish(
        origin, json.dumps(event).encode(), key="k1", headers={"x-event-id": "evt-1", "x-message-type": "OrderPlaced"}
    )

    def broken(message):
        raise ValueError("inventory service said no")

    group = f"g-{uuid.uuid4().hex[:6]}"
    failing = RetryingConsumer(adapter, origin, group, broken, dead_letter_to=dlq, attempts=3, **OPTIONS[broker])
    wait_until(lambda: failing.run_once() and failing.dead_lettered, 30)
    failing.close()
    assert failing.dead_lettered == 1 and failing.handled == 0

    discovery.discover()
    source = DeadLetterSource.objects.get(broker=broker, destination=dlq)
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30)
    assert dl.origin == origin
    assert dl.exception_type == "builtins.ValueError"
    assert dl.exception_message == "inventory service said no"
    assert dl.delivery_count == 3
    assert dl.message_type == "OrderPlaced"
    assert dl.fingerprint == dl.fingerprint_value()
    assert json.loads(dl.body_bytes()) == event and dl.key_bytes() == b"k1"

    client = world.client(world.operator)
    body = {"ids": [dl.pk], "reason": "inventory fixed", "idempotency_key": f"r-{broker}"}
    response = client.post("/api/v1/dead-letters/replay", body, content_type="application/json")
    assert response.status_code == 201, response.content
    op_id = response.json()["operation"]["id"]
    assert execute(op_id) == "succeeded"
    dl.refresh_from_db()
    assert dl.status == "replayed" and dl.replay_count == 1
    assert ReplayRecord.objects.get(dead_letter=dl).destination == origin

    seen = []
    healthy = RetryingConsumer(adapter, origin, group, seen.append, dead_letter_to=dlq, **OPTIONS[broker])
    wait_until(lambda: healthy.run_once() is not None and seen, 30)
    assert seen[0].headers["x-switchyard-replay-of"] == str(dl.pk).encode()
    assert seen[0].headers["x-switchyard-operation"] == op_id.encode()
    assert "x-exception-type" not in seen[0].headers  # the failure facts stay in Switchyard
    # The broker delivers the same event again: the idempotent helper drops it.
    again = {"x-event-id": "evt-1", "Nats-Msg-Id": "redelivery"}  # NATS itself would drop a same-id publish
    adapter.publish_batch([OutgoingMessage(origin, seen[0].body, "k1", again)])
    wait_until(lambda: healthy.run_once() is not None and healthy.duplicates, 30)
    healthy.close()
    assert healthy.handled == 1 and healthy.duplicates == 1 and len(seen) == 1


def test_it_keeps_what_links_an_sqs_dead_letter_to_its_saga_and_event(world, destinations, settings):
    # SQS carries at most 10 message attributes: an outbox event's own headers plus the six failure facts do not all
    # fit. The ones that link the dead letter (event id, type for its group, correlation id for its saga) must.
    adapter = brokers.get("sqs")
    origin, dlq = _setup("sqs", destinations, settings)
    envelope = {
        "x-event-id": "evt-7",
        "x-event-type": "OrderPlaced",
        "x-schema-version": "1",
        "x-correlation-id": "saga-7",
        "traceparent": "00-abc-def-01",
    }
    adapter.publish(origin, b'{"order": 7}', key="k7", headers=envelope)

    def broken(message):
        raise ValueError("no stock")

    failing = RetryingConsumer(adapter, origin, "g-sqs", broken, dead_letter_to=dlq, attempts=1, **OPTIONS["sqs"])
    wait_until(lambda: failing.run_once() is not None and failing.dead_lettered, 30)
    failing.close()
    discovery.discover()
    source = DeadLetterSource.objects.get(broker="sqs", destination=dlq)
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 30)

    assert dl.correlation_id == "saga-7" and dl.message_type == "OrderPlaced"
    assert dl.headers["x-event-id"] == "evt-7" and dl.exception_type == "builtins.ValueError"
    assert "no stock" in dl.stacktrace and dl.origin == origin
