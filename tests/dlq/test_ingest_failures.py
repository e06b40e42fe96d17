"""What the ingest worker does when a source fails, a message's facts do not parse, discovery finds a gone DLQ again,
or the database goes away: it records, backs off, stores what it can, and keeps running."""

from __future__ import annotations

import json
import select
import signal
import socket
import threading
import time
import uuid
from datetime import timedelta

import amqp
import pytest
from amqp.serialization import decode_properties_basic
from django.utils import timezone

from brokers.base import Message, OutgoingMessage
from brokers.rabbitmq import _lenient_properties
from console import brokers
from dlq import discovery, ingest
from dlq.management.commands.dlq_ingest import Command
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq import procs
from tests.dlq.conftest import wait_until

pytestmark = pytest.mark.django_db


def test_it_backs_off_a_failing_source_and_skips_it_until_its_next_attempt(destinations, settings):
    settings.DLQ_SOURCE_BACKOFF_BASE_SECONDS, settings.DLQ_SOURCE_BACKOFF_MAX_SECONDS = 10, 25
    # An admin's setting the SQS adapter cannot take: subscribing raises ValueError, not a BrokerError.
    broken = DeadLetterSource.objects.create(
        broker="sqs", destination=destinations("sqs"), conventions={"visibility_timeout": "soon"}
    )
    healthy = DeadLetterSource.objects.create(broker="sqs", destination=destinations("sqs"), origin="orders")
    brokers.get("sqs").publish(healthy.destination, b'{"n": 1}')

    ceilings = []
    for _ in range(3):
        broken.refresh_from_db()
        started = timezone.now()
        assert ingest.run_once(broken) is False
        broken.refresh_from_db()
        ceilings.append(broken.next_attempt_at - started)
    assert broken.consecutive_failures == 3 and broken.last_error.startswith("ValueError: ")
    assert broken.state() == "failing" and broken.gone_since is None
    # Full jitter: anywhere from now up to base × 2^(n − 1), capped.
    for delay, ceiling in zip(ceilings, (10, 20, 25), strict=True):
        assert timedelta(0) <= delay <= timedelta(seconds=ceiling, milliseconds=500)

    # The worker's round polls the healthy source and leaves the broken one alone until its next attempt.
    broken.next_attempt_at = timezone.now() + timedelta(minutes=1)
    broken.save(update_fields=["next_attempt_at"])
    wait_until(lambda: Command()._round({"source": None, "batch": 10}) or DeadLetter.objects.filter(source=healthy))
    broken.refresh_from_db()
    assert broken.consecutive_failures == 3
    assert DeadLetter.objects.get(source=healthy).body_bytes() == b'{"n": 1}'

    # A poll that works clears the failure.
    broken.conventions = {"visibility_timeout": 5}
    broken.save(update_fields=["conventions"])
    assert ingest.run_once(broken) is False
    broken.refresh_from_db()
    assert (broken.state(), broken.consecutive_failures, broken.next_attempt_at) == ("ok", 0, None)


def _message(n: int, headers: dict[str, bytes], **fields) -> Message:
    return Message(destination="orders.DLQ", body=f"body {n}".encode(), key=None, headers=headers, **fields)


def test_it_stores_messages_whose_facts_are_nonsense_as_they_came(world):
    source = DeadLetterSource.objects.create(broker="sqs", destination="hostile-dlq")
    too_long = "E" * 1000
    nonsense = {
        "x-attempts": b"99999999999",  # more than the column holds
        "x-failed-at": b"99999999999999999999",  # no datetime holds it
        "x-switchyard-replay-of": b"99999999999999999999999",
        "x-exception-type": too_long.encode(),
        "x-death": b"[{'reason': '" + b"r" * 500 + b"', 'queue': 'payments'}]",
        "x-correlation-id": b"c" * 1000,
        "bin\x00name": b"\xff\x00",
    }
    created = ingest.store(
        source,
        [
            _message(0, nonsense),
            _message(1, {}, message_id="id-with-\x00-nul"),
            _message(2, {}, message_id="m" * 1000),
            _message(3, {}, message_id="m" * 1000 + "!"),  # same first 300 characters: still a message of its own
            _message(4, {"x-exception-type": b"<script>alert(1)</script>"}, parse_error="header block <b>bad</b>"),
        ],
    )
    assert len(created) == 5
    rows = {dl.body_bytes(): dl for dl in DeadLetter.objects.filter(source=source)}
    first = rows[b"body 0"]
    assert first.delivery_count is None and first.replay_of_id is None
    assert first.exception_type == too_long[:300] and len(first.reason) == 100 and len(first.correlation_id) == 200
    assert first.header_bytes()["bin\ufffdname"] == b"\xff\x00"
    assert rows[b"body 1"].message_id.startswith("sha256:")
    # Longer than the column: a digest, not the first 300 characters (which two different ids may share).
    assert rows[b"body 2"].message_id.startswith("sha256:") and rows[b"body 3"].message_id.startswith("sha256:")
    assert rows[b"body 2"].message_id != rows[b"body 3"].message_id

    # A source whose conventions are not what ingest reads (an admin's JSON): stored with the problem named.
    source.conventions = ["not", "a", "mapping"]
    source.save(update_fields=["conventions"])
    [odd] = ingest.store(source, [_message(5, {"x-exception-type": b"ValueError"})])
    assert odd.parse_error.startswith("the failure headers could not be read: AttributeError")
    assert odd.body_bytes() == b"body 5" and odd.headers == {"x-exception-type": "ValueError"}

    client = world.client(world.viewer)
    hostile = rows[b"body 4"]
    page = client.get(f"/dead-letters/{hostile.pk}/").content.decode()
    assert "header block &lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad</b>" not in page
    assert 'data-testid="parse-error"' in page
    inbox = client.get("/dead-letters/").content.decode()
    assert inbox.count('data-testid="parse-error-mark"') == 2  # body 4 and body 5
    assert client.get(f"/api/v1/dead-letters/{odd.pk}").json()["parse_error"] == odd.parse_error


def test_it_shows_each_sources_state_escaped(world):
    now = timezone.now()
    DeadLetterSource.objects.create(broker="kafka", destination="fine.DLQ")
    DeadLetterSource.objects.create(
        broker="sqs",
        destination="failing-dlq",
        last_error="<script>alert(1)</script>",
        consecutive_failures=4,
        next_attempt_at=now + timedelta(seconds=30),
    )
    DeadLetterSource.objects.create(
        broker="rabbitmq",
        destination="gone-dlq",
        last_error="NOT_FOUND - no queue",
        gone_since=now,
        next_attempt_at=now,
    )
    page = world.client(world.viewer).get("/dead-letters/sources/").content.decode()
    assert page.count('data-state="ok"') == 1 and page.count('data-state="failing"') == 1
    assert page.count('data-state="gone"') == 1 and "gone since" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "×4" in page


def test_it_reads_amqp_properties_as_py_amqp_does_and_keeps_what_it_cannot(settings):
    properties = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "application_headers": {"a": 1, "b": [1, "two"], "c": {"d": b"\xff"}},
        "delivery_mode": 2,
        "priority": 5,
        "correlation_id": "corr",
        "reply_to": "replies",
        "expiration": "60000",
        "message_id": "m-1",
        "timestamp": 1_700_000_000,
        "type": "OrderPlaced",
        "user_id": "guest",
        "app_id": "shop",
        "cluster_id": "c1",
    }
    raw = amqp.Message(b"", **properties)._serialize_properties()
    assert _lenient_properties(raw, 0) == decode_properties_basic(raw, 0)
    raw = amqp.Message(b"", message_id=b"\xff\xfe", type="T")._serialize_properties()
    with pytest.raises(UnicodeDecodeError):
        decode_properties_basic(raw, 0)
    assert _lenient_properties(raw, 0)[0] == {"message_id": b"\xff\xfe", "type": "T"}


def test_it_takes_a_gone_source_back_when_discovery_finds_its_dlq_again(destinations, settings):
    topic = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}.DLQ")
    missing = f"sy-{uuid.uuid4().hex[:10]}.DLQ"
    gone_since = timezone.now() - timedelta(hours=1)
    later = timezone.now() + timedelta(minutes=5)
    back = DeadLetterSource.objects.create(
        broker="kafka", destination=topic, gone_since=gone_since, next_attempt_at=later
    )
    still = DeadLetterSource.objects.create(
        broker="kafka", destination=missing, gone_since=gone_since, next_attempt_at=later
    )
    discovery.discover()
    back.refresh_from_db()
    still.refresh_from_db()
    assert back.gone_since is None and back.next_attempt_at is None  # polled in the next round
    assert still.gone_since == gone_since and still.next_attempt_at == later
    # And a poll of the missing topic says gone (subscribe checks the topic: no consumer waits on it).
    assert ingest.run_once(still) is False
    still.refresh_from_db()
    assert still.state() == "gone" and "no Kafka topic" in still.last_error


class _Proxy:
    """A TCP proxy to PostgreSQL that the test can cut and restore: a database outage for one process only."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it; close() alone would not
        except OSError:
            pass
        listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets = []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return


@pytest.mark.django_db(transaction=True)
def test_it_waits_out_a_database_outage_and_goes_on(destinations, tmp_path, settings):
    db = settings.DATABASES["default"]
    proxy = _Proxy((db["HOST"], int(db["PORT"])))
    proxy.start()
    sqs = brokers.get("sqs")
    dlq = destinations("sqs")
    source = DeadLetterSource.objects.create(broker="sqs", destination=dlq, conventions={"visibility_timeout": 2})
    stored = DeadLetter.objects.filter(source=source)
    sqs.publish_batch([OutgoingMessage(dlq, json.dumps({"n": n}).encode()) for n in range(2)])
    log = tmp_path / "ingest.log"
    url = f"postgresql://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"
    worker = procs.manage(
        "dlq_ingest", "--no-discovery", "--source", str(source.pk), log=log, extra_env={"DATABASE_URL": url}
    )
    try:
        wait_until(lambda: stored.count() == 2, 30)
        proxy.cut()
        sqs.publish_batch([OutgoingMessage(dlq, json.dumps({"n": n}).encode()) for n in range(2, 4)])
        wait_until(lambda: "the database is unreachable" in log.read_text(), 30)
        time.sleep(3)  # a few tries while it is down
        assert worker.poll() is None, log.read_text()[-3000:]
        proxy.start()  # the same port again
        wait_until(lambda: stored.count() == 4, 60)
        assert worker.poll() is None, log.read_text()[-3000:]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, log.read_text()[-3000:]
    finally:
        procs.kill(worker)
        if proxy._listener is not None:
            proxy.cut()
    assert sorted(json.loads(dl.body_bytes())["n"] for dl in stored) == [0, 1, 2, 3]
