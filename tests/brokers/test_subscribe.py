"""subscribe() on SQS, RabbitMQ and NATS: nothing is acknowledged until ack(); what is not acked comes back."""

import json
import time
import uuid

import pytest

from brokers.base import OutgoingMessage

OPTIONS = {"sqs": {"visibility_timeout": 1}, "rabbitmq": {}, "nats": {"ack_wait": 1}}


def _drain(sub, want: int, seconds: float = 15) -> list:
    got, deadline = [], time.monotonic() + seconds
    while len(got) < want and time.monotonic() < deadline:
        got.extend(sub.poll(10, 0.5))
    return got


@pytest.mark.parametrize("broker", ["sqs", "rabbitmq", "nats"])
def test_it_redelivers_what_a_subscriber_did_not_ack(broker, request, new_destination):
    adapter = request.getfixturevalue(f"{broker}_adapter")
    name = new_destination(adapter)
    adapter.publish_batch(
        [OutgoingMessage(name, f"m{i}".encode(), headers={"x-i": str(i), "bin": b"\xff\x00"}) for i in range(4)]
    )
    group = f"g-{uuid.uuid4().hex[:8]}"
    with adapter.subscribe(name, group, **OPTIONS[broker]) as sub:
        first = _drain(sub, 4)
        assert sorted(m.body for m in first) == [b"m0", b"m1", b"m2", b"m3"]
        assert all(m.headers["bin"] == b"\xff\x00" for m in first)
        acked = [m for m in first if m.body in (b"m0", b"m1")]
        sub.ack(acked)
    with adapter.subscribe(name, group, **OPTIONS[broker]) as sub:
        again = _drain(sub, 2)
        assert sorted(m.body for m in again) == [b"m2", b"m3"]
        sub.ack(again)
        assert sub.poll(10, 1.5) == []


def test_it_lists_the_sources_of_an_sqs_dead_letter_queue(sqs_adapter, new_destination):
    dlq = new_destination(sqs_adapter, "-dlq")
    arn = sqs_adapter.queue_attributes(dlq)["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "1"})
    origin = new_destination(sqs_adapter, attributes={"RedrivePolicy": policy})
    assert sqs_adapter.dead_letter_source_queues(dlq) == [origin]
    assert arn in sqs_adapter.queue_attributes(origin)["RedrivePolicy"]
