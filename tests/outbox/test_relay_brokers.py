"""The relay against every broker (real services): rollback, exactly one send with headers and key, per-key order
under two concurrent relays, a poison row holding back only its key, and failed rows retried."""

import json
import threading

import pytest
from django.db import connection, transaction

from outbox import publish
from outbox.actions import do_retry_events, do_skip_event
from outbox.models import OutboxEvent
from outbox.relay import Relay
from tests.outbox.conftest import BROKERS, drain, publish_events, seq_of

Status = OutboxEvent.Status


class Rollback(Exception):
    pass


@pytest.mark.parametrize("broker", BROKERS)
def test_it_sends_nothing_for_a_rolled_back_transaction(transactional_db, targets, broker):
    target = targets(broker)
    with pytest.raises(Rollback), transaction.atomic():
        publish(target.uri, "order-1", "order.created", {"key": "order-1", "seq": 0})
        raise Rollback
    assert OutboxEvent.objects.count() == 0
    # A later committed event goes out alone: the relay runs, and the rolled-back one never existed for it.
    publish_events(target.uri, [("order-2", 0)])
    relay = drain()
    assert relay.totals.published == 1
    assert [seq_of(m) for m in target.read(1)] == [("order-2", 0)]


@pytest.mark.parametrize("broker", BROKERS)
def test_it_sends_a_committed_event_once_with_headers_and_key(transactional_db, targets, broker):
    target = targets(broker)
    with transaction.atomic():
        event = publish(
            target.uri,
            "order-7",
            "order.created",
            {"total": 10},
            headers={"traceparent": "00-abc-01"},
            correlation_id="req-42",
        )
    drain()
    drain()  # a second relay pass finds nothing more to send
    messages = target.read(1)
    assert len(messages) == 1
    message = messages[0]
    assert message.key == b"order-7"
    assert message.headers["x-event-id"] == str(event.event_id).encode()
    assert message.headers["x-event-type"] == b"order.created"
    assert message.headers["x-schema-version"] == b"1"
    assert message.headers["x-correlation-id"] == b"req-42"
    assert message.headers["traceparent"] == b"00-abc-01"
    envelope = json.loads(message.body)
    assert envelope["event_id"] == str(event.event_id)
    assert envelope["payload"] == {"total": 10}
    assert envelope["occurred_at"]
    event.refresh_from_db()
    assert event.status == Status.PUBLISHED and event.attempts == 1
    assert event.latency_ms is not None and event.latency_ms >= 0


@pytest.mark.parametrize("broker", BROKERS)
def test_it_keeps_per_key_order_under_two_concurrent_relays(transactional_db, targets, broker):
    target = targets(broker)
    keys = [f"agg-{i}" for i in range(12)]
    per_key = 10
    # Interleaved, in several transactions, so both relays find work in every key.
    for seq in range(per_key):
        publish_events(target.uri, [(key, seq) for key in keys])
    relays = [Relay(batch_size=5), Relay(batch_size=5)]
    errors = []

    def run(relay):
        try:
            drain(relay)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(relay,)) for relay in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert all(r.totals.published > 0 for r in relays), "both relays should have published something"
    assert OutboxEvent.objects.filter(status=Status.PUBLISHED).count() == len(keys) * per_key
    messages = target.read(len(keys) * per_key, timeout=15)
    assert len(messages) == len(keys) * per_key
    seen: dict[str, list[int]] = {}
    for message in messages:
        key, seq = seq_of(message)
        seen.setdefault(key, []).append(seq)
    assert seen == {key: list(range(per_key)) for key in keys}


@pytest.mark.parametrize("broker", BROKERS)
def test_it_holds_back_only_the_key_of_a_poison_row_and_retries_it(
    transactional_db, world, targets, fast_retries, broker
):
    good = targets(broker)
    poison_target = targets(broker, exists=False)
    if broker == "kafka":
        # noida creates missing topics on first use, so Kafka's poison is a topic whose brokers reject the message
        # (max.message.bytes below its size; the delivery report fails); the operator raises the limit and retries.
        poison_target.adapter.ensure_destination(poison_target.name, partitions=1, **{"max.message.bytes": 2000})
        poison_payload = {"key": "bad", "seq": 0, "pad": "x" * 5000}
    else:
        # A destination that does not exist yet; an operator creates it and retries.
        poison_payload = {"key": "bad", "seq": 0}
    with transaction.atomic():
        poison = publish(poison_target.uri, "bad", "order.created", poison_payload)
        held = publish(good.uri, "bad", "order.created", {"key": "bad", "seq": 1})
        others = [publish(good.uri, f"ok-{i}", "order.created", {"key": f"ok-{i}", "seq": 0}) for i in range(3)]
    drain()
    poison.refresh_from_db()
    held.refresh_from_db()
    assert poison.status == Status.FAILED and poison.attempts == 3 and poison.last_error
    assert held.status == Status.PENDING and held.attempts == 0  # later row of the same key: held back, never sent
    assert set(OutboxEvent.objects.filter(pk__in=[o.pk for o in others]).values_list("status", flat=True)) == {
        Status.PUBLISHED
    }
    assert sorted(seq_of(m)[0] for m in good.read(3)) == ["ok-0", "ok-1", "ok-2"]

    # The failed row is listed, and an operator retries it.
    client = world.client(world.viewer)
    listed = client.get("/api/v1/outbox/events", {"status": "failed"}).json()["events"]
    assert [e["id"] for e in listed] == [poison.pk]
    if broker == "kafka":
        assert "too large" in poison.last_error
        poison_target.adapter.set_topic_config(poison_target.name, **{"max.message.bytes": 1_000_000})
    else:
        poison_target.adapter.ensure_destination(poison_target.name)
    do_retry_events(world.operator, [poison.pk], "destination fixed", "retry-1")
    drain()
    poison.refresh_from_db()
    held.refresh_from_db()
    assert poison.status == Status.PUBLISHED and held.status == Status.PUBLISHED
    assert [seq_of(m) for m in poison_target.read(1)] == [("bad", 0)]
    remaining = [seq_of(m) for m in good.read(4)]  # SQS reads consumed the first three; the others only browse
    assert ("bad", 1) in remaining and len(remaining) == (1 if broker == "sqs" else 4)


def test_it_unblocks_a_key_when_its_poison_row_is_skipped(transactional_db, world, targets, fast_retries):
    good = targets("sqs")
    missing = targets("sqs", exists=False)
    with transaction.atomic():
        poison = publish(missing.uri, "k", "t", {"key": "k", "seq": 0})
        later = publish(good.uri, "k", "t", {"key": "k", "seq": 1})
    drain()
    do_skip_event(world.operator, poison.pk, "not needed", "skip-1")
    drain()
    poison.refresh_from_db()
    later.refresh_from_db()
    assert (poison.status, later.status) == (Status.SKIPPED, Status.PUBLISHED)
    assert [seq_of(m) for m in good.read(1)] == [("k", 1)]
