"""The RabbitMQ adapter's management-API paths, against the machine's real RabbitMQ with its management plugin
(`make test` enables it: `rabbitmq-plugins enable rabbitmq_management`)."""

import os
import time
import uuid

import pytest

from brokers.base import OutgoingMessage
from brokers.rabbitmq import RabbitMQAdapter
from tools import services

MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")


@pytest.fixture
def managed():
    url = os.environ.get("RABBITMQ_URL") or services.SYSTEM_URLS["RABBITMQ_URL"]
    if not services.is_reachable(MANAGEMENT_URL):
        pytest.fail(f"RabbitMQ management API at {MANAGEMENT_URL} does not answer; `make test` enables the plugin")
    with RabbitMQAdapter(url, management_url=MANAGEMENT_URL) as adapter:
        yield adapter


def test_it_lists_queues_arguments_bindings_and_depth_through_the_management_api(managed):
    suffix = uuid.uuid4().hex[:8]
    origin, dlq, dlx = f"orders-{suffix}", f"orders-{suffix}.parked", f"dlx-{suffix}"
    managed.ensure_destination(dlq)
    managed.bind_queue(dlq, dlx, routing_key=origin)
    managed.ensure_destination(origin, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": origin})
    try:
        for i in range(3):
            managed.publish(origin, f"m{i}".encode())
        # A second adapter knows nothing it declared itself: what it sees comes from the management API.
        with RabbitMQAdapter(managed.url, management_url=MANAGEMENT_URL) as fresh:
            assert {origin, dlq} <= {d.name for d in fresh.list_destinations()}
            assert fresh.health().destinations >= 2
            assert fresh.queue_arguments()[origin]["x-dead-letter-exchange"] == dlx
            assert {"source": dlx, "destination": dlq, "routing_key": origin} in [
                {k: b[k] for k in ("source", "destination", "routing_key")} for b in fresh.bindings()
            ]
            depth = fresh.queue_depth(origin)  # current at once: ready comes from the passive declare
            assert depth.ready == 3 and depth.in_flight == 0
            # Discovery's selection over what the management API returned: the parked queue is a DLQ of `origin`.
            from dlq.discovery import rabbitmq_dead_letter_queues

            queues = [{"name": n, "arguments": a} for n, a in fresh.queue_arguments().items()]
            assert rabbitmq_dead_letter_queues(queues, fresh.bindings())[dlq] == origin
    finally:
        for name in (origin, dlq):
            managed.delete_destination(name)


def test_it_adds_unacked_counts_from_the_management_api_to_the_passive_declares(managed):
    queue = f"depths-{uuid.uuid4().hex[:8]}"
    managed.ensure_destination(queue)
    try:
        managed.publish_batch([OutgoingMessage(queue, f"m{i}".encode()) for i in range(4)])
        sub = managed.subscribe(queue, "reader")
        try:
            held = sub.poll(1, timeout=5)  # one delivered and not yet acknowledged
            assert len(held) == 1
            deadline = time.monotonic() + 30  # the management API's figures refresh every few seconds
            while True:
                depths = managed.queue_depths([queue, f"{queue}-missing"])
                if depths[queue].in_flight == 1 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert list(depths) == [queue]
            assert depths[queue].ready == 3 and depths[queue].in_flight == 1
        finally:
            sub.close()
    finally:
        managed.delete_destination(queue)
