"""What each broker does beyond the shared contract: its own naming, keys and refusals."""

import time

import pytest

from brokers.base import OutgoingMessage, PublishError
from brokers.kafka import KafkaAdapter
from brokers.registry import build_adapters
from brokers.sqs import SqsAdapter


def test_it_reads_every_partition_without_consuming(kafka_adapter, new_destination):
    topic = new_destination(kafka_adapter, partitions=3)
    kafka_adapter.publish_batch([OutgoingMessage(topic, b"m%d" % i, key=f"k{i}") for i in range(12)])

    first = kafka_adapter.read(topic, max_messages=12, timeout=10)
    again = kafka_adapter.read(topic, max_messages=12, timeout=10)

    assert len(first) == 12
    assert {m.partition for m in first} == {0, 1, 2}
    assert [(m.partition, m.offset, m.body) for m in again] == [(m.partition, m.offset, m.body) for m in first]


def test_it_confirms_a_batch_without_waiting_out_linger_ms(noida_bootstrap, new_destination):
    """A batch is complete when publish_batch() has it: waiting for its confirmation sends it at once. Waiting by
    poll() alone left each batch queued for linger.ms (5 ms by default) first, on every relay and replay round trip;
    with linger.ms at 4 s the difference is plain."""
    with KafkaAdapter(noida_bootstrap, {"linger.ms": 4000}) as adapter:
        topic = new_destination(adapter)
        adapter.publish_batch([OutgoingMessage(topic, b"warm-up")])  # metadata, connections, producer id
        started = time.monotonic()
        results = adapter.publish_batch([OutgoingMessage(topic, b"m%d" % i, key="k") for i in range(3)])
        waited = time.monotonic() - started
    assert len({(r.partition, r.offset) for r in results}) == 3
    assert waited < 2.0, f"the batch waited {waited:.1f} s, as if for linger.ms"


def test_it_uses_the_key_as_message_group_and_the_event_id_for_deduplication(sqs_adapter, new_destination):
    queue = new_destination(sqs_adapter, suffix=".fifo")

    sqs_adapter.publish(queue, b"first", key="order-7", headers={"x-event-id": "evt-7"})
    sqs_adapter.publish(queue, b"retry of the same event", key="order-7", headers={"x-event-id": "evt-7"})
    [message] = sqs_adapter.read(queue, timeout=3)

    assert (message.body, message.key, message.headers) == (b"first", b"order-7", {"x-event-id": b"evt-7"})


def test_it_refuses_more_message_attributes_than_sqs_allows(sqs_adapter, new_destination):
    queue = new_destination(sqs_adapter)
    headers = {f"h{i}": "v" for i in range(10)}  # ten headers plus x-key make eleven attributes

    with pytest.raises(PublishError, match="at most 10 message attributes") as raised:
        sqs_adapter.publish_batch([OutgoingMessage(queue, b"ok"), OutgoingMessage(queue, b"too many", b"k", headers)])

    assert [m.body for m, _ in raised.value.failures] == [b"too many"]
    assert len(raised.value.results) == 1
    assert [m.body for m in sqs_adapter.read(queue, timeout=2)] == [b"ok"]


def test_it_leaves_sqs_messages_visible_after_a_large_read(sqs_adapter, new_destination):
    queue = new_destination(sqs_adapter)
    sqs_adapter.publish_batch([OutgoingMessage(queue, b"m%d" % i) for i in range(15)])

    assert len(sqs_adapter.read(queue, max_messages=15, timeout=5)) == 15
    assert len(sqs_adapter.read(queue, max_messages=5, timeout=5)) == 5  # visible again straight away


def test_it_reports_a_message_no_queue_would_take(rabbitmq_adapter):
    with pytest.raises(PublishError, match="unroutable"):
        rabbitmq_adapter.publish("sy-no-such-queue", b"lost?")


def test_it_publishes_through_an_exchange_and_leaves_the_queue_as_it_was(rabbitmq_adapter, new_destination):
    queue = new_destination(rabbitmq_adapter)

    rabbitmq_adapter.publish(f"/{queue}", b"one")  # the default exchange, spelled out
    rabbitmq_adapter.publish(queue, b"two")
    first = rabbitmq_adapter.read(queue, timeout=2)
    again = rabbitmq_adapter.read(queue, timeout=2)

    assert [m.body for m in first] == [m.body for m in again] == [b"one", b"two"]


def test_it_reports_a_subject_no_stream_captures(nats_adapter):
    with pytest.raises(PublishError, match="no stream"):
        nats_adapter.publish("sy.no.stream.here", b"lost?")


def test_it_reads_a_stream_with_each_message_on_its_subject(nats_adapter, new_destination):
    stream = new_destination(nats_adapter)

    nats_adapter.publish(f"{stream}.orders.created", b"a")
    nats_adapter.publish(stream, b"b")
    messages = nats_adapter.read(stream, timeout=2)

    assert [(m.destination, m.body, m.offset) for m in messages] == [
        (f"{stream}.orders.created", b"a", 1),
        (stream, b"b", 2),
    ]


def test_it_builds_only_the_configured_adapters(noida_bootstrap):
    adapters = build_adapters({"kafka": {"bootstrap_servers": noida_bootstrap}, "nats": {}})

    assert list(adapters) == ["kafka"] and isinstance(adapters["kafka"], KafkaAdapter)
    with pytest.raises(ValueError, match="unknown broker"):
        build_adapters({"kinesis": {"stream": "x"}})
    sqs = build_adapters(
        {"sqs": {"endpoint_url": None, "region": "us-east-1", "access_key_id": None, "secret_access_key": None}}
    )
    assert isinstance(sqs["sqs"], SqsAdapter)


def test_it_reads_a_nats_message_whose_encoded_headers_are_mangled(nats_adapter, new_destination):
    # Headers are hostile: a "~b64" header that is not base64, and an event id whose bytes are not UTF-8, come from
    # some other publisher. Reading must not fail; the mangled header is kept as it came.
    import asyncio
    import base64

    import nats

    stream = new_destination(nats_adapter)

    async def publish_raw():
        client = await nats.connect(nats_adapter.url)
        try:
            headers = {"x-sig~b64": "%%% not base64 %%%", "x-event-id~b64": base64.b64encode(b"\xff\xfe").decode()}
            await client.jetstream().publish(stream, b"body", headers=headers)
        finally:
            await client.close()

    asyncio.run(publish_raw())
    [message] = nats_adapter.read(stream, timeout=2)

    assert message.body == b"body"
    assert message.headers["x-sig~b64"] == b"%%% not base64 %%%"
    assert message.headers["x-event-id"] == b"\xff\xfe" and message.message_id == "\ufffd\ufffd"
