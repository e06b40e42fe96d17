"""The demo traffic `make run` shows: an order goes through a saga, the outbox, a broker, a failing consumer, the
broker's dead-letter destination and the Switchyard inbox — all on the real services."""

import random
import time
import uuid

from demo.traffic import Demo, Names, teardown
from dlq import discovery, ingest
from dlq.models import DeadLetter, DeadLetterSource
from outbox.models import OutboxEvent
from outbox.relay import Relay
from sagas.models import SagaInstance


def test_it_sends_a_poison_order_all_the_way_to_the_dead_letter_inbox(transactional_db, settings):
    names = Names(suffix=f"-{uuid.uuid4().hex[:6]}")
    settings.DLQ_RABBITMQ_QUEUES = [names.dlq("rabbitmq")]
    demo = Demo(random.Random(7), names)
    try:
        assert set(demo.used) == {"kafka", "sqs", "rabbitmq", "nats"}
        saga_id = demo.tick(poison="kafka")
        saga = SagaInstance.objects.get(pk=saga_id)
        assert saga.saga_type == "demo.order" and saga.correlation_id == "ORD-000001"
        assert OutboxEvent.objects.filter(correlation_id="ORD-000001").count() == 4

        relay = Relay()
        try:
            while relay.run_once():
                pass
        finally:
            relay.close()
        assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"published"}

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(k.dead_lettered for k in demo.consumers) < 1:
            demo.consume(budget=10)
        assert [k.dead_lettered for k in demo.consumers if k.adapter.name == "kafka"] == [1]
        # The other brokers' consumers handled their copy of the same order.
        assert sum(k.handled for k in demo.consumers) >= 1

        discovery.discover()
        source = DeadLetterSource.objects.get(broker="kafka", destination=names.dlq("kafka"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not DeadLetter.objects.filter(source=source).exists():
            ingest.run_once(source)
        letter = DeadLetter.objects.get(source=source)
        assert letter.origin == names.orders
        assert letter.exception_type == "demo.traffic.PoisonMessage"
        assert letter.message_type == "OrderPlaced"  # the outbox's x-event-type header survives dead-lettering
        assert "cannot process order 1" in letter.exception_message
        assert letter.saga() == saga  # by the correlation id the outbox event carried
    finally:
        demo.close()
        ingest.close_all()
        teardown(names)  # the machine's RabbitMQ and NATS outlive the test run
