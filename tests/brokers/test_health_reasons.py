"""Every adapter says in words why a broker cannot be reached, quickly and without raising: an unknown host, a port
nobody listens on, a server that accepts and never answers."""

import socket
import time

import pytest

from brokers.kafka import KafkaAdapter
from brokers.nats import NatsAdapter
from brokers.rabbitmq import RabbitMQAdapter
from brokers.sqs import SqsAdapter
from tools.services import free_port

ADAPTERS = {
    "kafka": lambda host, port: KafkaAdapter(f"{host}:{port}"),
    "sqs": lambda host, port: SqsAdapter(
        endpoint_url=f"http://{host}:{port}", access_key_id="k", secret_access_key="s"
    ),
    "rabbitmq": lambda host, port: RabbitMQAdapter(f"amqp://guest:guest@{host}:{port}//"),
    "nats": lambda host, port: NatsAdapter(f"nats://{host}:{port}"),
}


def _health(adapter):
    started = time.monotonic()
    try:
        return adapter.health(), time.monotonic() - started
    finally:
        adapter.close()


@pytest.mark.parametrize("broker", ADAPTERS)
def test_it_says_the_host_is_unknown(broker):
    health, took = _health(ADAPTERS[broker]("no-such-broker.invalid", 4242))
    assert (health.reachable, health.reason) == (False, "host unknown"), health.error
    assert took <= 6


@pytest.mark.parametrize("broker", ADAPTERS)
def test_it_says_the_connection_was_refused(broker):
    health, took = _health(ADAPTERS[broker]("127.0.0.1", free_port()))
    assert (health.reachable, health.reason) == (False, "connection refused"), health.error
    assert took <= 6


@pytest.mark.parametrize("broker", ADAPTERS)
def test_it_says_a_silent_server_timed_out(broker):
    with socket.socket() as silent:  # the kernel completes the TCP handshake; nothing ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        health, took = _health(ADAPTERS[broker]("127.0.0.1", silent.getsockname()[1]))
    assert (health.reachable, health.reason) == (False, "timed out"), health.error
    assert took <= 6
