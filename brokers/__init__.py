"""One adapter per broker (Kafka, SQS, RabbitMQ, NATS) behind one small interface. Knows nothing of Django.

Import an adapter from its module (`from brokers.kafka import KafkaAdapter`) or build the configured ones with
`brokers.registry.build_adapters`; the shared types live in `brokers.base` and are re-exported here.
"""

from brokers.base import (
    REASONS,
    BrokerAdapter,
    BrokerConfigError,
    BrokerError,
    BrokerUnavailable,
    Destination,
    DestinationNotFound,
    Health,
    Message,
    OutgoingMessage,
    PublishError,
    PublishResult,
    Subscription,
)

__all__ = [
    "REASONS",
    "BrokerAdapter",
    "BrokerConfigError",
    "BrokerError",
    "BrokerUnavailable",
    "Destination",
    "DestinationNotFound",
    "Health",
    "Message",
    "OutgoingMessage",
    "PublishError",
    "PublishResult",
    "Subscription",
]
