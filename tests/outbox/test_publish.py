"""outbox.publish(): inside a transaction only, valid destinations, the envelope, claim checks; purge; pause;
the relay loop waking on NOTIFY."""

import json
import threading
import time

import pytest
from django.db import transaction
from django.utils import timezone

from outbox import publish
from outbox.models import OutboxCommit, OutboxDestinationState, OutboxEvent, OutboxPayload
from outbox.publishing import OutsideTransaction
from outbox.relay import Relay, purge, serve
from tests.outbox.conftest import drain, publish_events, seq_of

Status = OutboxEvent.Status


def test_it_refuses_to_publish_outside_a_transaction(transactional_db):
    with pytest.raises(OutsideTransaction):
        publish("kafka://orders", "o-1", "order.created", {})
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    "uri", ["orders", "http://x", "kafka://", "rabbitmq://no-routing-key", "nats://a b", "redis://q"]
)
def test_it_rejects_a_bad_destination(db, uri):
    with pytest.raises(ValueError), transaction.atomic():
        publish(uri, "k", "t", {})


@pytest.mark.parametrize(
    "uri", ["kafka://orders", "sqs://q", "sqs://q.fifo", "rabbitmq://ex/rk", "rabbitmq:///q", "nats://a.b"]
)
def test_it_accepts_each_broker_uri(db, uri):
    with transaction.atomic():
        event = publish(uri, "k", "t", {"a": 1})
    assert event.to_message().destination == uri.partition("://")[2]


def test_it_builds_the_envelope_for_json_and_bytes(db):
    with transaction.atomic():
        as_json = publish("kafka://t", "k", "order.created", {"n": 1}, correlation_id="c-1", schema_version=3)
        as_bytes = publish("kafka://t", "k", "blob", b"\x00\xff")
    body = json.loads(as_json.to_message().body)
    assert body["payload"] == {"n": 1}
    assert (body["schema_version"], body["correlation_id"], body["event_type"]) == (3, "c-1", "order.created")
    assert json.loads(as_bytes.to_message().body)["payload_base64"] == "AP8="


def test_it_stores_the_row_the_returned_event_describes(db):
    """publish() writes with its own INSERT, not save(): every column read back must match the instance it returned,
    enum values stored as their values ("json", "pending"), not their names."""
    with transaction.atomic():
        event = publish("kafka://t", "k-1", "order.created", {"n": 1}, headers={"h": 7}, correlation_id="c-9")
        blob = publish("nats://a.b", None, "blob", b"\x00")
    stored = OutboxEvent.objects.get(pk=event.pk)
    columns = [f.attname for f in OutboxEvent._meta.concrete_fields]
    assert {c: getattr(stored, c) for c in columns} == {c: getattr(event, c) for c in columns}
    assert (stored.status, stored.encoding, stored.headers) == ("pending", "json", {"h": "7"})
    assert stored.next_attempt_at <= timezone.now() and stored.created_at == stored.next_attempt_at
    assert OutboxEvent.objects.get(pk=blob.pk).encoding == "bytes"
    assert blob.order_key == f"~{blob.event_id}" and not event._state.adding


def test_it_drops_an_event_written_under_a_savepoint_that_rolled_back(db):
    with transaction.atomic():
        kept = publish("kafka://t", "k", "kept", {})
        with pytest.raises(RuntimeError), transaction.atomic():
            publish("kafka://t", "k", "dropped", {})
            raise RuntimeError("the caller's inner block failed")
    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [kept.pk]


def test_it_sends_a_large_payload_as_a_claim_check(db, world, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 1000
    big = {"blob": "y" * 5000}
    with transaction.atomic():
        event = publish("kafka://t", "k", "doc.stored", big)
    assert event.payload is None and event.claim_check_id
    body = json.loads(event.to_message().body)
    assert "payload" not in body
    ref = body["payload_ref"]["claim_check"]
    assert ref == f"outbox-payload:{event.claim_check_id}"
    # A consumer fetches the bytes with an API token.
    token = world.token(world.viewer)
    response = world.client(None).get(
        f"/api/v1/outbox/payloads/{event.claim_check_id}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200 and json.loads(response.content) == big


def test_it_purges_published_rows_after_the_retention(transactional_db, settings, targets):
    target = targets("kafka")
    publish_events(target.uri, [("a", 0), ("a", 1)])
    drain()
    old = OutboxEvent.objects.order_by("id").first()
    OutboxEvent.objects.filter(pk=old.pk).update(published_at=timezone.now() - timezone.timedelta(hours=25))
    with transaction.atomic():
        publish(target.uri, "b", "t", {})  # pending: never purged
    assert purge() == 1
    assert sorted(OutboxEvent.objects.values_list("status", flat=True)) == ["pending", "published"]


def test_it_leaves_a_paused_destination_alone_and_its_keys_wait(transactional_db, targets):
    paused, other = targets("kafka"), targets("kafka")
    OutboxDestinationState.objects.create(destination=paused.uri, paused=True)
    with transaction.atomic():
        held = publish(paused.uri, "k", "t", {"key": "k", "seq": 0})
        after = publish(other.uri, "k", "t", {"key": "k", "seq": 1})  # same key: waits behind the paused row
        free = publish(other.uri, "z", "t", {"key": "z", "seq": 0})
    drain()
    statuses = dict(OutboxEvent.objects.values_list("pk", "status"))
    assert (statuses[held.pk], statuses[after.pk], statuses[free.pk]) == ("pending", "pending", "published")
    OutboxDestinationState.objects.filter(destination=paused.uri).update(paused=False)
    drain()
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"published"}


def test_it_wakes_on_notify_without_waiting_for_the_poll(transactional_db, settings, targets):
    settings.OUTBOX_POLL_MS = 30_000  # only a NOTIFY can wake the loop within the test's deadline
    target = targets("kafka")
    stop = threading.Event()
    loop = threading.Thread(target=serve, args=(stop, Relay(batch_size=50)), kwargs={"purge_every": 3600})
    loop.start()
    try:
        time.sleep(1.0)  # the loop is now waiting on LISTEN
        publish_events(target.uri, [("n", 0)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and OutboxEvent.objects.filter(status=Status.PUBLISHED).count() < 1:
            time.sleep(0.05)
        assert OutboxEvent.objects.get().status == Status.PUBLISHED
        assert [seq_of(m) for m in target.read(1)] == [("n", 0)]
    finally:
        stop.set()
        loop.join(40)
    assert not loop.is_alive()


def test_it_deletes_claim_checks_nobody_needs_any_more(transactional_db, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 10
    with transaction.atomic():
        publish("kafka://t", "k", "t", {"x": "0123456789"})
    OutboxEvent.objects.all().delete()
    OutboxPayload.objects.update(created_at=timezone.now() - timezone.timedelta(hours=48))
    purge()
    assert OutboxPayload.objects.count() == 0


def test_it_counts_publish_latency_from_the_commit_not_the_insert(transactional_db, targets):
    # A transaction that goes on for a second after publish(): the relay cannot send before the commit, so that
    # second is the caller's, not the relay's. Also under a savepoint (a nested atomic), whose rows carry the
    # subtransaction's id rather than the transaction's.
    target = targets("kafka")
    with transaction.atomic():
        slow = publish(target.uri, "a", "t", {"n": 1})
        with transaction.atomic():
            nested = publish(target.uri, "b", "t", {"n": 2})
        time.sleep(1.0)
    assert OutboxCommit.objects.filter(event_id__in=[slow.pk, nested.pk]).count() == 2
    with transaction.atomic():
        with transaction.atomic():
            publish(target.uri, "c", "t", {"n": 3})
            transaction.set_rollback(True)  # a rolled-back savepoint leaves no row and no commit note
    drain()
    for event in OutboxEvent.objects.filter(pk__in=[slow.pk, nested.pk]):
        insert_to_confirm = (event.published_at - event.created_at).total_seconds() * 1000
        assert insert_to_confirm >= 1000 and event.latency_ms < insert_to_confirm - 900, (event.latency_ms, event.pk)
    assert OutboxCommit.objects.count() == 2


def test_it_purges_commit_notes_with_the_rows(transactional_db, targets):
    target = targets("kafka")
    publish_events(target.uri, [("a", 0), ("a", 1)])
    drain()
    first, second = OutboxEvent.objects.order_by("id").values_list("id", flat=True)
    OutboxCommit.objects.filter(event_id=first).update(committed_at=timezone.now() - timezone.timedelta(hours=25))
    purge()
    assert list(OutboxCommit.objects.values_list("event_id", flat=True)) == [second]
