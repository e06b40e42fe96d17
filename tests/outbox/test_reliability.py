"""SIGKILL the relay at random points 20 times while 10,000 events go to Kafka (noida): none lost, per-key order
kept; duplicates (the at-least-once window between produce and mark) are counted and printed."""

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from console import brokers
from outbox.models import OutboxEvent
from outbox.relay import Relay, serve
from tests.drills import figures

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 10_000
KEYS = 100
KILLS = 20


def _database_url() -> str:
    db = settings.DATABASES["default"]
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    return f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _spawn_command(logs: Path) -> subprocess.Popen:
    """The real `manage.py outbox_relay`, as `make run` starts it."""
    env = {**os.environ, "DATABASE_URL": _database_url(), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "manage.py", "outbox_relay", "--batch-size", "50", "--quiet-live"]
    log = logs / f"relay-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "outbox relay started" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    return proc


def _relay_child() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    serve(stop, Relay(batch_size=50), purge_every=3600)


def _fork_relay() -> multiprocessing.Process:
    """A relay process forked from this (already set-up) one: the same serve() loop as the command, without paying
    Django's start-up twenty times. The parent's connection is closed first so the child never shares its socket."""
    connection.close()
    proc = multiprocessing.get_context("fork").Process(target=_relay_child, daemon=True)
    proc.start()
    return proc


def _seed(uri: str) -> None:
    rows = []
    for i in range(EVENTS):
        key = f"agg-{i % KEYS}"
        event_id = uuid.uuid4()
        payload = json.dumps({"key": key, "seq": i // KEYS}).encode()
        rows.append(
            OutboxEvent(event_id=event_id, destination=uri, key=key, order_key=key, event_type="t", payload=payload)
        )
    OutboxEvent.objects.bulk_create(rows, batch_size=2000)


def test_it_loses_nothing_and_keeps_per_key_order_across_20_sigkills(transactional_db, tmp_path):
    adapter = brokers.get("kafka")
    topic = f"sy-ob-kill-{uuid.uuid4().hex[:8]}"
    adapter.ensure_destination(topic, partitions=3)
    rng = random.Random(5)
    try:
        _seed(f"kafka://{topic}")
        relays = [_fork_relay(), _fork_relay()]  # two at once, on different keys
        kills_with_backlog = 0
        for _ in range(KILLS):
            victim = rng.randrange(2)
            time.sleep(rng.uniform(0.05, 0.4))
            os.kill(relays[victim].pid, signal.SIGKILL)
            relays[victim].join(10)
            kills_with_backlog += OutboxEvent.objects.exclude(status="published").exists()
            relays[victim] = _fork_relay()
        # The rest goes out through the real command, which must then stop cleanly on SIGTERM.
        for relay in relays:
            os.kill(relay.pid, signal.SIGKILL)
            relay.join(10)
        during_kills = OutboxEvent.objects.filter(status="published").count()
        command = _spawn_command(tmp_path)
        deadline = time.monotonic() + 90
        while OutboxEvent.objects.exclude(status="published").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        command.send_signal(signal.SIGTERM)
        assert command.wait(15) == 0
        assert not OutboxEvent.objects.exclude(status="published").exists()

        messages = adapter.read(topic, max_messages=EVENTS * 2, timeout=60)
        event_ids = [m.headers["x-event-id"] for m in messages]
        unique = set(event_ids)
        assert len(unique) == EVENTS, "lost events"
        seen: dict[str, list[int]] = {}
        for message in messages:  # read in (partition, offset) order; a key lives on one partition
            body = json.loads(message.body)["payload"]
            seen.setdefault(body["key"], []).append(body["seq"])
        for key, seqs in seen.items():
            first_seen = list(dict.fromkeys(seqs))
            assert first_seen == list(range(EVENTS // KEYS)), f"{key} out of order"
            # A resent run is a contiguous replay: after each message, the next one is either its successor or an
            # earlier event that is being sent again — never a jump past an unsent one.
            high = -1
            for seq in seqs:
                assert seq <= high + 1, f"{key}: {seq} sent before {high + 1}"
                high = max(high, seq)
        duplicates = len(event_ids) - len(unique)
        print(
            f"\nreliability: {EVENTS} events, {KILLS} SIGKILLs ({kills_with_backlog} with a backlog left; "
            f"{during_kills} published by the relays being killed), "
            f"{len(messages)} messages read, {duplicates} duplicates, 0 lost, per-key order kept"
        )
        assert kills_with_backlog >= 10, "most kills should land while the relays still had work"
        # Every copy carries its x-event-id (the provenance): a repeat is the at-least-once window's resend.
        figures.record(
            "crash: outbox relay (20 kills)",
            inputs=EVENTS,
            lost=EVENTS - len(unique),
            duplicated=duplicates,
            restarts=kills_with_backlog,
        )
    finally:
        adapter.delete_destination(topic)
