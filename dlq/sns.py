"""Dead letters of SNS subscriptions: finding their DLQs, reading the envelope, and where a replay may go.

An SNS subscription's redrive policy names an SQS queue of the same account and region; SNS moves a message it could
not deliver there as it would have delivered it: wrapped in the notification envelope (Type, MessageId, TopicArn,
Message, Timestamp, signature fields, UnsubscribeURL, MessageAttributes), or as published with its attributes as the
queue message's own when raw message delivery is on. A DLQ one subscription uses takes that subscription as its
origin, since a raw delivery says nothing of where it came from; an envelope names its topic and, through its
UnsubscribeURL, its subscription.

The envelope's format is SNS's, not a broker client's: the pure functions of brokers.sns read it (no boto3 there).
"""

from __future__ import annotations

import dataclasses

from brokers import sns as sns_format
from brokers.base import Capability, DestinationNotFound, Message
from console.brokers import kind_supports


def discover(conn, adapter, found) -> list:
    """The DLQs subscriptions' redrive policies name, as sources (`found` is discovery's get-or-create). A DLQ used
    by one subscription gets it as origin ("sns:<topic>/<id>"); one shared by several gets none, and each
    envelope names its own subscription (raw deliveries into a shared DLQ cannot say)."""
    queues = {d.name for d in adapter.list_destinations()}
    users: dict[str, set[str]] = {}
    for subscription in adapter.topic_subscriptions():
        if subscription.dead_letter_queue:
            users.setdefault(subscription.dead_letter_queue, set()).add(subscription.destination)
    sources = []
    for dlq, origins in sorted(users.items()):
        retention = None
        if dlq in queues:
            try:
                retention = adapter.queue_attributes(dlq).get("MessageRetentionPeriod")
            except DestinationNotFound:
                retention = None
        origin = next(iter(origins)) if len(origins) == 1 else ""
        # A policy may name a queue deleted since: its source is kept (and shown as gone once polled).
        sources.append(found(conn, dlq, origin, int(retention) if retention else None, exists=dlq in queues))
    return sources


def read_envelope(source, m: Message) -> tuple[Message, str]:
    """On a connection with topic subscriptions, a message whose body is an SNS notification envelope comes back
    with the envelope's message attributes added to its headers (the queue message's own win a clash) and the
    origin the envelope names ("sns:<topic>/<subscription>", or "sns:<topic>"); anything else as it is, with "".
    The body is kept as it came: a replay to the subscription's endpoint delivers exactly what SNS would have."""
    if not kind_supports(source.broker, Capability.TOPIC_SUBSCRIPTIONS):
        return m, ""
    data = sns_format.envelope(m.body)
    if data is None:
        return m, ""
    headers = {**sns_format.envelope_attributes(data), **m.headers}
    return dataclasses.replace(m, headers=headers), sns_format.envelope_origin(data)
