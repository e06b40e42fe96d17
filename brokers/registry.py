"""Build the adapters for the brokers a deployment has configured."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from brokers.base import BrokerAdapter

# Imported only when configured: boto3 alone adds a noticeable fraction of a second to every process start.
ADAPTERS = {
    "kafka": "brokers.kafka.KafkaAdapter",
    "sqs": "brokers.sqs.SqsAdapter",
    "rabbitmq": "brokers.rabbitmq.RabbitMQAdapter",
    "nats": "brokers.nats.NatsAdapter",
}


def adapter_class(name: str) -> type[BrokerAdapter]:
    try:
        module, _, attribute = ADAPTERS[name].rpartition(".")
    except KeyError:
        raise ValueError(f"unknown broker {name!r}; known: {', '.join(ADAPTERS)}") from None
    return getattr(importlib.import_module(module), attribute)


def build_adapters(config: Mapping[str, Mapping]) -> dict[str, BrokerAdapter]:
    """One adapter per configured broker, e.g. {"kafka": {"bootstrap_servers": "127.0.0.1:9092"}}.

    A broker whose options are empty (or None) is not configured and gets no adapter. Creating an adapter does not
    connect; the first call does.
    """
    return {name: adapter_class(name)(**options) for name, options in config.items() if options}
