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
import logging

from brokers import sns as sns_format
from brokers.base import BrokerError, Capability, DestinationNotFound, Message
from console.brokers import kind_supports
from dlq import conventions

log = logging.getLogger(__name__)


def discover(conn, adapter, found) -> list:
    """The DLQs subscriptions' redrive policies name, as sources (`found` is discovery's get-or-create). A DLQ used
    by one subscription gets it as origin ("sns:<topic>/<id>"); one shared by several gets none, and each
    envelope names its own subscription (raw deliveries into a shared DLQ cannot say)."""
    queues = {d.name for d in adapter.list_destinations()}
    try:
        subscriptions = adapter.topic_subscriptions()
    except BrokerError as exc:
        # SNS refused (an emulator without it, such as ElasticMQ; credentials allowed SQS only): the queues'
        # own DLQs are found all the same, by their redrive policies.
        log.info("DLQ discovery on %s: SNS subscriptions could not be listed: %s", conn, exc)
        return []
    users: dict[str, set[str]] = {}
    for subscription in subscriptions:
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


def read_envelope(source, m: Message) -> tuple[Message, str, str]:
    """On a connection with topic subscriptions, a message whose body is an SNS notification envelope comes back
    with the envelope's message attributes added to its headers (the queue message's own win a clash), the origin
    the envelope names ("sns:<topic>/<subscription>", or "sns:<topic>") and the convention (dlq.conventions) for the
    sources page; a raw delivery into a subscription's DLQ as it is, with that convention; anything else as it is,
    with "" and "". The body is kept as it came: a replay to the subscription's endpoint delivers exactly what SNS
    would have."""
    if not kind_supports(source.broker, Capability.TOPIC_SUBSCRIPTIONS):
        return m, "", ""
    data = sns_format.envelope(m.body)
    if data is None:
        # Raw deliveries carry nothing of SNS: the source's origin (a subscription, set by discovery) tells.
        subscription = sns_format.split(source.origin or "")
        return m, "", conventions.SNS_RAW if subscription and subscription[1] else ""
    headers = {**sns_format.envelope_attributes(data), **m.headers}
    return dataclasses.replace(m, headers=headers), sns_format.envelope_origin(data), conventions.SNS_ENVELOPE


def replay_target(broker: str, destination: str, republish: bool) -> tuple[str | None, str]:
    """(where a replay to `destination` on connection `broker` goes, or None with the reason it is refused).

    A subscription's dead letter goes to that subscription's endpoint only. A topic fans the message out to every
    subscriber again, so it is a destination only by the explicit choice `republish` (republish to the topic),
    which turns a subscription into its topic; without it a topic is refused. Anything that is not SNS is left
    as it is, chosen or not."""
    from console import brokers  # the adapter registry: settings are read at call time

    if not kind_supports(broker, Capability.TOPIC_SUBSCRIPTIONS):
        return destination, ""
    try:
        adapter = brokers.by_key(broker).adapter()
    except brokers.NotConfigured:
        return destination, ""  # the delivery fails with that reason, as for any other destination
    if republish:
        return adapter.topic_of(destination) or destination, ""
    if adapter.fans_out(destination):
        return None, (
            f"{destination} is an SNS topic: a replay there fans out to every subscriber; "
            "choose republish to the topic to do that"
        )
    return destination, ""


def subscription_letters(qs) -> int:
    """How many of the dead letters `qs` came from an SNS subscription (their replay goes to its endpoint only, or
    to the topic by choice): what the replay preview warns about. Counted per (connection, origin)."""
    from django.db.models import Count

    from console import brokers

    pairs = qs.order_by().values_list("source__broker", "source__connection", "origin").annotate(n=Count("id"))
    count = 0
    for broker, connection, origin, n in pairs[:1000]:
        if not origin or not kind_supports(broker, Capability.TOPIC_SUBSCRIPTIONS):
            continue
        try:
            adapter = brokers.get(broker, connection)
        except brokers.NotConfigured:
            continue
        if adapter.topic_of(origin) and not adapter.fans_out(origin):
            count += n
    return count
