"""Warn before a broker DLQ's own retention drops messages that Switchyard has not ingested yet.

The check runs as a beat job and writes its finding onto the DeadLetterSource, so the pages and the API show it
without a broker round trip. "Oldest message not yet ingested":
- SQS: the API has no age of the oldest message (ApproximateAgeOfOldestMessage is a CloudWatch metric, not a queue
  attribute), so one message is peeked and its SentTimestamp used — a standard queue returns some message, not
  necessarily the oldest, so this is a lower bound. If every message is in flight (none to peek), the source's last
  ingest time stands in: nothing newer than that has been taken out of the queue since.
- Kafka: the ingest group's committed offset per partition is the first message not ingested; its timestamp, read
  by offset, against the topic's retention.ms (DescribeConfigs).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from brokers.base import BrokerError
from console import brokers
from dlq import ingest
from dlq.models import DeadLetterSource

log = logging.getLogger(__name__)


def sqs_oldest(adapter, source: DeadLetterSource) -> tuple[int | None, datetime | None]:
    attributes = adapter.queue_attributes(source.destination)
    retention = int(attributes["MessageRetentionPeriod"]) if attributes.get("MessageRetentionPeriod") else None
    waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
    if not waiting and not in_flight:
        return retention, None
    peeked = [m.timestamp for m in adapter.read(source.destination, 1, timeout=1) if m.timestamp]
    if peeked:
        return retention, min(peeked)
    return retention, source.last_ingest_at or source.created_at


def kafka_oldest(adapter, source: DeadLetterSource) -> tuple[int | None, datetime | None]:
    retention_ms = int(adapter.topic_config(source.destination).get("retention.ms", -1))
    retention = retention_ms // 1000 if retention_ms > 0 else None
    offsets = adapter.group_offsets(ingest.group_name(source), topics=[source.destination])
    earliest = adapter.end_offsets([(o.topic, o.partition) for o in offsets], "earliest")
    oldest = None
    for o in offsets:
        start = max(o.committed or 0, earliest.get((o.topic, o.partition), 0))
        if start >= o.end:
            continue  # everything on this partition is ingested
        message = adapter.message_at(o.topic, o.partition, start, timeout=3)
        if message is not None and message.timestamp and (oldest is None or message.timestamp < oldest):
            oldest = message.timestamp
    return retention, oldest


CHECKS = {"sqs": sqs_oldest, "kafka": kafka_oldest}


def warning(source: DeadLetterSource, retention: int | None, oldest: datetime | None, now: datetime) -> str:
    """The text operators see, or "" when the oldest pending message is well inside the retention."""
    if not retention or oldest is None:
        return ""
    age = (now - oldest).total_seconds()
    if age * 100 < retention * settings.DLQ_RETENTION_WARN_PERCENT:
        return ""
    left = max(0.0, retention - age)
    stopped = "" if source.enabled else " Ingest of this source is disabled."
    return (
        f"{source}: the oldest message not yet ingested is {_span(age)} old; the broker deletes messages after "
        f"{_span(retention)}, so it is lost in about {_span(left)} unless it is ingested.{stopped}"
    )


def _span(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def check(source: DeadLetterSource) -> str:
    """Check one source against its broker and store the outcome on it; returns the warning ("" if none)."""
    now = timezone.now()
    retention, oldest = CHECKS[source.broker](brokers.get(source.broker), source)
    text = warning(source, retention, oldest, now)
    source.retention_seconds, source.oldest_pending_at = retention, oldest
    source.retention_warning, source.retention_checked_at = text, now
    source.save(update_fields=["retention_seconds", "oldest_pending_at", "retention_warning", "retention_checked_at"])
    return text


def check_all() -> list[str]:
    """Every SQS and Kafka source on a configured broker; a broker that fails is logged and its sources skipped."""
    configured = brokers.configured()
    found = []
    for source in DeadLetterSource.objects.filter(broker__in=[b for b in CHECKS if b in configured]):
        try:
            text = check(source)
        except (BrokerError, brokers.NotConfigured) as exc:
            log.warning("retention check of %s: %s", source, exc)
            continue
        if text:
            found.append(text)
    return found


def warnings() -> list[dict]:
    """The stored warnings, for the pages and GET /api/v1/dead-letter-groups."""
    return [s.warning_json() for s in DeadLetterSource.objects.exclude(retention_warning="")]
