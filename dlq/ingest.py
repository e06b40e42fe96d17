"""Copy dead letters from a broker DLQ into DeadLetter rows: poll, write, commit, and only then acknowledge.

A worker killed between the commit and the ack gets the same messages again; the unique (source, message_id) drops
them, so nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.base import BrokerError, Message, Subscription
from console import brokers
from console.live import broadcast
from dlq import advisories
from dlq import headers as h
from dlq.models import DeadLetter, DeadLetterBody, DeadLetterSource

log = logging.getLogger(__name__)

SEARCH_PREFIX = 100_000  # characters of a body kept for full-text search (tsvector has a 1 MB limit)
_subscriptions: dict[int, Subscription] = {}


def subscription_for(source: DeadLetterSource) -> Subscription:
    sub = _subscriptions.get(source.pk)
    if sub is None:
        options = {
            "sqs": {"visibility_timeout": source.conventions.get("visibility_timeout", 30)},
            "nats": {"ack_wait": source.conventions.get("ack_wait", 30)},
            "kafka": {"session.timeout.ms": 6000},
        }.get(source.broker, {})
        group = group_name(source)
        adapter = source.adapter()
        if source.broker == "nats" and advisories.is_advisory(source.destination):
            sub = advisories.AdvisorySubscription(adapter, source.destination, group, options["ack_wait"])
        else:
            sub = adapter.subscribe(source.destination, group, **options)
        _subscriptions[source.pk] = sub
    return sub


def group_name(source: DeadLetterSource) -> str:
    """The consumer group / durable the ingest worker of `source` reads as (the retention check reads its offsets)."""
    return f"switchyard-dlq-{settings.NAMESPACE}-{source.pk}".replace(":", "_")


def close_all() -> None:
    while _subscriptions:
        _, sub = _subscriptions.popitem()
        try:
            sub.close()
        except Exception:  # noqa: BLE001 - unacked messages simply come back
            log.warning("closing a DLQ subscription failed", exc_info=True)


def message_id(source: DeadLetterSource, m: Message) -> str:
    """The broker's identity of one dead-lettered delivery, stable across redeliveries of the same one."""
    if source.broker == "kafka":
        return f"{m.partition}:{m.offset}"
    if source.broker == "nats":
        if advisories.is_advisory(source.destination):
            return m.message_id  # "<stream>:<sequence>": one advisory source may cover many streams
        return str(m.offset)  # the DLQ stream's sequence
    if source.broker == "rabbitmq":
        # A replayed message keeps its message id; the replay count tells its second death from its first.
        base = m.message_id or hashlib.sha256(m.body + repr(sorted(m.headers.items())).encode()).hexdigest()
        return f"{base}#{h.text(m.headers.get(h.REPLAY_COUNT)) or 0}"
    return m.message_id or hashlib.sha256(m.body).hexdigest()


def build(source: DeadLetterSource, m: Message) -> tuple[DeadLetter, bytes | None]:
    """The row for one message, and the body to store outside it when it is large."""
    facts = h.parse(m.headers, source.conventions)
    now = timezone.now()
    origin = facts.origin or source.default_origin()
    large = len(m.body) > settings.DLQ_INLINE_BODY_MAX
    row = DeadLetter(
        source=source,
        origin=origin,
        message_id=message_id(source, m)[:300],
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        headers=h.encode_headers(m.headers),
        body=None if large else m.body,
        body_size=len(m.body),
        body_text=h.text(m.body, SEARCH_PREFIX),
        content_type=facts.content_type,
        message_type=facts.message_type,
        exception_type=facts.exception_type,
        exception_message=facts.exception_message,
        stacktrace=facts.stacktrace,
        reason=facts.reason,
        correlation_id=facts.correlation_id,
        first_failure_at=facts.failed_at or m.timestamp or now,
        last_failure_at=m.timestamp or facts.failed_at or now,
        delivery_count=facts.attempts if facts.attempts is not None else m.delivery_count,
        fingerprint=DeadLetter.compute_fingerprint(facts.exception_type, facts.message_type, origin),
        replay_of_id=facts.replay_of,
    )
    return row, m.body if large else None


def store(source: DeadLetterSource, messages: list[Message]) -> list[DeadLetter]:
    """Insert the new ones in one transaction; returns the rows created (already-stored deliveries are skipped)."""
    built = {}
    for m in messages:
        row, large = build(source, m)
        built.setdefault(row.message_id, (row, large))
    with transaction.atomic():
        existing = set(
            DeadLetter.objects.filter(source=source, message_id__in=list(built)).values_list("message_id", flat=True)
        )
        fresh = [pair for mid, pair in built.items() if mid not in existing]
        parents = {row.replay_of_id for row, _ in fresh if row.replay_of_id}
        known = set(DeadLetter.objects.filter(pk__in=parents).values_list("pk", flat=True)) if parents else set()
        for row, _ in fresh:
            if row.replay_of_id not in known:
                row.replay_of_id = None
        created = DeadLetter.objects.bulk_create([row for row, _ in fresh])
        DeadLetterBody.objects.bulk_create(
            [DeadLetterBody(dead_letter=row, data=large) for row, large in fresh if large is not None]
        )
        DeadLetterSource.objects.filter(pk=source.pk).update(last_ingest_at=timezone.now(), last_error="")
        if created:
            ids = [row.pk for row in created]
            transaction.on_commit(lambda: _announce(ids))
    return created


def _announce(ids: list[int]) -> None:
    broadcast("dlq", {"type": "dead_letters", "ids": ids})
    broadcast("dashboard", {"type": "dashboard", "tile": "dlq"})


def run_once(source: DeadLetterSource, max_messages: int = 100, timeout: float = 1.0) -> bool:
    """One round for one source. True if it found messages (so the caller should come back at once)."""
    try:
        sub = subscription_for(source)
        messages = sub.poll(max_messages, timeout)
    except (BrokerError, brokers.NotConfigured) as exc:
        _subscriptions.pop(source.pk, None)
        DeadLetterSource.objects.filter(pk=source.pk).update(last_error=str(exc)[:2000])
        log.warning("ingest from %s: %s", source, exc)
        return False
    if not messages:
        return False
    store(source, messages)
    # Only now, after the commit: a crash before this line means redelivery, which store() deduplicates.
    sub.ack(messages)
    return True
