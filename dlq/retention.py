"""Warn before a broker DLQ's own retention drops messages that Switchyard has not ingested yet.

The check runs as a beat job and writes its finding onto the DeadLetterSource, so the pages and the API show it
without a broker round trip. "Oldest message not yet ingested", as each adapter's pending_age() finds it:
- SQS: the API has no age of the oldest message (ApproximateAgeOfOldestMessage is a CloudWatch metric, not a queue
  attribute), so one message is peeked and its SentTimestamp used — a standard queue returns some message, not
  necessarily the oldest, so this is a lower bound. If every message is in flight (none to peek), the source's last
  ingest time stands in: nothing newer than that has been taken out of the queue since.
- Kafka: the ingest group's committed offset per partition is the first message not ingested; its timestamp, read
  by offset, against the topic's retention.ms (DescribeConfigs).
- RabbitMQ: the queue's message TTL (x-message-ttl or a policy's message-ttl, the lower; policies only through the
  management API). Queues are FIFO, so the head is the oldest message not ingested: it is peeked (basic_get, then
  rejected with requeue) for the time of its latest x-death, else its timestamp property, else the source's last
  ingest time as for SQS. Messages unacknowledged with some consumer cannot be peeked; if only those are left (the
  management API counts them), the last ingest time stands in too.
- NATS, a DLQ stream: its max_age against the first message the ingest durable has not acked (the one after its ack
  floor; the stream's first message if the durable does not exist yet).
- NATS, max-deliveries advisories: the message at risk is the one each pending advisory names in its origin stream,
  dropped by that stream's max_age; and the advisory itself, dropped by the capture stream's max_age. The first
  ADVISORY_SCAN advisories after the ingest durable's ack floor are looked at (some may have been acked out of
  order), and the one nearest its deletion counts.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from brokers.base import BrokerError, Capability, DestinationNotFound, Message
from console import brokers
from dlq import advisories, ingest
from dlq.models import DeadLetterSource

log = logging.getLogger(__name__)

# Pending advisories looked at per check of an advisory source: each costs up to two NATS requests.
ADVISORY_SCAN = 50
# What JetStream accepts as a stream name: an advisory naming anything else is not one the server wrote.
_STREAM_NAME = re.compile(r"[^\s.*>/\\]{1,255}")


def oldest_pending(adapter, source: DeadLetterSource) -> tuple[int | None, datetime | None]:
    """(retention, oldest not ingested) of `source`, as its adapter tells them (each broker's way is in its
    pending_age); advisory sources are the dead-letter app's own reading of JetStream's advisories."""
    if adapter.supports(Capability.DELIVERY_ADVISORIES) and advisories.is_advisory(source.destination):
        return nats_advisory_oldest(adapter, source)
    age = adapter.pending_age(source.destination, ingest.group_name(source))
    if age.hidden:
        # Messages wait but none could be looked at: nothing newer than the last ingest has left the queue since.
        return age.retention, age.oldest or source.last_ingest_at or source.created_at
    return age.retention, age.oldest


def nats_advisory_oldest(adapter, source: DeadLetterSource) -> tuple[int | None, datetime | None]:
    """The (retention, stored at) of the pending dead letter closest to deletion, as a share of its retention."""
    capture = settings.DLQ_NATS_ADVISORY_STREAM
    try:
        pending = adapter.unacked(capture, ingest.group_name(source), source.destination, ADVISORY_SCAN)
    except DestinationNotFound:
        return None, None  # no capture stream yet, so no advisory kept
    retentions = {capture: _max_age(adapter, capture)}
    candidates: list[tuple[int | None, datetime]] = []  # (retention, stored at) of what may still be lost
    for advisory in pending:
        named = _advisory_origin(advisory)
        if named is None:
            continue
        stream, seq = named
        if stream not in retentions:
            retentions[stream] = _max_age(adapter, stream)
        try:
            stored_at = adapter.stored_at(stream, seq)
        except DestinationNotFound:
            continue  # already gone from its stream: ingest settles the advisory, there is nothing left to save
        if not candidates:
            # Advisories are stored in order: the first one still worth ingesting is the first the capture drops.
            candidates.append((retentions[capture], advisory.timestamp))
        candidates.append((retentions[stream], stored_at))
    now = timezone.now()
    at_risk = [(r, at) for r, at in candidates if r and at]
    if at_risk:
        return max(at_risk, key=lambda c: (now - c[1]).total_seconds() / c[0])
    times = [at for _, at in candidates if at]
    return None, min(times) if times else None


def _max_age(adapter, stream: str) -> int | None:
    try:
        return adapter.stream_retention(stream)
    except DestinationNotFound:
        return None


def _advisory_origin(advisory: Message) -> tuple[str, int] | None:
    """(stream, sequence) an advisory names; None for anything else published on the advisory subjects."""
    try:
        facts = json.loads(advisory.body)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested deep enough to exhaust the parser
        return None
    if not isinstance(facts, dict):
        return None
    stream, seq = facts.get("stream"), facts.get("stream_seq")
    if not isinstance(stream, str) or not _STREAM_NAME.fullmatch(stream):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    return stream, seq


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
    retention, oldest = oldest_pending(source.adapter(), source)
    text = warning(source, retention, oldest, now)
    source.retention_seconds, source.oldest_pending_at = retention, oldest
    source.retention_warning, source.retention_checked_at = text, now
    source.save(update_fields=["retention_seconds", "oldest_pending_at", "retention_warning", "retention_checked_at"])
    return text


def check_all() -> list[str]:
    """Every source on a configured connection; a connection that fails is logged and its sources skipped."""
    found = []
    for source in DeadLetterSource.objects.all():
        if not brokers.is_configured(source.broker, source.connection) or not brokers.kind_supports(
            source.broker, Capability.PENDING_AGE
        ):
            continue
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
