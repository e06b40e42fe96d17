"""RabbitMQ without the management plugin: the queues the console knows by name (dead-letter sources and their
origins, the outbox's destinations) report depth and consumers over AMQP, and the consumers page lists them."""

import uuid

import kombu
import pytest
from django.db import transaction

from brokers.base import OutgoingMessage
from brokers.rabbitmq import RabbitMQAdapter
from console import brokers
from dlq.models import DeadLetterSource
from monitoring import sampler
from monitoring.models import ConsumerTarget
from monitoring.sampler import sample_all
from outbox.publishing import publish


@pytest.fixture
def stranger_queues(console_brokers):
    """make(name): a queue declared by another client, so the console's adapter has not heard of it."""
    url = console_brokers["rabbitmq"].url
    made = []
    with RabbitMQAdapter(url) as other:

        def make(name: str, messages: int = 0) -> str:
            other.ensure_destination(name)
            made.append(name)
            other.publish_batch([OutgoingMessage(name, b"m") for _ in range(messages)])
            return name

        yield make, other
        for name in made:
            other.delete_destination(name)


def test_it_watches_known_queues_without_the_management_api(world, console_brokers, stranger_queues, monkeypatch):
    make, other = stranger_queues
    assert brokers.get("rabbitmq").management_url is None, "this test is about RabbitMQ without its management API"
    monkeypatch.setattr(sampler, "_known_outbox", (0.0, {}))
    base = f"sy-{uuid.uuid4().hex[:10]}"
    origin = make(f"{base}-orders", messages=1)
    dead = make(f"{base}-orders_error", messages=3)
    relayed = make(f"{base}-shipping", messages=2)
    unknown = make(f"{base}-nobody-knows", messages=4)
    DeadLetterSource.objects.create(broker="rabbitmq", connection="default", destination=dead)
    with transaction.atomic():
        publish(f"rabbitmq:///{relayed}", "k1", "Shipped", {"n": 1})
    with kombu.Connection(console_brokers["rabbitmq"].url) as conn:
        # A consumer attached (basic.consume, unacked) while the sampler looks.
        conn.default_channel.basic_consume(queue=origin, callback=lambda message: None)
        sample_all()

    got = {t.name: t for t in ConsumerTarget.objects.filter(broker="rabbitmq")}
    assert got[dead].lag == 3 and got[dead].details["consumers"] == 0
    assert got[origin].details["consumers"] == 1
    assert got[relayed].lag == 2
    assert unknown not in got  # AMQP cannot list queues: only the management API would add the rest
    page = world.client(world.viewer).get("/consumers/?broker=rabbitmq").content.decode()
    for name in (dead, origin, relayed):
        assert name in page


def test_it_skips_a_known_queue_that_does_not_exist_and_reads_the_rest(console_brokers, stranger_queues):
    make, _ = stranger_queues
    present = make(f"sy-{uuid.uuid4().hex[:10]}", messages=2)
    depths = console_brokers["rabbitmq"].queue_depths(["sy-missing-1", present, "sy-missing-2"])
    assert list(depths) == [present]
    assert depths[present].ready == 2 and depths[present].consumers == 0
