"""Operator writes on the outbox: retry failed rows, skip a row, pause / resume a destination.

Each takes the advisory lock of the keys of the rows it changes (waiting for it), so it never changes a row
while a relay is publishing that key; see outbox/relay.py.
"""

from django.db import connection, transaction
from django.utils import timezone

from console.actions import Conflict, find_repeat, record_audit
from outbox.models import OutboxDestinationState, OutboxEvent
from outbox.relay import LOCK_SPACE

Status = OutboxEvent.Status


def _lock_keys(keys) -> None:
    """Wait for the relay to finish with these keys (it holds the same locks while publishing them)."""
    keys = sorted(set(keys))  # a fixed order: two actions on the same keys cannot deadlock
    if not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_advisory_xact_lock({LOCK_SPACE}, hashtext(k)) FROM unnest(%s::text[]) AS s(k)", [keys]
        )


def _announce() -> None:
    from outbox.live import announce_backlog

    announce_backlog()


# Rows one retry changes at most: its audit entry lists them, and one transaction holds their keys' locks.
RETRY_LIMIT = 10_000


def do_retry_events(actor, event_ids: list[int], reason: str, idempotency_key: str, via: str = "web") -> dict:
    """Make failed rows pending again, due now, with a fresh attempt count. Rows not failed are left alone."""
    rows = OutboxEvent.objects.filter(pk__in=event_ids)
    return _retry(
        actor,
        rows,
        reason,
        idempotency_key,
        via,
        parameters={"ids": event_ids},
        none_failed="none of these rows is failed",
    )


def do_retry_failed_destination(actor, destination: str, reason: str, idempotency_key: str, via: str = "web") -> dict:
    """Every failed row of one destination (the oldest RETRY_LIMIT of them). The audit entry names the destination,
    not the rows: the rows are whatever had failed when it ran (they are listed in its result)."""
    rows = OutboxEvent.objects.filter(destination=destination)
    return _retry(
        actor,
        rows,
        reason,
        idempotency_key,
        via,
        parameters={"destination": destination},
        none_failed=f"{destination} has no failed rows",
        target=("outbox_destination", destination),
    )


def _retry(
    actor, rows, reason: str, idempotency_key: str, via: str, *, parameters: dict, none_failed: str, target=None
) -> dict:
    """Retry the failed ones among `rows`; the audit entry names `target` (type, id), or else the rows retried."""
    repeat = find_repeat(actor, idempotency_key, "outbox.retry")
    if repeat is not None:
        return repeat.result
    with transaction.atomic(durable=True):
        chosen = list(rows.filter(status=Status.FAILED).order_by("id").values_list("pk", "order_key")[:RETRY_LIMIT])
        _lock_keys(order_key for _, order_key in chosen)
        # Re-read under the locks: only rows still failed once no relay holds their keys.
        retried = list(
            OutboxEvent.objects.filter(pk__in=[pk for pk, _ in chosen], status=Status.FAILED)
            .order_by("id")
            .values_list("pk", flat=True)
        )
        if not retried:
            raise Conflict(none_failed)
        OutboxEvent.objects.filter(pk__in=retried).update(
            status=Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        result = {"retried": retried}
        target_type, target_id = target or ("outbox_event", retried[0] if len(retried) == 1 else f"{len(retried)} rows")
        record_audit(
            actor,
            "outbox.retry",
            target_type,
            target_id,
            reason=reason,
            parameters=parameters,
            result=result,
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(_announce)
    return result


def do_skip_event(actor, event_pk: int, reason: str, idempotency_key: str, via: str = "web") -> dict:
    """Never send this row; its key's later rows flow again."""
    repeat = find_repeat(actor, idempotency_key, "outbox.skip")
    if repeat is not None:
        return repeat.result
    with transaction.atomic(durable=True):
        order_key = OutboxEvent.objects.filter(pk=event_pk).values_list("order_key", flat=True).first()
        if order_key is None:
            raise OutboxEvent.DoesNotExist
        _lock_keys([order_key])
        event = OutboxEvent.objects.select_for_update().get(pk=event_pk)
        if not event.can_skip():
            raise Conflict(f"a {event.status} row cannot be skipped")
        before = event.status
        event.status = Status.SKIPPED
        event.save(update_fields=["status"])
        result = {"id": event.pk, "event_id": str(event.event_id), "status_before": before, "status": event.status}
        record_audit(
            actor,
            "outbox.skip",
            "outbox_event",
            event.pk,
            reason=reason,
            parameters={"destination": event.destination, "key": event.key},
            result=result,
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(_announce)
    return result


def do_set_destination_paused(
    actor, destination: str, paused: bool, reason: str, idempotency_key: str, via: str = "web"
) -> dict:
    repeat = find_repeat(actor, idempotency_key, "outbox.pause" if paused else "outbox.resume")
    if repeat is not None:
        return repeat.result
    with transaction.atomic(durable=True):
        state, _ = OutboxDestinationState.objects.select_for_update().get_or_create(destination=destination)
        before = state.paused
        state.paused, state.changed_at, state.changed_by = paused, timezone.now(), actor.get_username()
        state.save(update_fields=["paused", "changed_at", "changed_by"])
        result = {"destination": destination, "paused": paused, "paused_before": before}
        record_audit(
            actor,
            "outbox.pause" if paused else "outbox.resume",
            "outbox_destination",
            destination,
            reason=reason,
            result=result,
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(_announce)
    return result
