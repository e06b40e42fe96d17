"""Hostile items through the ingest paths, counting what is lost: saga events over HTTP and over Kafka
(sagas.ingest.Ingestor), and dead letters on a RabbitMQ DLQ taken in by the real `manage.py dlq_ingest` worker, whose
pages then show each one. Every valid item sent must be stored (lost = 0); every dead letter must be stored with the
bytes sent; no page or API answer about them may be a 500 or run their markup."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.drills.hostile import HOSTILE_JSON, HOSTILE_STRINGS, RAW_BODIES
from tests.sagas.helpers import ev

SAGA_FIELDS = [
    "event_id",
    "saga_id",
    "saga_type",
    "step",
    "direction",
    "status",
    "occurred_at",
    "seq",
    "attempt",
    "correlation_id",
    "saga_status",
    "error",
    "context",
    "broker",
    "duration_ms",
    "idempotency_key",
]


@dataclass
class Counts:
    inputs: int = 0
    http_500: int = 0
    unclear: int = 0
    lost: int = 0


def saga_items(rng: random.Random, n: int, run: str) -> tuple[list, set[str]]:
    """n saga events, about half valid (their ids returned), the rest wrong-typed, missing or unknown fields."""
    items, valid = [], set()
    for i in range(n):
        event = ev(f"drill-{run}-{i % 17}", f"step{i % 5}", seq=i + 1, event_id=f"drill-{run}-{i}")
        roll = rng.random()
        if roll < 0.5:
            valid.add(event["event_id"])
        elif roll < 0.7:
            event[rng.choice(SAGA_FIELDS)] = rng.choice(HOSTILE_JSON)
            if event.get("event_id") == f"drill-{run}-{i}":
                event["event_id"] = f"drill-{run}-{i}-bad"  # its id must never count as a valid one's
        elif roll < 0.8:
            del event[rng.choice(SAGA_FIELDS[:7])]
        elif roll < 0.9:
            event[rng.choice(["colour", "<script>", "a\x00b", "x" * 300])] = rng.choice(HOSTILE_JSON)
        else:
            event = rng.choice(HOSTILE_JSON)
        items.append(event)
    return items, valid


def stored_events(ids: set[str]) -> set[str]:
    from sagas.models import SagaStepEvent

    return set(SagaStepEvent.objects.filter(event_id__in=ids).values_list("event_id", flat=True))


def saga_http(world, n: int, seed: int) -> Counts:
    """Lists of 50 events over POST /api/v1/saga-events with a viewer's token."""
    from django.test import Client

    from tests.drills.hostile import Case, Route, judge

    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    items, valid = saga_items(rng, n, run)
    token = world.token(world.viewer)
    counts = Counts()
    client = Client()
    route = Route("api/v1/saga-events", None)
    for start in range(0, n, 50):
        batch = items[start : start + 50]
        body = json.dumps(batch).encode() if rng.random() < 0.9 else json.dumps(batch[0]).encode()
        counts.inputs += 1
        response = client.post(
            "/api/v1/saga-events", body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
        )
        verdict, _ = judge(response, Case(route, "POST", "/api/v1/saga-events", body))
        counts.http_500 += verdict == "http_500"
        counts.unclear += verdict == "unclear"
    counts.inputs = n
    sent_valid = {i["event_id"] for i in items if isinstance(i, dict) and i.get("event_id") in valid}
    counts.lost = len(sent_valid - stored_events(sent_valid))
    return counts


def saga_kafka(n: int, seed: int) -> Counts:
    """n events (and raw bytes that are not JSON) on a fresh topic, read by the saga ingest's own Ingestor."""
    from console import brokers
    from sagas.ingest import Ingestor

    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    items, valid = saga_items(rng, n, run)
    topic = f"drill-saga-events-{run}"
    kafka = brokers.get("kafka")
    kafka.ensure_destination(topic)
    bodies = []
    for start in range(0, n, 10):
        bodies.append(json.dumps(items[start : start + 10]).encode())
        if rng.random() < 0.3:
            bodies.append(rng.choice(RAW_BODIES[:-1]))  # not JSON (the 10 MB one is over Kafka's message size)
    kafka.publish_batch(_outgoing(topic, bodies))
    ingestor = Ingestor(topic, f"drill-{run}", batch=100)
    try:
        deadline = time.monotonic() + 60
        idle = 0
        while time.monotonic() < deadline and idle < 5:
            idle = 0 if ingestor.run_once(timeout=1.0) else idle + 1
            if stored_events(valid) == valid:
                break
    finally:
        ingestor.close()
        kafka.delete_destination(topic)
    return Counts(inputs=len(bodies), lost=len(valid - stored_events(valid)))


def _outgoing(topic: str, bodies: list[bytes]):
    from brokers.base import OutgoingMessage

    return [OutgoingMessage(topic, body) for body in bodies]


HEADER_VALUES = [s for s in HOSTILE_STRINGS if len(s) < 5_000] + [b"\xff\xfe\x00", b"<script>window.pwned=3</script>"]
TEN_MB = bytes(range(256)) * 40960


def dead_letters(world, n: int, seed: int, tmp_path: Path, *, big: int = 1) -> Counts:
    """n hostile messages on a fresh RabbitMQ DLQ (the machine's broker; the queue is the drill's own), ingested by the
    real worker; then each one's page, the inbox and the API as a viewer: no 500, no markup of theirs run."""
    from console import brokers
    from dlq.models import DeadLetter, DeadLetterSource
    from tests.dlq import procs

    rng = random.Random(seed)
    rabbit = brokers.get("rabbitmq")
    queue = f"drill-{uuid.uuid4().hex[:8]}-dlq"
    rabbit.ensure_destination(queue)
    sent: dict[str, bytes] = {}
    try:
        from brokers.base import OutgoingMessage

        batch = []
        for i in range(n):
            body = TEN_MB if i < big else _hostile_body(rng)
            headers = {"n": str(i), "h": rng.choice(HEADER_VALUES), rng.choice(["x-a", "x'b\"", "x<y>"]): "v"}
            sent[str(i)] = body
            batch.append(OutgoingMessage(queue, body, headers=headers))
        rabbit.publish_batch(batch)
        source = DeadLetterSource.objects.create(broker="rabbitmq", destination=queue, origin="drill")
        log = tmp_path / f"ingest-{queue}.log"
        worker = procs.manage("dlq_ingest", "--no-discovery", "--source", str(source.pk), "--batch", "50", log=log)
        try:
            deadline = time.monotonic() + 120
            while DeadLetter.objects.filter(source=source).count() < n and time.monotonic() < deadline:
                assert worker.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        finally:
            procs.kill(worker)
    finally:
        rabbit.delete_destination(queue)
    stored = {dl.headers.get("n"): dl for dl in DeadLetter.objects.filter(source=source)}
    counts = Counts(inputs=n)
    counts.lost = sum(1 for key, body in sent.items() if key not in stored or stored[key].body_bytes() != body)
    client = world.client(world.viewer)
    urls = [f"/dead-letters/{dl.pk}/" for dl in stored.values()] + [
        f"/api/v1/dead-letters/{dl.pk}" for dl in stored.values()
    ]
    urls += ["/dead-letters/?origin=drill", "/dead-letters/groups/", "/api/v1/dead-letters?origin=drill"]
    for url in urls:
        response = client.get(url)
        counts.http_500 += response.status_code >= 500
        if response["Content-Type"].startswith("text/html"):  # the API answers them as data (JSON, nosniff)
            assert b"<script>window.pwned" not in response.content, url  # shown as text, never as markup
    return counts


def _hostile_body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(HOSTILE_STRINGS)[:20_000].encode("utf-8", "surrogatepass")
    if roll < 0.5:
        return json.dumps({"html": "<script>window.pwned=1</script>", "q": "\"'><img src=x>"}).encode()
    if roll < 0.7:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
    return rng.choice(RAW_BODIES[:-1])[:50_000]
