"""NATS JetStream without a DLQ stream: a consumer naks a message until max_deliver; the server's max-deliveries
advisory is captured, the message copied from the stream by its sequence, replayed to its subject, processed once."""

import json
import uuid

from console import brokers
from console.operations import execute
from dlq import advisories, ingest
from dlq import headers as h
from dlq.consumer_kit import RetryingConsumer
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq.conftest import wait_until


def test_it_copies_a_message_that_hit_max_deliveries_and_replays_it_once(world, destinations):
    adapter = brokers.get("nats")
    stream = destinations("nats", f"SY{uuid.uuid4().hex[:10]}")
    source = DeadLetterSource.objects.create(broker="nats", destination=f"{advisories.PREFIX}{stream}.>")
    assert ingest.run_once(source, timeout=0.1) is False  # creates the capture stream before any advisory fires
    event_id = f"evt-{stream}"
    adapter.publish(
        stream, json.dumps({"sku": "x"}).encode(), headers={"x-event-id": event_id, "x-message-type": "Pick"}
    )

    worker = adapter.subscribe(stream, "picker", max_deliver=3, ack_wait=1)
    deliveries = 0
    for _ in range(10):  # nak every delivery; the server stops after max_deliver and sends the advisory
        got = worker.poll(10, 0.3)
        deliveries += len(got)
        worker.nack(got)
    worker.close()
    assert deliveries == 3

    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 15)
    assert (dl.origin, dl.delivery_count, dl.message_id) == (stream, 3, f"{stream}:1")
    assert dl.exception_type == "nats:max_deliveries" and "picker" in dl.exception_message
    assert dl.convention == "nats-max-deliveries"
    assert dl.message_type == "Pick" and json.loads(dl.body_bytes()) == {"sku": "x"}
    assert ingest.run_once(source, timeout=0.3) is False  # the advisory was acked after the commit

    response = world.client(world.operator).post(
        "/api/v1/dead-letters/replay",
        {"ids": [dl.pk], "reason": "picker fixed", "idempotency_key": f"nats-{stream}"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert execute(response.json()["operation"]["id"]) == "succeeded"

    # The same durable consumer, healthy now: it gave up on sequence 1 and gets the replay (sequence 2).
    seen = []
    healthy = RetryingConsumer(
        adapter, stream, "picker", seen.append, dead_letter_to=f"{stream}.dead", max_deliver=3, ack_wait=1
    )
    wait_until(lambda: healthy.run_once(timeout=0.3) is not None and seen, 15)
    assert seen[0].headers[h.REPLAY_OF] == str(dl.pk).encode()
    assert h.EXCEPTION_TYPE not in seen[0].headers and h.ATTEMPTS not in seen[0].headers
    adapter.publish(stream, seen[0].body, headers={"x-event-id": event_id, "Nats-Msg-Id": "again"})
    wait_until(lambda: healthy.run_once(timeout=0.3) is not None and healthy.duplicates, 15)
    healthy.close()
    assert healthy.handled == 1 and healthy.duplicates == 1 and len(seen) == 1
