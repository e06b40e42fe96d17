"""RabbitMQ's own dead-lettering, end to end against the real broker: a queue with x-dead-letter-exchange, a consumer
that rejects without requeue, the DLQ receiving it with x-death, ingest reading the facts from x-death, replay to the
origin, processed once."""

import json
import uuid

from brokers.base import OutgoingMessage
from console import brokers
from console.operations import execute
from dlq import discovery, ingest
from dlq import headers as h
from dlq.consumer_kit import RetryingConsumer
from dlq.models import DeadLetter, DeadLetterSource
from tests.dlq.conftest import wait_until


def test_it_ingests_a_rejected_message_from_x_death_and_replays_it_once(world, destinations):
    adapter = brokers.get("rabbitmq")
    base = f"sy-{uuid.uuid4().hex[:10]}"
    # Named unlike any DLQ suffix: discovery must find it through the origin's x-dead-letter-exchange.
    dlx, parking = f"{base}.dlx", destinations("rabbitmq", f"{base}.parking")
    adapter.bind_queue(parking, dlx, "dead")
    origin = destinations(
        "rabbitmq", base, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"}
    )
    event = {"order": 7}
    adapter.publish(origin, json.dumps(event).encode(), headers={"x-event-id": f"evt-{base}", "x-message-type": "Paid"})

    consumer = adapter.subscribe(origin, "billing")
    rejected = wait_until(lambda: consumer.poll(10, 0.5), 10)
    consumer.reject(rejected)  # requeue=False: RabbitMQ republishes it to the DLX with x-death
    consumer.close()

    discovery.discover()
    source = DeadLetterSource.objects.get(broker="rabbitmq", destination=parking)
    assert source.origin == origin
    dl = wait_until(lambda: ingest.run_once(source) and DeadLetter.objects.filter(source=source).first(), 15)
    facts = h.parse(dl.header_bytes())
    assert "x-death" in dl.headers
    assert (dl.origin, dl.reason, dl.delivery_count) == (origin, "rejected", 1)
    assert (facts.origin_exchange, facts.origin_routing_key) == ("", origin)  # published on the default exchange
    assert dl.exception_type == "rabbitmq:rejected" and dl.message_type == "Paid"
    assert json.loads(dl.body_bytes()) == event
    assert adapter.queue_depth(parking).ready == 0  # acked after the commit

    response = world.client(world.operator).post(
        "/api/v1/dead-letters/replay",
        {"ids": [dl.pk], "reason": "billing fixed", "idempotency_key": f"rmq-{base}"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert execute(response.json()["operation"]["id"]) == "succeeded"

    seen = []
    healthy = RetryingConsumer(adapter, origin, "billing", seen.append, dead_letter_to=parking)
    wait_until(lambda: healthy.run_once(timeout=0.5) is not None and seen, 15)
    assert seen[0].headers[h.REPLAY_OF] == str(dl.pk).encode() and "x-death" not in seen[0].headers
    adapter.publish_batch([OutgoingMessage(origin, seen[0].body, None, {"x-event-id": f"evt-{base}"})])
    wait_until(lambda: healthy.run_once(timeout=0.5) is not None and healthy.duplicates, 15)
    healthy.close()
    assert healthy.handled == 1 and healthy.duplicates == 1 and len(seen) == 1
