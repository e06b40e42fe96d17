"""NATS JetStream dead letters without a DLQ stream: the max-deliveries advisories.

When a consumer gives up on a message (max_deliver reached), the server publishes an advisory on
`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>` that names the message only by its stream sequence;
the message itself stays in the stream. Advisories are plain NATS messages, lost when nobody listens, so Switchyard
captures them in a stream of its own (DLQ_NATS_ADVISORY_STREAM) and reads that through a durable consumer: an
advisory is acked only after the message it names is copied into the inbox and committed, like any other DLQ.

A source for advisories has the advisory subject (filter) as its destination, e.g.
`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.>` for every consumer of stream ORDERS.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings

from brokers.base import DestinationNotFound, Message, Subscription
from dlq import headers as h

log = logging.getLogger(__name__)

PREFIX = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."
EVERYTHING = PREFIX + ">"


def is_advisory(destination: str) -> bool:
    return destination.startswith(PREFIX)


def ensure_capture_stream(adapter) -> str:
    """The stream that keeps advisories until they are ingested (created once; advisories before it are gone)."""
    name = settings.DLQ_NATS_ADVISORY_STREAM
    # A week bounds what piles up while no ingest worker runs; the retention check warns before it drops advisories.
    adapter.ensure_destination(name, subjects=[EVERYTHING], max_age=7 * 24 * 3600)
    return name


def dead_letter(adapter, advisory: dict) -> Message | None:
    """The message an advisory names, with the failure facts as Switchyard's headers; None if the stream lost it."""
    stream, consumer, seq = advisory["stream"], advisory["consumer"], int(advisory["stream_seq"])
    try:
        stored = adapter.message_at(stream, seq)
    except DestinationNotFound:
        log.warning("max-deliveries advisory for %s seq %s: the message is no longer in the stream", stream, seq)
        return None
    deliveries = advisory.get("deliveries")
    stored.headers = {
        **stored.headers,
        # Facts, not message content: the replay drops these again (dlq.operations.DROPPED_HEADERS).
        h.EXCEPTION_TYPE: b"nats:max_deliveries",
        h.EXCEPTION_MESSAGE: f"consumer {consumer} of stream {stream} gave up after {deliveries} deliveries".encode(),
        h.FAILED_AT: str(advisory.get("timestamp", "")).encode(),
        h.ATTEMPTS: str(deliveries).encode(),
    }
    # The origin is the subject the message was published on: publishing there again puts it back in the stream.
    stored.headers.setdefault(h.ORIGINAL_DESTINATION, stored.destination.encode())
    stored.message_id = f"{stream}:{seq}"
    stored.delivery_count = deliveries
    return stored


class AdvisorySubscription(Subscription):
    """Reads advisories from the capture stream and yields the dead-lettered messages they name; acking one of
    those acks its advisory."""

    def __init__(self, adapter, source_destination: str, group: str, ack_wait: float = 30):
        self._adapter = adapter
        stream = ensure_capture_stream(adapter)
        self._advisories = adapter.subscribe(stream, group, filter_subject=source_destination, ack_wait=ack_wait)
        self._settled: list[Message] = []  # advisories whose message is gone: acked with the next ack()

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Message]:
        found = []
        for advisory in self._advisories.poll(max_messages, timeout):
            try:
                facts = json.loads(advisory.body)
                message = dead_letter(self._adapter, facts)
            except (ValueError, KeyError, TypeError):
                log.warning("not a max-deliveries advisory on %s: %r", advisory.destination, advisory.body[:200])
                message = None
            if message is None:
                self._settled.append(advisory)
                continue
            message.ack_token = advisory
            found.append(message)
        return found

    def ack(self, messages) -> None:
        settled, self._settled = self._settled, []
        self._advisories.ack(settled + [m.ack_token for m in messages])

    def nack(self, messages) -> None:
        self._advisories.nack([m.ack_token for m in messages])

    def close(self) -> None:
        self._advisories.close()
