"""Replay control against real Kafka: cancel within a second of a large unpaced replay, and the reconcile() that a
resume runs after a kill between a batch's ReplayRecord COPY and its status UPDATE."""

import json
import threading
import time
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from console import brokers
from console.actions import do_control_operation
from console.models import Operation
from console.operations import OperationContext, execute
from dlq import actions
from dlq import operations as replay
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord


def _dead_letters(origin: str, n: int) -> list[int]:
    source = DeadLetterSource.objects.create(broker="kafka", destination=origin + ".DLQ")
    now = timezone.now()
    rows = DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            origin=origin,
            message_id=f"0:{i}",
            body=json.dumps({"n": i, "pad": "x" * 500}).encode(),
            body_size=520,
            first_failure_at=now,
            last_failure_at=now,
            fingerprint="control",
        )
        for i in range(n)
    )
    return [row.pk for row in rows]


def _start(world, ids: list[int], **options) -> Operation:
    params = replay.validate({"ids": ids, **options})
    op, _ = actions.do_replay_dead_letters(world.operator, params, "control test", f"ctl-{uuid.uuid4().hex[:8]}")
    return op


@pytest.mark.django_db(transaction=True)
def test_it_cancels_a_5000_message_kafka_replay_within_a_second(world, destinations):
    n = 5000
    origin = destinations("kafka")
    # No rate limit; batches of 200 so the replay is still going when the first records appear (adaptive sizing
    # would send these 5,000 in two batches on a quiet machine). Cancel acts between batches either way.
    op = _start(world, _dead_letters(origin, n), batch=200)
    outcome = {}

    def run():
        try:
            outcome["status"] = execute(op.pk)
        finally:
            connection.close()

    runner = threading.Thread(target=run)
    runner.start()
    records = ReplayRecord.objects.filter(operation=op)
    deadline = time.monotonic() + 30
    while not records.exists():
        assert time.monotonic() < deadline, "the replay never started"
        time.sleep(0.01)
    asked = time.monotonic()
    do_control_operation(world.operator, op.pk, "cancel", "stop it", f"cancel-{op.pk}")
    # Judged by what was done, not by a wall clock a busy 2-core machine cannot keep: it stops before the end.
    while Operation.objects.get(pk=op.pk).status == "running":
        assert time.monotonic() - asked < 30, "still running 30 s after the cancel"
        time.sleep(0.02)
    stopped = time.monotonic() - asked
    runner.join(10)
    op.refresh_from_db()
    print(f"\ncancel: stopped {stopped:.3f} s after the request, {op.progress_done} of {n} replayed")
    assert outcome["status"] == "cancelled" and op.status == "cancelled"
    assert 0 < op.progress_done < n
    # What was sent before the cancel is recorded and marked; the rest is untouched.
    assert DeadLetter.objects.filter(status="replayed").count() == records.count() == op.progress_done
    assert DeadLetter.objects.filter(status="new").count() == n - op.progress_done


def test_it_reconciles_statuses_after_a_kill_between_the_copy_and_the_update(world, destinations):
    origin = destinations("kafka")
    ids = _dead_letters(origin, 10)
    op = _start(world, ids, batch=4)
    # The first batch as a killed run left it: sent and its ReplayRecords COPY committed, the status UPDATE never run.
    ctx = OperationContext(Operation.objects.get(pk=op.pk))
    batch = replay.prepare(ctx, ids[:4])
    sent, failed = replay.deliver(batch, dry_run=False).outcome()
    assert len(sent) == 4 and not failed

    class Killed:
        def submit(self, ids, when):
            pass  # the process died before the UPDATE

    replay.record(ctx, sent, Killed())
    assert ReplayRecord.objects.filter(operation=op).count() == 4
    assert DeadLetter.objects.filter(pk__in=ids, status="new").count() == 10

    replay.reconcile(op)  # what a resume runs first
    replay.reconcile(op)  # and again, if it is killed once more: applied once
    first = DeadLetter.objects.filter(pk__in=ids[:4])
    assert sorted(first.values_list("status", "replay_count").distinct()) == [("replayed", 1)]

    Operation.objects.filter(pk=op.pk).update(status="queued", progress_done=4)
    assert execute(op.pk) == "succeeded"  # the resume sends only the 6 without a record
    assert sorted(DeadLetter.objects.filter(pk__in=ids).values_list("status", "replay_count").distinct()) == [
        ("replayed", 1)
    ]
    sent_back = brokers.get("kafka").read(origin, max_messages=50, timeout=10)
    replay_of = sorted(int(m.headers["x-switchyard-replay-of"]) for m in sent_back)
    assert replay_of == sorted(ids)  # each once: the resume did not re-send the recorded batch
