"""SNS topics as outbox destinations (moto serves SNS beside SQS): `sns://<topic>` and `sns://<connection>/<topic>`
reach every subscriber, raw or enveloped; a FIFO topic takes the message group from the key and the deduplication
id from the event id."""

import json
import uuid

import pytest
from django.db import transaction

from console import brokers
from outbox import publish
from outbox.models import OutboxEvent, split_destination
from tests.outbox.conftest import drain, publish_events


@pytest.fixture
def sns_world():
    """make_topic(fifo=False) -> name; subscribe(topic, raw) -> the subscribed queue's name; all deleted afterwards."""
    adapter = brokers.get("sqs")
    made: list[str] = []

    def make_topic(fifo: bool = False) -> str:
        name = f"sy-sns-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        adapter.ensure_destination(f"sns:{name}")
        made.append(f"sns:{name}")
        return name

    def subscribe(topic: str, raw: bool) -> str:
        queue = f"sy-sub-{uuid.uuid4().hex[:10]}" + (".fifo" if topic.endswith(".fifo") else "")
        adapter.ensure_destination(queue)
        made.append(queue)
        arn = adapter.queue_attributes(queue)["QueueArn"]
        adapter.add_subscription(topic, "sqs", arn, {"RawMessageDelivery": "true" if raw else "false"})
        return queue

    yield adapter, make_topic, subscribe
    for name in made:
        try:
            adapter.delete_destination(name)
        except Exception:
            pass


def receive(adapter, queue: str, expected: int) -> list[dict]:
    """Receive and delete up to `expected` messages with every system and message attribute, as boto3 gives them."""
    url = adapter._queue_url(queue)
    found: list[dict] = []
    for _ in range(10):
        raw = adapter._call(
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        found += raw
        if raw:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(raw)]
            adapter._call("delete_message_batch", QueueUrl=url, Entries=entries)
        if len(found) >= expected and not raw:
            break
    return found


def test_it_maps_sns_uris_to_the_sqs_connection_of_the_account():
    assert split_destination("sns://orders") == ("sqs", "sns:orders")
    assert split_destination("sns://prod-eu/orders.fifo") == ("sqs:prod-eu", "sns:orders.fifo")
    with pytest.raises(ValueError, match="sns://name or sns://connection/name"):
        split_destination("sns://a/b/c")


def test_it_delivers_an_event_to_every_subscriber_of_a_standard_topic(transactional_db, sns_world):
    adapter, make_topic, subscribe = sns_world
    topic = make_topic()
    raw_queue, wrapped_queue = subscribe(topic, raw=True), subscribe(topic, raw=False)
    with transaction.atomic():
        event = publish(f"sns://default/{topic}", "order-7", "order.created", {"total": 10}, correlation_id="req-42")

    relay = drain()
    assert relay.totals.published == 1
    event.refresh_from_db()
    assert event.status == OutboxEvent.Status.PUBLISHED

    [raw] = receive(adapter, raw_queue, 1)
    assert json.loads(raw["Body"])["payload"] == {"total": 10}
    attributes = {k: v.get("StringValue") for k, v in raw["MessageAttributes"].items()}
    assert attributes["x-event-id"] == str(event.event_id)
    assert attributes["x-correlation-id"] == "req-42"
    assert attributes["x-key"] == "order-7"

    [wrapped] = receive(adapter, wrapped_queue, 1)
    envelope = json.loads(wrapped["Body"])
    assert envelope["Type"] == "Notification" and envelope["TopicArn"].endswith(":" + topic)
    assert json.loads(envelope["Message"])["event_id"] == str(event.event_id)
    assert envelope["MessageAttributes"]["x-event-type"] == {"Type": "String", "Value": "order.created"}


def test_it_groups_by_key_and_deduplicates_by_event_id_on_a_fifo_topic(transactional_db, sns_world):
    adapter, make_topic, subscribe = sns_world
    topic = make_topic(fifo=True)
    queue = subscribe(topic, raw=True)
    events = publish_events(f"sns://{topic}", [("order-1", 0), ("order-2", 0), ("order-1", 1)])

    assert drain().totals.published == 3
    received = receive(adapter, queue, 3)
    by_event = {m["MessageAttributes"]["x-event-id"]["StringValue"]: m for m in received}
    assert set(by_event) == {str(e.event_id) for e in events}
    for event in events:
        system = by_event[str(event.event_id)]["Attributes"]
        assert system["MessageGroupId"] == event.key
        assert system["MessageDeduplicationId"] == str(event.event_id)
    group = [m for m in received if m["Attributes"]["MessageGroupId"] == "order-1"]
    order_1 = [json.loads(m["Body"])["payload"]["seq"] for m in group]
    assert order_1 == [0, 1]


def test_it_fails_the_row_with_the_reason_when_the_topic_does_not_exist(transactional_db, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    missing = f"sy-missing-{uuid.uuid4().hex[:8]}"
    [event] = publish_events(f"sns://{missing}", [("k", 0)])
    drain()
    event.refresh_from_db()
    assert event.status == OutboxEvent.Status.FAILED
    assert missing in event.last_error
