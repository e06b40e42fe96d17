"""Find the brokers' dead-letter queues and make a DeadLetterSource for each one not yet known.

SQS: every queue's RedrivePolicy names its DLQ, so the origin is known. Kafka: topics matching DLQ_KAFKA_PATTERNS.
RabbitMQ: configured queues, queues that other queues' x-dead-letter-exchange / -routing-key lead to, and queues
named like a DLQ by DLQ_SUFFIXES. NATS: the configured DLQ streams that exist, and the max-deliveries advisories.
An admin's disabled source stays disabled: discovery only ever adds.
"""

from __future__ import annotations

import fnmatch
import json
import logging

from django.conf import settings
from django.db import DatabaseError

from brokers.base import BrokerError, Capability, DestinationNotFound
from console import brokers
from dlq import advisories, conventions, sns
from dlq.models import DeadLetterSource

log = logging.getLogger(__name__)


def _found(
    conn, destination: str, origin: str = "", retention: int | None = None, exists: bool = True
) -> DeadLetterSource | None:
    """The source for a DLQ discovery found on connection `conn`; None if it was known already. `exists`: the broker
    listed it (not only the configuration named it), so a source marked gone is back: it is polled at once, no longer
    shown as gone."""
    source, created = DeadLetterSource.objects.get_or_create(
        broker=conn.kind,
        connection=conn.name,
        destination=destination,
        defaults={"origin": origin, "kind": DeadLetterSource.Kind.DISCOVERED, "retention_seconds": retention},
    )
    if not created and exists and source.gone_since is not None:
        back = DeadLetterSource.objects.filter(pk=source.pk, gone_since__isnull=False)
        if back.update(gone_since=None, next_attempt_at=None):
            log.warning("DLQ discovery: %s exists again (gone since %s)", source, source.gone_since.isoformat())
    return source if created else None


def discover_sqs(conn, adapter) -> list[DeadLetterSource]:
    found = []
    listed = adapter.list_destinations()
    names = {dest.name for dest in listed}
    for dest in listed:
        try:
            policy = adapter.queue_attributes(dest.name).get("RedrivePolicy")
            dlq = json.loads(policy).get("deadLetterTargetArn", "").rsplit(":", 1)[-1] if policy else ""
        except (DestinationNotFound, ValueError, AttributeError):
            continue  # deleted since it was listed, or a policy that does not parse: it names no DLQ
        if not dlq:
            continue
        try:
            retention = adapter.queue_attributes(dlq).get("MessageRetentionPeriod") if dlq in names else None
        except DestinationNotFound:
            retention = None
        # A redrive policy may name a queue deleted since: its source is kept (and shown as gone once polled).
        found.append(_found(conn, dlq, dest.name, int(retention) if retention else None, exists=dlq in names))
    # Frameworks that move failures themselves, with no redrive policy: MassTransit's <queue>_error and _skipped,
    # NServiceBus's error.
    found += [_found(conn, name) for name in sorted(names) if conventions.is_framework_queue(name)]
    return found


def discover_kafka(conn, adapter) -> list[DeadLetterSource]:
    return [
        _found(conn, dest.name)
        for dest in adapter.list_destinations()
        if any(fnmatch.fnmatchcase(dest.name, pattern) for pattern in settings.DLQ_KAFKA_PATTERNS)
    ]


def rabbitmq_dead_letter_queues(queues: list[dict], bindings: list[dict]) -> dict[str, str]:
    """The DLQs among `queues` (management API /api/queues items: name, arguments) -> their origin queue ("" when
    several queues dead-letter into it; each message's x-death names its own then).

    A queue is a DLQ when another queue's x-dead-letter-exchange routes into it: it is bound (`bindings`, items of
    /api/bindings) to that exchange — with the dead-letter routing key when one is set, since RabbitMQ republishes
    with it — or, for the default exchange (""), it is named by that x-dead-letter-routing-key.
    """
    names = {q["name"] for q in queues}
    origins: dict[str, set[str]] = {}
    for queue in queues:
        arguments = queue.get("arguments") or {}
        if "x-dead-letter-exchange" not in arguments:
            continue
        exchange = arguments["x-dead-letter-exchange"] or ""
        routing_key = arguments.get("x-dead-letter-routing-key")
        if exchange == "":
            targets = {routing_key} & names if routing_key else set()
        else:
            targets = {
                b["destination"]
                for b in bindings
                if b.get("source") == exchange
                and b.get("destination_type", "queue") == "queue"
                # A routing key that the binding does not match could still reach a fanout or topic binding; those
                # bindings have "" or a pattern, taken as a match rather than missing a DLQ.
                and (routing_key is None or b.get("routing_key") in (routing_key, "", "#"))
            }
            if routing_key in names:
                targets.add(routing_key)
        for target in targets - {queue["name"]}:
            origins.setdefault(target, set()).add(queue["name"])
    return {dlq: next(iter(o)) if len(o) == 1 else "" for dlq, o in sorted(origins.items())}


def discover_rabbitmq(conn, adapter) -> list[DeadLetterSource]:
    """Configured queues, queues named like a DLQ, and queues other queues dead-letter into. The queue list comes
    from the management API when configured, else from what this process's adapter declared (AMQP cannot list)."""
    arguments = adapter.queue_arguments()
    queues = [{"name": name, "arguments": args} for name, args in arguments.items()]
    found = rabbitmq_dead_letter_queues(queues, adapter.bindings())
    for name in settings.DLQ_RABBITMQ_QUEUES:
        found.setdefault(name, "")
    for name in arguments:
        if any(name.endswith(s) for s in settings.DLQ_SUFFIXES) or conventions.is_framework_queue(name):
            found.setdefault(name, "")
    # A configured queue the broker did not list may not exist: only a listed one counts as back (see _found).
    return [_found(conn, name, origin, exists=name in arguments) for name, origin in sorted(found.items())]


def discover_nats(conn, adapter) -> list[DeadLetterSource]:
    streams = {d.name for d in adapter.list_destinations()}
    found = [_found(conn, name) for name in settings.DLQ_NATS_STREAMS if name in streams]
    if settings.DLQ_NATS_ADVISORIES:
        # One source for every stream's max-deliveries advisories; the capture stream must exist before they fire.
        advisories.ensure_capture_stream(adapter)
        found.append(_found(conn, advisories.EVERYTHING))
    return found


# How DLQs are found follows what the adapter can do, not its name: a queue's redrive policy names its DLQ, topics
# are DLQs by name, dead-letter exchanges lead to queues, streams hold dead letters and advisories name them.
DISCOVERERS = (
    (Capability.REDRIVE_POLICY, discover_sqs),
    (Capability.TOPIC_PATTERNS, discover_kafka),
    (Capability.DEAD_LETTER_EXCHANGE, discover_rabbitmq),
    (Capability.DELIVERY_ADVISORIES, discover_nats),
    # SNS: subscriptions' redrive policies name their DLQs (dlq/sns.py).
    (Capability.TOPIC_SUBSCRIPTIONS, lambda conn, adapter: sns.discover(conn, adapter, _found)),
)


def discover() -> list[DeadLetterSource]:
    """New sources on every configured connection; one that is unreachable is logged and skipped, and so is one whose
    discovery fails in any other way (with its traceback): the others are still searched."""
    created: list[DeadLetterSource] = []
    for conn in brokers.connections():
        try:
            adapter = conn.adapter()
            for capability, discover_on in DISCOVERERS:
                if adapter.supports(capability):
                    created += [s for s in discover_on(conn, adapter) if s is not None]
        except (BrokerError, brokers.NotConfigured) as exc:
            log.warning("DLQ discovery on %s: %s", conn, exc)
        except DatabaseError:
            raise  # the caller waits out an outage
        except Exception:  # noqa: BLE001 - one connection's surprise must not hide the others' DLQs
            log.exception("DLQ discovery on %s failed", conn)
    return created
