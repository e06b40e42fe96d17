"""For the services: an idempotent consumer and retry-with-backoff-then-dead-letter, on any of the four brokers.

    kit = RetryingConsumer(brokers.get("sqs"), "orders", "billing", handle, dead_letter_to="orders-dlq")
    while running:
        kit.run_once()

`handle(message)` runs inside a transaction together with the processed-messages insert, so a message whose effects
were committed is never handled again, however often the broker delivers it. A handler that keeps failing is retried
with exponential backoff and full jitter, then published to the dead-letter destination with Switchyard's failure
headers (x-exception-type, ...), and only then acknowledged on the origin.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import connection, transaction

from brokers.base import BrokerAdapter, Message, OutgoingMessage
from console.backoff import backoff as delay
from dlq import headers as h

# What a dead letter must carry, most important first (SQS cannot carry them all with many headers of its own): the
# failure and its origin, the replay provenance (loop guard, canary re-failures), then the message's own identity
# (its event id links the outbox event, its type is part of the group's fingerprint, its correlation id links the
# saga), then the stack trace and counts. x-failed-at goes last: on SQS the DLQ message's own SentTimestamp is the
# same moment, and ingest falls back to it.
FAILURE_ORDER = [
    h.EXCEPTION_TYPE,
    h.ORIGINAL_DESTINATION,
    h.EXCEPTION_MESSAGE,
    h.REPLAY_OF,
    h.REPLAY_COUNT,
    h.REPLAY_OPERATION,
    "x-event-id",
    *h.DEFAULT_NAMES["message_type"][:2],
    *h.DEFAULT_NAMES["correlation_id"][:1],
    h.EXCEPTION_STACKTRACE,
    h.ATTEMPTS,
    h.FAILED_AT,
]


def processed_once(consumer: str, message_id: str) -> bool:
    """Record that `consumer` processed `message_id`; False if it already had. Call inside the handler's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO dlq_processedmessage (consumer, message_id, processed_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING id",
            [consumer, message_id[:300]],
        )
        return cursor.fetchone() is not None


def default_message_id(message: Message) -> str:
    """The producer's event id when there is one (it survives redelivery and replay), else the broker's id."""
    event_id = message.headers.get("x-event-id")
    if event_id:
        return event_id.decode(errors="replace")
    return message.message_id or hashlib.sha256(message.body).hexdigest()


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full jitter: spreads retries of many consumers that failed together."""
    return delay(attempt, base, cap, "full")


def failure_headers(
    message: Message, exc: BaseException, attempts: int, max_headers: int | None = None
) -> dict[str, bytes]:
    """The message's headers and the failure's facts; where the broker limits headers (SQS), the facts come first."""
    stack = "".join(traceback.format_exception(exc))[-4000:]
    facts = {
        h.EXCEPTION_TYPE: f"{type(exc).__module__}.{type(exc).__qualname__}",
        h.EXCEPTION_MESSAGE: str(exc)[:2000] or type(exc).__name__,
        h.EXCEPTION_STACKTRACE: stack,
        h.ORIGINAL_DESTINATION: message.destination,
        h.FAILED_AT: datetime.now(UTC).isoformat(),
        h.ATTEMPTS: str(attempts),
    }
    merged = {**message.headers, **{k: v.encode() for k, v in facts.items()}}
    if max_headers is None or len(merged) <= max_headers:
        return merged
    keep = [n for n in FAILURE_ORDER if n in merged] + [n for n in merged if n not in FAILURE_ORDER]
    return {n: merged[n] for n in keep[:max_headers]}


class RetryingConsumer:
    def __init__(
        self,
        adapter: BrokerAdapter,
        destination: str,
        group: str,
        handler: Callable[[Message], None],
        *,
        dead_letter_to: str,
        attempts: int = 3,
        base_delay: float = 0.05,
        max_delay: float = 5.0,
        consumer_name: str | None = None,
        message_id: Callable[[Message], str] = default_message_id,
        **subscribe_options,
    ):
        self.adapter = adapter
        self.handler = handler
        self.dead_letter_to = dead_letter_to
        self.attempts = attempts
        self.base_delay, self.max_delay = base_delay, max_delay
        self.consumer_name = consumer_name or f"{adapter.name}:{destination}:{group}"
        self.message_id = message_id
        self.subscription = adapter.subscribe(destination, group, **subscribe_options)
        self.handled = self.duplicates = self.dead_lettered = 0

    def run_once(self, max_messages: int = 10, timeout: float = 1.0) -> int:
        messages = self.subscription.poll(max_messages, timeout)
        for message in messages:
            self._process(message)
        # Acked only when every message is either committed or safely in the dead-letter destination.
        self.subscription.ack(messages)
        return len(messages)

    def _process(self, message: Message) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                with transaction.atomic():
                    if not processed_once(self.consumer_name, self.message_id(message)):
                        self.duplicates += 1
                        return
                    self.handler(message)
                self.handled += 1
                return
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                if attempt == self.attempts:
                    self._dead_letter(message, exc)
                    return
                time.sleep(backoff(attempt, self.base_delay, self.max_delay))

    def _dead_letter(self, message: Message, exc: BaseException) -> None:
        headers = failure_headers(message, exc, self.attempts, self.adapter.max_headers)
        self.adapter.publish_batch([OutgoingMessage(self.dead_letter_to, message.body, message.key, headers)])
        self.dead_lettered += 1

    def close(self) -> None:
        self.subscription.close()
