"""The same checks against every adapter, each on a real broker (Kafka on both noida-db and tansu)."""

import socket
import time
import uuid

import pytest

from brokers.base import DestinationNotFound, OutgoingMessage, PublishError
from brokers.kafka import KafkaAdapter
from brokers.nats import NatsAdapter
from brokers.rabbitmq import RabbitMQAdapter
from brokers.sqs import SqsAdapter
from tools.services import free_port

KINDS = {"kafka": "topic", "sqs": "queue", "rabbitmq": "queue", "nats": "stream"}
BODY = b"\x00\xff\xfe not UTF-8: \xc3\x28 end"
HEADERS = {"x-event-id": "evt-0001", "x-trace": "trace-abc", "x-signature": b"\xff\x00\xfe\x80"}


def test_it_reports_health_with_latency(any_adapter):
    health = any_adapter.health()

    assert health.reachable, health.error
    assert health.broker == any_adapter.name
    assert health.error is None
    assert 0 < health.latency_ms < 3000
    if any_adapter.name != "sqs":
        assert health.version
    if any_adapter.name != "rabbitmq":  # RabbitMQ counts queues only through the management API
        assert isinstance(health.destinations, int)


def test_it_lists_an_ensured_destination(any_adapter, new_destination):
    name = new_destination(any_adapter)
    any_adapter.ensure_destination(name)  # a second time is harmless

    listed = {d.name: d.kind for d in any_adapter.list_destinations()}

    assert listed[name] == KINDS[any_adapter.name]


def test_it_reads_back_body_key_and_headers(any_adapter, new_destination):
    name = new_destination(any_adapter)

    result = any_adapter.publish(name, BODY, key=b"order-42", headers=HEADERS)
    [message] = any_adapter.read(name, max_messages=10, timeout=10)

    assert result.destination == name
    assert message.body == BODY
    assert message.key == b"order-42"
    assert message.headers == {k: v.encode() if isinstance(v, str) else v for k, v in HEADERS.items()}
    assert message.destination == name
    assert message.timestamp is not None and message.timestamp.utcoffset().total_seconds() == 0


def test_it_confirms_a_batch_and_reads_all_of_it_back(any_adapter, new_destination):
    name = new_destination(any_adapter)
    sent = [OutgoingMessage(name, f"message {i}".encode(), key=f"key-{i % 5}") for i in range(50)]

    results = any_adapter.publish_batch(sent)
    # Until the count or the timeout: tansu's high watermark (and so end-of-partition) is not to be trusted.
    read = any_adapter.read(name, max_messages=50, timeout=15)

    assert len(results) == 50 and all(r.destination == name for r in results)
    assert sorted(m.body for m in read) == sorted(m.body for m in sent)
    assert {m.body: m.key for m in read} == {m.body: m.key.encode() for m in sent}


def test_it_confirms_batches_started_before_the_previous_one_is_confirmed(any_adapter, new_destination):
    # The replay's pipeline: batch 2 is handed to the client before batch 1's confirmations are collected. Each
    # batch's results stay its own, in its own order, whichever thread served the delivery reports.
    name = new_destination(any_adapter)
    first = [OutgoingMessage(name, f"first {i}".encode(), key=b"k") for i in range(30)]
    second = [OutgoingMessage(name, f"second {i}".encode(), key=b"k", headers={"n": str(i)}) for i in range(30)]

    pending = [any_adapter.start_batch(first), any_adapter.start_batch(second)]
    results = [p.result() for p in pending]
    read = any_adapter.read(name, max_messages=60, timeout=15)

    assert [len(r) for r in results] == [30, 30] and all(r.destination == name for r in results[0] + results[1])
    if any_adapter.name == "kafka":  # one key, one partition: offsets follow the order the batches were started in
        offsets = [r.offset for r in results[0] + results[1]]
        assert offsets == sorted(offsets) and len(set(offsets)) == 60
    assert sorted(m.body for m in read) == sorted(m.body for m in first + second)
    assert {m.body: m.headers.get("n") for m in read if m.body.startswith(b"second")} == {
        f"second {i}".encode(): str(i).encode() for i in range(30)
    }


def test_it_reports_a_failed_message_of_a_started_batch_with_the_confirmed_ones(kafka_adapter, new_destination):
    name = new_destination(kafka_adapter)
    batch = [
        OutgoingMessage(name, b"fits"),
        OutgoingMessage(name, b"x" * 2_000_000),  # over message.max.bytes: librdkafka refuses it at produce time
        OutgoingMessage(name, b"fits too"),
    ]

    with pytest.raises(PublishError) as failed:
        kafka_adapter.start_batch(batch).result()

    assert [m for m, _ in failed.value.failures] == [batch[1]]
    assert "too large" in failed.value.failures[0][1].lower()
    assert len(failed.value.results) == 2


def test_it_refuses_to_read_a_missing_destination_without_creating_it(any_adapter):
    name = f"sy-missing-{uuid.uuid4().hex[:8]}"

    with pytest.raises(DestinationNotFound):
        any_adapter.read(name, timeout=2)

    assert name not in {d.name for d in any_adapter.list_destinations()}


@pytest.mark.parametrize("broker", ["kafka", "sqs", "rabbitmq", "nats"])
def test_it_reports_an_unreachable_broker_without_raising(broker):
    port = free_port()
    adapter = {
        "kafka": lambda: KafkaAdapter(f"127.0.0.1:{port}"),
        "sqs": lambda: SqsAdapter(f"http://127.0.0.1:{port}", "us-east-1", "test", "test"),
        "rabbitmq": lambda: RabbitMQAdapter(f"amqp://guest:guest@127.0.0.1:{port}//"),
        "nats": lambda: NatsAdapter(f"nats://127.0.0.1:{port}"),
    }[broker]()
    started = time.monotonic()

    health = adapter.health()

    assert time.monotonic() - started <= 5
    assert not health.reachable
    assert health.error
    assert health.latency_ms is None
    adapter.close()


@pytest.mark.parametrize("broker", ["kafka", "sqs", "rabbitmq", "nats"])
def test_it_gives_up_on_a_broker_that_accepts_but_never_answers(broker):
    with socket.socket() as silent:  # the kernel completes the TCP handshake; nothing ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        adapter = {
            "kafka": lambda: KafkaAdapter(f"127.0.0.1:{port}"),
            "sqs": lambda: SqsAdapter(f"http://127.0.0.1:{port}", "us-east-1", "test", "test"),
            "rabbitmq": lambda: RabbitMQAdapter(f"amqp://guest:guest@127.0.0.1:{port}//"),
            "nats": lambda: NatsAdapter(f"nats://127.0.0.1:{port}"),
        }[broker]()
        started = time.monotonic()

        health = adapter.health()

        assert time.monotonic() - started <= 5
        assert not health.reachable
        assert health.error
        adapter.close()


def test_it_redelivers_what_a_kafka_subscriber_did_not_ack(kafka_adapter):
    """At-least-once: offsets move only in ack(); a new member of the group gets the unacked messages again."""
    topic = f"sub-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    kafka_adapter.ensure_destination(topic)
    kafka_adapter.publish_batch([OutgoingMessage(topic, f"m{i}".encode()) for i in range(4)])
    options = {"session.timeout.ms": 6000}

    def drain(sub, want):
        got, deadline = [], time.monotonic() + 30
        while len(got) < want and time.monotonic() < deadline:
            got.extend(sub.poll(10, 1.0))
        return got

    with kafka_adapter.subscribe(topic, group, **options) as sub:
        first = drain(sub, 4)
        assert [m.body for m in first] == [b"m0", b"m1", b"m2", b"m3"]
        sub.ack(first[:2])
    with kafka_adapter.subscribe(topic, group, **options) as sub:
        again = drain(sub, 2)
        assert [m.body for m in again] == [b"m2", b"m3"]
        sub.ack(again)
    kafka_adapter.delete_destination(topic)
