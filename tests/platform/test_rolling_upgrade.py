"""The rolling-upgrade rule (deploy/k8s/README.md): the previous release's code works on the new schema, because the
migration Job runs before the new pods replace the old ones.

"The previous release" is the code of the commit just before the newest one that added or changed a migration; the
test database has every migration of this checkout applied. That code's dead-letter ingest and outbox relay — the
processes that write the tables migrations touch most — run as real processes on it, and must do their work.
"""

import io
import json
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from brokers.base import OutgoingMessage
from console import brokers
from console.models import AuditEntry
from dlq.models import DeadLetter, DeadLetterSource
from outbox import publish
from outbox.models import OutboxEvent
from tests.dlq import procs
from tests.dlq.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> tuple[Path, str]:
    """The previous release's code, unpacked from git (a CI clone needs the history: no --depth 1)."""
    newest = _git("rev-list", "-n1", "HEAD", "--", "*/migrations/0*.py")
    commit = _git("rev-parse", f"{newest}^")
    target = tmp_path_factory.mktemp("previous")
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target, commit


def _old(code: Path, *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=code,
        env=procs.env(),
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_previous_releases_ingest_and_relay_on_the_new_schema(previous, tmp_path):
    code, commit = previous
    rabbit = brokers.get("rabbitmq")
    dlq, target = (f"sy-upgrade-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (dlq, target):
        rabbit.ensure_destination(name)
    log = tmp_path / "previous.log"
    workers = []
    try:
        rabbit.publish_batch([OutgoingMessage(dlq, json.dumps({"n": i}).encode(), None, {}) for i in range(5)])
        source = DeadLetterSource.objects.create(broker="rabbitmq", destination=dlq, origin="orders")
        with transaction.atomic():
            events = [publish(f"rabbitmq:///{target}", f"k{i}", "order.created", {"n": i}) for i in range(5)]
        workers = [
            _old(code, "dlq_ingest", "--no-discovery", "--source", str(source.pk), log=log),
            _old(code, "outbox_relay", log=log),
        ]
        wait_until(lambda: DeadLetter.objects.filter(source=source).count() == 5, 60)
        pending = OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).exclude(status="published")
        wait_until(lambda: not pending.exists(), 60)
        for worker in workers:
            assert worker.poll() is None, log.read_text()[-3000:]
            worker.terminate()
            assert worker.wait(20) == 0, log.read_text()[-3000:]
        time.sleep(0.2)
        assert len(rabbit.read(target, max_messages=10, timeout=2)) == 5
        # Every action of the previous release writes an audit entry, with the columns it knows of.
        User.objects.create_user("upgrade-operator")
        audit = (
            "from django.contrib.auth.models import User; from console.models import AuditEntry; "
            "AuditEntry.objects.create(actor=User.objects.get(username='upgrade-operator'), action='upgrade.test', "
            "target_type='test', target_id='1', reason='rolling upgrade')"
        )
        shell = _old(code, "shell", "-c", audit, log=log)
        assert shell.wait(60) == 0, log.read_text()[-3000:]
        assert AuditEntry.objects.filter(action="upgrade.test").exists()
    finally:
        for worker in workers:
            procs.kill(worker)
        for name in (dlq, target):
            rabbit.delete_destination(name)
    print(
        f"\nthe code of {commit[:10]} ingested 5 dead letters, relayed 5 events and wrote an audit entry on this "
        "checkout's schema"
    )
