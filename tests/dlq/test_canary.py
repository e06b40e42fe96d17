"""The canary against real SQS: the replay runs in a `manage.py dlq replay --foreground` process while this test is
the origin's consumer and the ingest worker, so a replayed message that fails again really comes back through the
DLQ and is counted as a re-failure."""

import json
import subprocess
import time
import uuid

import pytest
from django.utils import timezone

from console import brokers
from console.actions import do_control_operation
from console.models import Operation
from dlq import ingest
from dlq.consumer_kit import RetryingConsumer
from dlq.models import DeadLetter, DeadLetterSource, ReplayRecord
from tests.dlq import procs

N, CANARY = 6, 2


def _setup(destinations) -> tuple[str, DeadLetterSource, str]:
    origin, dlq = destinations("sqs"), destinations("sqs")
    source = DeadLetterSource.objects.create(broker="sqs", destination=dlq, origin=origin)
    group = f"canary-{uuid.uuid4().hex[:6]}"
    now = timezone.now()
    DeadLetter.objects.bulk_create(
        DeadLetter(
            source=source,
            origin=origin,
            message_id=f"m{i}",
            headers={"x-event-id": f"{group}-{i}"},
            body=json.dumps({"n": i}).encode(),
            first_failure_at=now,
            last_failure_at=now,
            fingerprint=group,
        )
        for i in range(N)
    )
    return origin, source, group


def _replay(group: str, key: str, log, *options: str) -> subprocess.Popen:
    return procs.manage(
        *("dlq", "replay", "--user", "operator", "--reason", "canary", "--key", key, "--group", group),
        *("--canary", str(CANARY), "--canary-wait-seconds", "4", "--foreground", *options),
        log=log,
    )


def _serve(runner: subprocess.Popen, consumer: RetryingConsumer, source: DeadLetterSource, seconds: float = 45):
    """Be the origin's consumer and the ingest worker until the replay process exits."""
    deadline = time.monotonic() + seconds
    while runner.poll() is None:
        assert time.monotonic() < deadline, "the replay did not finish"
        consumer.run_once(timeout=0.1)
        ingest.run_once(source, timeout=0.1)
    return runner.returncode


def _failing(message):
    raise RuntimeError("still broken")


@pytest.mark.django_db(transaction=True)
def test_it_stops_a_replay_whose_canary_fails_again(world, destinations, tmp_path):
    origin, source, group = _setup(destinations)
    consumer = RetryingConsumer(
        brokers.get("sqs"), origin, "svc", _failing, dead_letter_to=source.destination, attempts=1, visibility_timeout=5
    )
    log = tmp_path / "replay.log"
    try:
        code = _serve(_replay(group, "canary-fail", log, "--canary-threshold", "0.5"), consumer, source)
    finally:
        consumer.close()
    op = Operation.objects.get(idempotency_key="canary-fail")
    assert code != 0 and op.status == "failed", log.read_text()
    assert "canary: 2 of 2 failed again (100%, threshold 50%)" in op.message
    # Only the canary went out; the re-failures came back through the DLQ, pointing at what they replay.
    assert ReplayRecord.objects.filter(operation=op).count() == CANARY
    canary_ids = set(DeadLetter.objects.filter(fingerprint=group).order_by("id").values_list("id", flat=True)[:CANARY])
    refailed = DeadLetter.objects.filter(source=source, replay_of__isnull=False)
    assert set(refailed.values_list("replay_of_id", flat=True)) == canary_ids


@pytest.mark.django_db(transaction=True)
def test_it_continues_a_healthy_canary_on_its_own(world, destinations, tmp_path):
    origin, source, group = _setup(destinations)
    seen = []
    consumer = RetryingConsumer(brokers.get("sqs"), origin, "svc", seen.append, dead_letter_to=source.destination)
    log = tmp_path / "replay.log"
    try:
        code = _serve(_replay(group, "canary-ok", log), consumer, source)
    finally:
        consumer.close()
    op = Operation.objects.get(idempotency_key="canary-ok")
    assert code == 0 and op.status == "succeeded", log.read_text()
    assert op.message.startswith("canary: 0 of 2 failed again")
    assert ReplayRecord.objects.filter(operation=op).count() == N


@pytest.mark.django_db(transaction=True)
def test_it_waits_for_the_operators_word_in_manual_mode(world, destinations, tmp_path):
    origin, source, group = _setup(destinations)
    seen = []
    consumer = RetryingConsumer(brokers.get("sqs"), origin, "svc", seen.append, dead_letter_to=source.destination)
    log = tmp_path / "replay.log"
    try:
        code = _serve(_replay(group, "canary-manual", log, "--canary-mode", "manual"), consumer, source)
        op = Operation.objects.get(idempotency_key="canary-manual")
        assert code == 0 and op.status == "paused", log.read_text()
        assert "resume to replay the rest" in op.message
        assert ReplayRecord.objects.filter(operation=op).count() == CANARY

        do_control_operation(world.operator, op.pk, "resume", "canary looked fine", "resume-1")
        # The same command again runs the resumed operation; the canary is behind it, so the rest goes at once.
        code = _serve(_replay(group, "canary-manual", log), consumer, source)
    finally:
        consumer.close()
    op.refresh_from_db()
    assert code == 0 and op.status == "succeeded", log.read_text()
    assert ReplayRecord.objects.filter(operation=op).count() == N
    assert sorted(json.loads(m.body)["n"] for m in seen) == list(range(N))
