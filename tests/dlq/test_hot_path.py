"""The replay hot path of ADR 0024 against real Kafka and Postgres: two batches in flight, every one recorded and
marked; status updates that touch no index (HOT); record COPYs that fire no foreign-key triggers."""

import threading

import pytest
from django.db import connection

from console.operations import execute
from dlq import operations as replay
from dlq.models import DeadLetter, ReplayRecord
from tests.dlq.test_replay_control import _dead_letters, _start


@pytest.mark.django_db(transaction=True)
def test_it_overlaps_two_batches_and_records_every_one(world, destinations):
    n = 1200
    ids = _dead_letters(destinations("kafka"), n)
    op = _start(world, ids, batch=100)  # 12 batches, so the pipeline fills and drains
    delivering = [threading.Event() for _ in range(12)]
    batches, overlapped = [], []
    deliver, record = replay.deliver, replay.record

    def observed_deliver(batch, dry_run):
        delivering[len(batches)].set()  # batch k's delivery has started (one delivery thread: k is len(batches))
        batches.append(batch)
        return deliver(batch, dry_run)

    def observed_record(ctx, sent, writer):
        # Batch k is about to be recorded: has batch k+1's delivery started without waiting for it? Waiting here
        # is what makes this deterministic: a pipelined replay starts k+1 regardless, a sequential one would
        # only start it after this record, so the wait would time out.
        k = len(overlapped)
        if k + 1 < len(delivering):
            overlapped.append(delivering[k + 1].wait(timeout=5))
        else:
            overlapped.append(True)  # the last batch has no successor
        return record(ctx, sent, writer)

    replay.deliver, replay.record = observed_deliver, observed_record
    try:
        assert execute(op.pk) == "succeeded"
    finally:
        replay.deliver, replay.record = deliver, record
    assert len(batches) == 12 and overlapped == [True] * 12, overlapped
    assert ReplayRecord.objects.filter(operation=op).count() == n
    assert DeadLetter.objects.filter(pk__in=ids, status="replayed", replay_count=1).count() == n


def test_it_marks_replayed_without_touching_an_index(world, destinations):
    ids = _dead_letters(destinations("kafka"), 40)
    counts = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s"
    with connection.cursor() as cursor:
        # Counted as a difference: since PostgreSQL 15 these "this transaction" counts also hold earlier
        # transactions' counts that the backend has not flushed yet (another test's updates, a moment ago).
        cursor.execute(counts, [DeadLetter._meta.db_table])
        updated_before, hot_before = cursor.fetchone()
        replay.mark_replayed(ids, replay.timezone.now())
        # Every row's new version stayed on its page (fillfactor 50, status not indexed), so none of the table's
        # indexes got an entry.
        cursor.execute(counts, [DeadLetter._meta.db_table])
        updated, hot = cursor.fetchone()
        assert (updated - updated_before, hot - hot_before) == (40, 40)


def test_it_copies_replay_records_without_foreign_key_triggers(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [ReplayRecord._meta.db_table],
        )
        assert cursor.fetchone() == (0,)


def test_it_sizes_paced_batches_for_the_whole_cycle():
    sizer = replay.Sizer(None, replay.Pacer(100))
    assert sizer.next() == 10  # a tenth of a second's worth to start
    sizer.saw(10, 0.4)  # but one batch's cycle took 0.4 s: 40 per cycle is the limit, with headroom
    assert sizer.next() == 60


def test_it_doubles_a_paced_batch_when_the_pacer_falls_behind():
    pacer = replay.Pacer(100)
    sizer = replay.Sizer(None, pacer)
    pacer.started -= 10  # ten seconds behind the limit: nothing to sleep for
    assert pacer.took(10, lambda seconds: pytest.fail("slept while behind")) is True
    sizer.behind(10)
    assert sizer.next() == 20
    sizer.behind(80)
    assert sizer.next() == 100  # never more than a second's worth at the limit
