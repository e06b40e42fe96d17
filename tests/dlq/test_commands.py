"""`manage.py dlq replay` (the API's replay from a shell) and the `dlq_ingest` worker's SIGTERM handling."""

import json
import signal
import time

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from brokers.base import OutgoingMessage
from console import brokers
from console.models import AuditEntry, Operation
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq import procs
from tests.dlq.conftest import wait_until


def _dead_letters(n: int, fingerprint: str = "cli") -> list[int]:
    source, _ = DeadLetterSource.objects.get_or_create(broker="kafka", destination="orders.DLQ")
    now = timezone.now()
    rows = DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            origin="orders",
            message_id=f"0:{i}",
            body=b"{}",
            first_failure_at=now,
            last_failure_at=now,
            fingerprint=fingerprint,
        )
        for i in range(n)
    )
    return [row.pk for row in rows]


def test_it_starts_an_audited_replay_from_the_command_line(world, capsys):
    ids = _dead_letters(3)
    call_command(
        "dlq",
        *("replay", "--user", "operator", "--reason", "fixed", "--key", "cli-1", "--group", "cli", "--rate", "5"),
    )
    op = Operation.objects.get(idempotency_key="cli-1")
    assert op.kind == "dlq.replay" and op.parameters["ids"] == ids and op.parameters["rate"] == 5
    assert op.requested_by == world.operator
    entry = AuditEntry.objects.get(idempotency_key="cli-1")
    assert entry.via == "cli" and entry.reason == "fixed"
    assert f"operation {op.pk} started: 3 dead letters" in capsys.readouterr().out
    # The same key again is the same request, never a second operation.
    call_command("dlq", "replay", "--user", "operator", "--reason", "fixed", "--key", "cli-1", "--group", "cli")
    assert Operation.objects.filter(kind="dlq.replay").count() == 1
    assert "already exists" in capsys.readouterr().out


def test_it_refuses_a_command_line_replay_without_the_operator_role(world):
    _dead_letters(1)
    with pytest.raises(CommandError, match="operator role"):
        call_command("dlq", "replay", "--user", "viewer", "--reason", "x", "--key", "k", "--ids", "1")
    assert not Operation.objects.exists()


def test_it_reports_invalid_command_line_parameters(world):
    ids = _dead_letters(1)
    with pytest.raises(CommandError, match="rate"):
        call_command(
            "dlq", "replay", "--user", "operator", "--reason", "x", "--key", "k", "--ids", str(ids[0]), "--rate", "-1"
        )
    with pytest.raises(CommandError, match="no dead letters match"):
        call_command(
            "dlq", "replay", "--user", "operator", "--reason", "x", "--key", "k", "--filter", '{"origin": "nope"}'
        )
    assert not Operation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_stops_the_ingest_worker_cleanly_on_sigterm(destinations, tmp_path):
    n = 100
    dlq = destinations("sqs")
    sqs = brokers.get("sqs")
    sqs.publish_batch([OutgoingMessage(dlq, json.dumps({"n": i}).encode(), None, {}) for i in range(n)])
    source = DeadLetterSource.objects.create(
        broker="sqs", destination=dlq, origin="orders", conventions={"visibility_timeout": 30}
    )
    stored = DeadLetter.objects.filter(source=source)
    log = tmp_path / "ingest.log"
    worker = procs.manage("dlq_ingest", "--no-discovery", "--source", str(source.pk), "--batch", "10", log=log)
    try:
        wait_until(lambda: stored.count() >= 10, 30)
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert worker.wait(10) == 0, log.read_text()[-3000:]
    finally:
        procs.kill(worker)
    assert time.monotonic() - started < 5
    # The round in flight finished its commit and its ack: nothing is left invisible (received but not deleted).
    attributes = sqs.queue_attributes(dlq)
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert stored.count() + int(attributes["ApproximateNumberOfMessages"]) == n
