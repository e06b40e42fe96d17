"""Bulk actions stop when cancelled; the Kafka ingest worker killed between the database commit and the ack loses
nothing and records nothing twice."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from console import brokers, operations
from console.actions import do_control_operation
from console.models import Operation
from sagas.models import SagaInstance, SagaStepEvent
from sagas.recording import record_events, validate_event
from tests.conftest import ROOT
from tests.sagas.helpers import ev

SAGAS = 300


def test_it_cancels_a_bulk_action_and_leaves_the_rest_untouched(transactional_db, world):
    record_events([validate_event(ev(f"c{i:03}", "charge", status="failed", seq=1))[0] for i in range(SAGAS)])
    operator = world.client(world.operator)
    url = "/api/v1/sagas/bulk/resolve"
    preview = operator.post(
        url, {"preview": True, "note": "n", "filter": {"status": "failed"}}, content_type="application/json"
    ).json()["preview"]
    assert preview["count"] == SAGAS  # the frozen set
    body = {"selection": preview["selection"], "reason": "refunds done", "idempotency_key": "bulk-c", "note": "n"}
    op_id = operator.post(url, body, content_type="application/json").json()["operation"]["id"]

    def run():
        try:
            operations.execute(op_id)  # what the Celery worker does, on a thread of its own
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while SagaInstance.objects.filter(status="resolved_manually").count() < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        do_control_operation(world.operator, op_id, "cancel", "wrong filter", "cancel-1")
        asked = time.monotonic()
        while Operation.objects.get(pk=op_id).status != "cancelled" and time.monotonic() - asked < 5:
            time.sleep(0.02)
        stopped_after = time.monotonic() - asked
    finally:
        worker.join(30)
    op = Operation.objects.get(pk=op_id)
    assert op.status == "cancelled" and stopped_after < 1.0, stopped_after
    resolved = SagaInstance.objects.filter(status="resolved_manually").count()
    assert 10 <= resolved < SAGAS and op.progress_done == resolved
    time.sleep(0.5)
    assert SagaInstance.objects.filter(status="resolved_manually").count() == resolved  # nothing more after
    # The rest are untouched: still failed, with only their own event (no operator entry).
    untouched = SagaInstance.objects.filter(status="failed")
    assert untouched.count() == SAGAS - resolved and {s.event_count for s in untouched} == {1}
    assert SagaStepEvent.objects.filter(actor__isnull=False).count() == resolved


# The ingest worker as `manage.py ingest_saga_events` runs it (Ingestor + run_forever, stopping on SIGTERM). Both
# workers use one static group member id, as a restarted worker on the same host would: the replacement takes over
# the dead member's partitions at once. Without it the test broker (noida-db) kept the SIGKILLed member in the group
# for longer than 90 s, and the replacement's JoinGroup waited all that time.
WORKER = """
import os, signal, sys, time
import django
django.setup()
from sagas.ingest import Ingestor, run_forever
if os.environ.get("HANG_AT_ACK"):
    # The first ack announces itself and hangs, so the test can SIGKILL the worker exactly after the batch's
    # database commit and before its offsets are committed to Kafka.
    from brokers.kafka import KafkaSubscription
    def hang(self, messages):
        open(os.environ["ACK_MARKER"], "w").write(str(len(messages)))
        time.sleep(600)
    KafkaSubscription.ack = hang
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
options = {"session.timeout.ms": 6000, "max.poll.interval.ms": 7000, "group.instance.id": sys.argv[2] + "-w"}
ingestor = Ingestor(sys.argv[1], sys.argv[2], **options)
run_forever(ingestor, lambda: bool(stopping))
ingestor.close()
print(f"stopped: {ingestor.recorded} recorded")
"""


def _worker_env(marker: Path) -> dict:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    env["DATABASE_URL"] = f"postgresql://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "console.settings"
    env["ACK_MARKER"] = str(marker)
    env["PYTHONUNBUFFERED"] = "1"
    env["SAGA_INGEST_LEASE_SECONDS"] = "3"  # the killed worker's partition lease lapses in 3 s, not 15
    return env


@pytest.fixture
def topic():
    adapter = brokers.get("kafka")
    name = f"saga-events-{uuid.uuid4().hex[:8]}"
    adapter.ensure_destination(name)
    yield adapter, name
    adapter.delete_destination(name)


def test_it_loses_nothing_when_the_ingest_worker_is_killed_before_the_ack(transactional_db, topic, tmp_path):
    adapter, name = topic
    events = [ev(f"k{i // 4}", f"step{i % 4}", seq=i % 4 + 1) for i in range(200)]
    messages = [json.dumps(events[start : start + 20]).encode() for start in range(0, len(events), 20)]
    for body in messages[:5]:  # the first half before the worker that will be killed starts
        adapter.publish(name, body)
    group = f"g-{uuid.uuid4().hex[:6]}"
    marker = tmp_path / "acking"
    env = {**_worker_env(marker), "HANG_AT_ACK": "1"}
    killed = subprocess.Popen([sys.executable, "-c", WORKER, name, group], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the worker never reached its first ack"
        first_batch = SagaStepEvent.objects.count()
        assert 0 < first_batch <= 100  # committed to the database, not yet acknowledged to Kafka
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(10) == -signal.SIGKILL
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait(10)

    for body in messages[5:]:
        adapter.publish(name, body)
    # A new worker in the same group reads from the last committed offset: the killed batch again, then the rest.
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, name, group],
        cwd=ROOT,
        env=_worker_env(marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while SagaStepEvent.objects.count() < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out
    stored = list(SagaStepEvent.objects.values_list("event_id", flat=True))
    assert sorted(stored) == sorted(e["event_id"] for e in events)  # all there, none twice
    assert f"stopped: {len(events) - first_batch} recorded" in out  # the redelivered batch recorded nothing
    counts = set(SagaInstance.objects.values_list("event_count", flat=True))
    assert SagaInstance.objects.count() == 50 and counts == {4}
    assert set(SagaInstance.objects.values_list("status", flat=True)) == {"running"}
