"""The adapter methods monitoring needs, against real brokers. Kafka methods run on noida and tansu and assert only
what both can do (tansu reports no members and state UNKNOWN; see brokers/kafka.py)."""

import pytest

from brokers.base import BrokerError, OutgoingMessage


def _lagging_group(adapter, new_destination, unique, partitions=2, committed=3, sent=10):
    topic = new_destination(adapter, partitions=partitions)
    # One at a time: tansu miscounts the high watermark after a batched produce (brokers/kafka.py).
    for i in range(sent):
        adapter.publish(topic, b"x", key=f"k{i}")
    ends = adapter.end_offsets([(topic, p) for p in range(partitions)])
    group = unique("grp")
    adapter.commit_offsets(group, {(topic, p): min(committed, ends[(topic, p)]) for p in range(partitions)})
    return topic, group, ends


def test_it_lists_groups_and_their_committed_and_end_offsets(kafka_adapter, new_destination, unique):
    topic, group, ends = _lagging_group(kafka_adapter, new_destination, unique)
    assert group in {g.name for g in kafka_adapter.consumer_groups()}
    offsets = kafka_adapter.group_offsets(group)
    assert {(o.topic, o.partition) for o in offsets} == {(topic, 0), (topic, 1)}
    assert sum(o.end for o in offsets) == 10 == sum(ends.values())
    for o in offsets:
        assert o.committed == min(3, o.end)
        assert o.lag == o.end - o.committed


def test_it_dry_runs_then_applies_an_offset_reset(kafka_adapter, new_destination, unique):
    topic, group, ends = _lagging_group(kafka_adapter, new_destination, unique)
    preview = kafka_adapter.reset_offsets(group, topic, "earliest", dry_run=True)
    assert [(c.partition, c.old, c.new) for c in preview] == [(p, min(3, ends[(topic, p)]), 0) for p in (0, 1)]
    # Nothing moved by the dry run.
    assert [o.committed for o in kafka_adapter.group_offsets(group)] == [min(3, ends[(topic, p)]) for p in (0, 1)]
    kafka_adapter.reset_offsets(group, topic, "latest", dry_run=False)
    assert [o.committed for o in kafka_adapter.group_offsets(group)] == [ends[(topic, 0)], ends[(topic, 1)]]
    kafka_adapter.reset_offsets(group, topic, "offset", value=1, dry_run=False)
    assert [o.committed for o in kafka_adapter.group_offsets(group)] == [min(1, ends[(topic, p)]) for p in (0, 1)]


def test_it_refuses_a_reset_while_the_group_has_members(noida_kafka_adapter, new_destination, unique):
    adapter = noida_kafka_adapter
    topic = new_destination(adapter)
    adapter.publish(topic, b"x")
    group = unique("grp")
    with adapter.subscribe(topic, group) as sub:
        for _ in range(50):
            if sub.poll(10, timeout=0.5):
                break
        with pytest.raises(BrokerError, match="active member"):
            adapter.reset_offsets(group, topic, "earliest", dry_run=True)


def test_it_reports_sqs_depth(sqs_adapter, new_destination):
    queue = new_destination(sqs_adapter)
    sqs_adapter.publish_batch([OutgoingMessage(queue, f"m{i}".encode()) for i in range(7)])
    depth = sqs_adapter.queue_depth(queue)
    assert (depth.ready, depth.in_flight, depth.delayed) == (7, 0, 0)


def test_it_reports_rabbitmq_depth(rabbitmq_adapter, new_destination):
    queue = new_destination(rabbitmq_adapter)
    for i in range(5):
        rabbitmq_adapter.publish(queue, f"m{i}".encode())
    depth = rabbitmq_adapter.queue_depth(queue)
    assert (depth.ready, depth.consumers) == (5, 0)


def test_it_reports_jetstream_consumer_pending(nats_adapter, new_destination):
    stream = new_destination(nats_adapter)
    for i in range(4):
        nats_adapter.publish(stream, f"m{i}".encode())
    with nats_adapter.subscribe(stream, "reader") as sub:
        got = sub.poll(1, timeout=2)
        [c] = nats_adapter.consumer_info(stream)
        assert (c.name, c.pending, c.ack_pending) == ("reader", 3, 1)
        sub.ack(got)
