"""The relay's hot path: envelopes the relay builds from its claim query match the model's, waves pipeline the
heads of many keys per broker round trip, rows before an oversized one still go out, and the purge also runs from
Celery beat."""

import json
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.base import OutgoingMessage
from outbox import publish
from outbox.models import OutboxEvent
from outbox.relay import Row, _due_prefixes
from outbox.tasks import purge as purge_task
from tests.outbox.conftest import drain, seq_of

Status = OutboxEvent.Status


def _envelope(body: bytes) -> dict:
    """The parsed envelope with occurred_at as a datetime: Postgres drops trailing zeros of the fraction
    (".12345"), Python's isoformat keeps six digits (".123450"); both are the same ISO 8601 instant."""
    envelope = json.loads(body)
    envelope["occurred_at"] = datetime.fromisoformat(envelope["occurred_at"])
    return envelope


def test_it_builds_the_same_envelope_from_the_claim_query_as_the_model(transactional_db, targets, settings):
    settings.OUTBOX_CLAIM_CHECK_BYTES = 1024
    target = targets("kafka")
    with transaction.atomic():
        events = [
            publish(target.uri, "k", "order.created", {"text": 'quote " and }', "n": 1}, correlation_id="c-1"),
            publish(target.uri, "k", "blob.stored", b"\x00\xff raw bytes " * 20, headers={"traceparent": "t-1"}),
            publish(target.uri, "k", "order.large", {"pad": "x" * 2000}),
        ]
    drain()
    messages = target.read(3)
    assert [_envelope(m.body) for m in messages] == [_envelope(e.body()) for e in events]
    assert messages[1].headers["traceparent"] == b"t-1"
    assert json.loads(messages[2].body)["payload_ref"]["claim_check"].startswith("outbox-payload:")


def _row(pk: int, key: str, broker: str, target: str = "target") -> Row:
    destination = f"{broker}://{target}"
    return Row(pk, key, destination, "pending", True, 0, OutgoingMessage("target", b"{}", key, {}), 2)


def test_it_sends_the_heads_of_all_keys_in_one_wave_per_broker():
    rows = [_row(i, f"k{i % 3}", "sqs") for i in range(6)]  # k0 k1 k2 k0 k1 k2
    rows += [_row(10 + i, "kafka-key", "kafka") for i in range(4)]
    rows += [_row(20, "mixed", "sqs"), _row(21, "mixed", "kafka"), _row(22, "mixed", "kafka")]
    rows += [_row(30, "topics", "kafka", "a"), _row(31, "topics", "kafka", "b"), _row(32, "topics", "kafka", "b")]
    batch = _due_prefixes(rows)
    waves = {row.pk: row.wave for row in batch}
    assert [waves[i] for i in range(6)] == [0, 0, 0, 1, 1, 1]  # one key's rows: one confirmed round trip apart
    assert [waves[10 + i] for i in range(4)] == [0, 0, 0, 0]  # Kafka keeps a partition in order itself
    assert [waves[20], waves[21], waves[22]] == [0, 1, 1]  # a Kafka row waits for the SQS row before it
    assert [waves[30], waves[31], waves[32]] == [0, 1, 1]  # and for a row to another topic (another partition)
    assert [row.wave for row in batch] == sorted(row.wave for row in batch)


def test_it_sends_the_rows_before_an_oversized_row_of_the_same_key(transactional_db, targets, fast_retries):
    fast_retries.OUTBOX_CLAIM_CHECK_BYTES = 8 * 1024 * 1024
    target = targets("kafka")
    with transaction.atomic():
        first = publish(target.uri, "k", "t", {"key": "k", "seq": 0})
        big = publish(target.uri, "k", "t", {"key": "k", "seq": 1, "pad": "x" * 1_100_000})
        after = publish(target.uri, "k", "t", {"key": "k", "seq": 2})
    drain()
    statuses = dict(OutboxEvent.objects.values_list("pk", "status"))
    assert (statuses[first.pk], statuses[big.pk], statuses[after.pk]) == (Status.PUBLISHED, Status.FAILED, "pending")
    # The first row really went out (it was marked published, so it must be on the topic), and nothing after it.
    assert [seq_of(m) for m in target.read(1)] == [("k", 0)]


def test_it_purges_from_a_beat_job(db):
    entry = settings.CELERY_BEAT_SCHEDULE["outbox-purge"]
    assert entry["task"] == purge_task.name == "outbox.tasks.purge"
    with transaction.atomic():
        old = publish("kafka://orders", "a", "t", {})
        kept = publish("kafka://orders", "b", "t", {})
    long_ago = timezone.now() - timezone.timedelta(hours=settings.OUTBOX_RETENTION_HOURS + 1)
    OutboxEvent.objects.filter(pk=old.pk).update(status=Status.PUBLISHED, published_at=long_ago)
    assert purge_task.apply().get() == 1
    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [kept.pk]
