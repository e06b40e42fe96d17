"""One dead connection never stalls the relay for the others: its rows wait, unattempted, for a per-connection
backoff, while rows to the live connections go out in the same batches; when it answers again its rows go out in
per-key order."""

import uuid

from brokers.connections import KafkaConnection
from console import brokers
from outbox.models import OutboxEvent
from outbox.relay import Relay
from tests.outbox.conftest import publish_events, seq_of

Status = OutboxEvent.Status


def test_it_puts_off_the_rows_of_a_dead_connection_and_sends_the_others(transactional_db, targets, settings):
    settings.OUTBOX_CONNECTION_BACKOFF_BASE_MS = 600_000  # stays down for the whole test once found down
    live = targets("kafka")
    topic = f"sy-dead-{uuid.uuid4().hex[:8]}"
    dead_uri = f"kafka://dead/{topic}"
    kafka = dict(settings.BROKERS["kafka"])
    # Nothing listens on port 9; a short message timeout so the first failed batch is quick.
    kafka["dead"] = KafkaConnection(bootstrap_servers="127.0.0.1:9", properties={"message.timeout.ms": 1500})
    settings.BROKERS = {**settings.BROKERS, "kafka": kafka}
    brokers.reset()
    try:
        publish_events(dead_uri, [("a", 0), ("a", 1), ("b", 0)])
        publish_events(live.uri, [("c", 0)])
        relay = Relay()
        relay.run_once()
        # The first batch tried the dead one once, found it down, and sent the live row beside it.
        dead = OutboxEvent.objects.filter(destination=dead_uri).order_by("id")
        assert [e.attempts for e in dead] == [1, 0, 1]
        assert [seq_of(m) for m in live.read(1)] == [("c", 0)]
        assert "kafka:dead" in relay._down

        # While it is down, later events to it wait without an attempt, and live ones keep going.
        publish_events(dead_uri, [("d", 0)])
        publish_events(live.uri, [("e", 0)])
        OutboxEvent.objects.filter(destination=dead_uri).update(next_attempt_at="2000-01-01T00:00Z")
        relay.run_once()
        assert [seq_of(m) for m in live.read(2)][-1] == ("e", 0)
        waiting = OutboxEvent.objects.get(destination=dead_uri, key="d")
        assert waiting.attempts == 0 and waiting.status == Status.PENDING
        assert waiting.last_error.startswith("not sent: kafka:dead is down (connection refused")
        assert waiting.next_attempt_at > OutboxEvent.objects.get(destination=live.uri, key="e").published_at

        # It comes back (the same cluster under the dead name) and a relay finds it answering: everything it held
        # goes out, in order per key.
        kafka["dead"] = KafkaConnection(bootstrap_servers=kafka["default"].bootstrap_servers)
        brokers.reset()
        live.adapter.ensure_destination(topic)
        OutboxEvent.objects.filter(destination=dead_uri).update(next_attempt_at="2000-01-01T00:00Z")
        relay = Relay()
        for _ in range(5):
            relay.run_once()
        assert set(OutboxEvent.objects.filter(destination=dead_uri).values_list("status", flat=True)) == {
            Status.PUBLISHED
        }
        got = [seq_of(m) for m in live.adapter.read(topic, 10, timeout=5)]
        assert got.index(("a", 0)) < got.index(("a", 1))
    finally:
        brokers.reset()
        try:
            live.adapter.delete_destination(topic)
        except Exception:  # noqa: BLE001 - clean-up is best effort
            pass
