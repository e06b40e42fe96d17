"""SIGKILL the ingest worker and the replay runner at random points, 10 times each: nothing is lost, and every
duplicate (if any) carries its provenance ids. The counts are printed (run with -s to see them)."""

import json
import random
import time
import uuid

import pytest
from django.utils import timezone

from console import brokers
from console.models import Operation
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
from tests.dlq import procs
from tests.dlq.conftest import wait_until

KILLS = 10


def _wait_for_growth(count, target: int, proc, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while count() < target:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no progress to {target} within {seconds} s")
        time.sleep(0.005)


@pytest.mark.django_db(transaction=True)
def test_it_loses_no_dead_letter_when_the_ingest_worker_is_killed(destinations, tmp_path):
    rng = random.Random()
    n = 200  # moto is slow beyond a few hundred messages in one queue
    dlq = destinations("sqs")
    brokers.get("sqs").publish_batch(
        [_outgoing(dlq, {"n": i}) for i in range(n)],
    )
    source = DeadLetterSource.objects.create(
        broker="sqs", destination=dlq, origin="orders", conventions={"visibility_timeout": 1}
    )
    stored = DeadLetter.objects.filter(source=source)
    log = tmp_path / "ingest.log"
    argv = ("dlq_ingest", "--no-discovery", "--source", str(source.pk), "--batch", "10")
    for _ in range(KILLS):
        worker = procs.manage(*argv, log=log)
        # Kill somewhere inside the poll → commit → ack loop: after a random number of new rows, plus jitter.
        _wait_for_growth(stored.count, min(n, stored.count() + rng.randint(1, 12)), worker)
        time.sleep(rng.uniform(0, 0.03))
        procs.kill(worker)
    worker = procs.manage(*argv, log=log)
    try:
        # Messages a killed worker received but never deleted come back after the 1 s visibility timeout.
        wait_until(lambda: stored.count() >= n and _queue_empty(dlq), 60)
    finally:
        worker.terminate()
        assert worker.wait(15) == 0, log.read_text()[-3000:]

    numbers = [json.loads(dl.body_bytes())["n"] for dl in stored]
    lost, duplicates = n - len(set(numbers)), len(numbers) - len(set(numbers))
    print(f"\ningest: {n} dead letters, {KILLS} SIGKILLs: lost={lost} duplicates={duplicates}")
    assert lost == 0
    assert duplicates == 0  # the unique (source, message id) drops a redelivery


def _outgoing(destination, payload):
    from brokers.base import OutgoingMessage

    return OutgoingMessage(destination, json.dumps(payload).encode(), None, {"x-exception-type": "ValueError"})


def _queue_empty(name: str) -> bool:
    attributes = brokers.get("sqs").queue_attributes(name)
    return (
        attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


@pytest.mark.django_db(transaction=True)
def test_it_loses_nothing_when_a_1000_message_replay_is_killed(world, destinations, tmp_path):
    rng = random.Random()
    n = 1000
    origin = destinations("kafka")
    source = DeadLetterSource.objects.create(broker="kafka", destination=origin + ".DLQ")
    now = timezone.now()
    DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            origin=origin,
            message_id=f"0:{i}",
            body=json.dumps({"n": i}).encode(),
            body_size=10,
            first_failure_at=now,
            last_failure_at=now,
            fingerprint="reliability",
        )
        for i in range(n)
    )
    key = f"reliability-{uuid.uuid4().hex[:8]}"
    argv = (
        "dlq",
        "replay",
        "--user",
        "operator",
        "--reason",
        "reliability test",
        "--key",
        key,
        "--group",
        "reliability",
        "--rate",
        "400",
        "--foreground",
    )
    log = tmp_path / "replay.log"
    records = ReplayRecord.objects.filter(dead_letter__source=source)
    for _ in range(KILLS):
        runner = procs.manage(*argv, log=log)
        _wait_for_growth(records.count, min(n, records.count() + rng.randint(1, 60)), runner, 60)
        time.sleep(rng.uniform(0, 0.05))
        procs.kill(runner)
        # What requeue_stale_operations waits STALE_AFTER_SECONDS for: the dead runner's heartbeat is old.
        Operation.objects.filter(idempotency_key=key).update(updated_at=now - timezone.timedelta(minutes=5))
    runner = procs.manage(*argv, log=log)
    assert runner.wait(60) == 0, log.read_text()[-3000:]
    op = Operation.objects.get(idempotency_key=key)
    assert op.status == "succeeded" and op.progress_done == n

    sent = brokers.get("kafka").read(origin, max_messages=3 * n, timeout=20)
    replay_of = [int(m.headers["x-switchyard-replay-of"]) for m in sent]
    assert all(m.headers["x-switchyard-operation"] == str(op.pk).encode() for m in sent)
    ids = set(DeadLetter.objects.filter(source=source).values_list("id", flat=True))
    lost, duplicates = len(ids - set(replay_of)), len(replay_of) - len(set(replay_of))
    by_body = {json.loads(m.body)["n"] for m in sent}
    print(f"\nreplay: {n} dead letters, {KILLS} SIGKILLs: lost={lost} duplicates={duplicates} (all with provenance)")
    assert lost == 0 and len(by_body) == n
    assert set(replay_of) == ids
    assert DeadLetter.objects.filter(source=source, status="replayed", replay_count=1).count() == n
