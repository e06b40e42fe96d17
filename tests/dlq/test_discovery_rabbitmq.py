"""Which RabbitMQ queues are dead-letter queues: from the management API's queues and bindings (a payload written by
hand after the API docs, since the machine's RabbitMQ has no management plugin), and from what the adapter declared."""

import json
import uuid
from pathlib import Path

from console import brokers
from dlq import discovery
from dlq.models import DeadLetterSource

PAYLOAD = json.loads((Path(__file__).parent / "fixtures" / "rabbitmq_management.json").read_text())


def test_it_selects_the_queues_other_queues_dead_letter_into():
    found = discovery.rabbitmq_dead_letter_queues(PAYLOAD["queues"], PAYLOAD["bindings"])
    assert found == {
        "orders-parking": "orders",  # bound to orders' DLX with its dead-letter routing key
        "payments.failed": "payments",  # default exchange: the routing key names the queue
        "notifications.dead": "",  # two queues share shared.dlx: each message's x-death names its origin
    }


def test_it_ignores_a_binding_to_the_dlx_with_another_routing_key():
    found = discovery.rabbitmq_dead_letter_queues(PAYLOAD["queues"], PAYLOAD["bindings"])
    assert "orders-audit" not in found and "invoices" not in found and "orders" not in found


def test_it_finds_a_dead_letter_queue_declared_through_the_adapter_without_the_management_api(db, destinations):
    adapter = brokers.get("rabbitmq")
    assert adapter.management_url is None  # the path under test is the one without the API
    base = f"sy-{uuid.uuid4().hex[:10]}"
    dlx, parking = f"{base}.dlx", destinations("rabbitmq", f"{base}.parking")
    adapter.bind_queue(parking, dlx, "dead")
    origin = destinations(
        "rabbitmq", base, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"}
    )
    discovery.discover()
    source = DeadLetterSource.objects.get(broker="rabbitmq", destination=parking)
    assert source.origin == origin and source.kind == "discovered"
    assert not DeadLetterSource.objects.filter(broker="rabbitmq", destination=origin).exists()
