"""Find the brokers' dead-letter queues and make a DeadLetterSource for each one not yet known.

SQS: every queue's RedrivePolicy names its DLQ, so the origin is known. Kafka: topics matching DLQ_KAFKA_PATTERNS.
RabbitMQ: configured queues, plus (with the management API) queues named like a DLQ by DLQ_SUFFIXES. NATS: the
configured DLQ streams that exist. An admin's disabled source stays disabled: discovery only ever adds.
"""

from __future__ import annotations

import fnmatch
import json
import logging

from django.conf import settings

from brokers.base import BrokerError
from console import brokers
from dlq.models import DeadLetterSource

log = logging.getLogger(__name__)


def _found(broker: str, destination: str, origin: str = "", retention: int | None = None) -> DeadLetterSource | None:
    source, created = DeadLetterSource.objects.get_or_create(
        broker=broker,
        destination=destination,
        defaults={"origin": origin, "kind": DeadLetterSource.Kind.DISCOVERED, "retention_seconds": retention},
    )
    return source if created else None


def discover_sqs(adapter) -> list[DeadLetterSource]:
    found = []
    for dest in adapter.list_destinations():
        policy = adapter.queue_attributes(dest.name).get("RedrivePolicy")
        if not policy:
            continue
        dlq = json.loads(policy).get("deadLetterTargetArn", "").rsplit(":", 1)[-1]
        if dlq:
            retention = adapter.queue_attributes(dlq).get("MessageRetentionPeriod")
            found.append(_found("sqs", dlq, dest.name, int(retention) if retention else None))
    return found


def discover_kafka(adapter) -> list[DeadLetterSource]:
    return [
        _found("kafka", dest.name)
        for dest in adapter.list_destinations()
        if any(fnmatch.fnmatchcase(dest.name, pattern) for pattern in settings.DLQ_KAFKA_PATTERNS)
    ]


def discover_rabbitmq(adapter) -> list[DeadLetterSource]:
    names = set(settings.DLQ_RABBITMQ_QUEUES)
    names |= {q for q in adapter.queue_arguments() if any(q.endswith(s) for s in settings.DLQ_SUFFIXES)}
    return [_found("rabbitmq", name) for name in sorted(names)]


def discover_nats(adapter) -> list[DeadLetterSource]:
    streams = {d.name for d in adapter.list_destinations()}
    return [_found("nats", name) for name in settings.DLQ_NATS_STREAMS if name in streams]


DISCOVERERS = {"sqs": discover_sqs, "kafka": discover_kafka, "rabbitmq": discover_rabbitmq, "nats": discover_nats}


def discover() -> list[DeadLetterSource]:
    """New sources on every configured broker; an unreachable broker is logged and skipped."""
    created: list[DeadLetterSource] = []
    for name, adapter in brokers.configured().items():
        try:
            created += [s for s in DISCOVERERS[name](adapter) if s is not None]
        except BrokerError as exc:
            log.warning("DLQ discovery on %s: %s", name, exc)
    return created
