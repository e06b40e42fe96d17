"""Writes on dead letters: replay, edit & replay, archive / discard / restore, purge, sources. Each one audited."""

from __future__ import annotations

import difflib
import json

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from console import brokers
from console.actions import Conflict, do_start_operation, find_repeat, record_audit
from console.live import broadcast
from dlq import sns
from dlq.models import PURGEABLE, DeadLetter, DeadLetterSource, ReplayRecord
from dlq.operations import outgoing
from formats import replay as formats_replay

SAMPLE = 5


def preview(qs) -> dict:
    """Freeze the target set: its ids in a stable order, with the count and a sample to show before starting."""
    ids = list(qs.order_by("id").values_list("id", flat=True))
    sample = [dl.as_json() for dl in qs.select_related("source").order_by("id")[:SAMPLE]]
    return {"ids": ids, "count": len(ids), "sample": sample}


SELECTION_SALT = "dlq.replay.selection"
SELECTION_MAX_AGE = 3600


def freeze_selection(ids: list[int], action: str = "replay") -> str:
    """The previewed target set, signed with what it was previewed for: confirming acts on exactly these ids, whatever
    arrived since, and only with that action (a replay preview cannot be confirmed as a discard)."""
    return signing.dumps({"ids": ids, "action": action}, salt=SELECTION_SALT, compress=True)


def thaw_selection(token: str, action: str = "replay") -> list[int]:
    try:
        data = signing.loads(token, salt=SELECTION_SALT, max_age=SELECTION_MAX_AGE)
    except signing.BadSignature as e:
        raise Conflict("the previewed selection is invalid or older than an hour: preview again") from e
    if data.get("action", "replay") != action:
        raise Conflict(f"the selection was previewed for {data.get('action')}, not {action}: preview again")
    return [int(i) for i in data["ids"]]


def replay_warnings(qs) -> dict:
    """What to know before replaying `qs`: how many the loop guard will refuse, and which belong (by correlation id)
    to sagas that are no longer running — replaying into a completed or compensated saga can repeat or contradict
    what it already did or undid, so the operator sees it before, not after."""
    from sagas.models import ACTIVE, SagaInstance  # models only, as DeadLetter.saga(): dlq does not call into sagas

    ended = SagaInstance.objects.filter(
        correlation_id__in=qs.exclude(correlation_id="").values("correlation_id")
    ).exclude(status__in=ACTIVE)
    by_status = dict(ended.order_by().values_list("status").annotate(n=Count("id")))
    in_ended = qs.filter(correlation_id__in=ended.values("correlation_id")).count() if by_status else 0
    return {
        # SNS subscriptions' dead letters: each goes to its subscription's endpoint, to the topic only by choice.
        "subscriptions": sns.subscription_letters(qs),
        "looping": qs.filter(replay_count__gte=settings.DLQ_MAX_REPLAYS).count(),
        "max_replays": settings.DLQ_MAX_REPLAYS,
        "in_ended_sagas": in_ended,
        "ended_sagas": sorted(by_status.items()),
        "ended_sample": list(ended.order_by("-updated_at").values_list("id", "status")[:SAMPLE]),
    }


def looping(ids: list[int]) -> list[int]:
    """Targets the loop guard refuses without an override."""
    return list(
        DeadLetter.objects.filter(pk__in=ids, replay_count__gte=settings.DLQ_MAX_REPLAYS).values_list("id", flat=True)
    )


def do_replay_dead_letters(actor, params: dict, reason: str, idempotency_key: str, via: str = "web"):
    """Start a dlq.replay operation over params["ids"] (already validated). Conflict if the loop guard refuses."""
    if not params["override_loop_guard"]:
        refused = looping(params["ids"])
        if refused:
            raise Conflict(
                f"{len(refused)} dead letter(s) were already replayed {settings.DLQ_MAX_REPLAYS} times "
                f"(e.g. {', '.join(map(str, refused[:5]))}); set override_loop_guard to replay them again"
            )
    return do_start_operation(actor, "dlq.replay", params, reason, idempotency_key, via)


def _diff(before: str, after: str) -> str:
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm=""))[
        :20_000
    ]


def do_edit_and_replay(
    actor,
    dl: DeadLetter,
    body: bytes,
    headers: dict[str, str],
    reason: str,
    idempotency_key: str,
    via: str = "web",
    schema_id: int | None = None,
) -> ReplayRecord:
    """Send an edited copy to the origin now, then record it; the body and header diffs go into the audit entry."""
    repeat = find_repeat(actor, idempotency_key, "dead_letter.edit_replay")
    if repeat is not None:
        return ReplayRecord.objects.get(pk=repeat.result["replay"])
    if not dl.can_replay():
        raise Conflict(f"a {dl.status} dead letter replayed {dl.replay_count} times cannot be replayed again here")
    key, destination = dl.replay_destination()
    if not destination:
        raise Conflict("no origin is known for this dead letter")
    destination, refused = sns.replay_target(key, destination, republish=False)
    if refused:
        raise Conflict(refused)
    conn = brokers.by_key(key)
    # A decoded body's edit is re-encoded with its schema (SchemaMismatch, a ValueError, names the fields it refuses).
    body, decoded_diff = formats_replay.edited_body(dl, body, schema_id)
    message = outgoing(dl, body, "edit", key, destination, {k: v.encode() for k, v in headers.items()})
    conn.adapter().publish_batch([message])
    old_headers = json.dumps(dl.headers, indent=1, sort_keys=True, ensure_ascii=False)
    new_headers = json.dumps(headers, indent=1, sort_keys=True, ensure_ascii=False)
    with transaction.atomic(durable=True):
        record = ReplayRecord.objects.create(
            dead_letter=dl, broker=conn.kind, connection=conn.name, destination=destination, edited=True, actor=actor
        )
        DeadLetter.objects.filter(pk=dl.pk).update(
            status=DeadLetter.Status.REPLAYED, replay_count=F("replay_count") + 1, status_changed_at=timezone.now()
        )
        record_audit(
            actor,
            "dead_letter.edit_replay",
            "dead_letter",
            dl.pk,
            reason=reason,
            parameters={
                "destination": f"{conn.key}/{destination}",
                "body_diff": decoded_diff
                if decoded_diff is not None
                else _diff(dl.body_bytes().decode(errors="replace"), body.decode(errors="replace")),
                "headers_diff": _diff(old_headers, new_headers),
            },
            result={"replay": record.pk},
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(lambda: broadcast("dlq", {"type": "dead_letters", "ids": []}))
    return record


def do_set_status(actor, ids: list[int], status: str, reason: str, idempotency_key: str, via: str = "web") -> int:
    """Archive or discard (both purged after DLQ_RETENTION_DAYS), or restore archived and discarded ones to new, which
    makes them replayable again and out of the purge's reach. Returns how many changed; a repeated key, the first
    answer."""
    action = "restored" if status == DeadLetter.Status.NEW else status  # dead_letter.archived / discarded / restored
    repeat = find_repeat(actor, idempotency_key, f"dead_letter.{action}")
    if repeat is not None:
        return repeat.result.get("changed", 0)
    targets = DeadLetter.objects.filter(pk__in=ids)
    if status == DeadLetter.Status.NEW:
        # Only from archived / discarded: a restore must not turn a replayed letter back into an unreplayed one.
        targets = targets.filter(status__in=PURGEABLE)
    else:
        targets = targets.exclude(status=status)
    with transaction.atomic(durable=True):
        changed = targets.update(status=status, status_changed_at=timezone.now())
        record_audit(
            actor,
            f"dead_letter.{action}",
            "dead_letter",
            ",".join(map(str, ids[:50])),
            reason=reason,
            parameters={"ids": ids[:1000], "count": len(ids)},
            result={"changed": changed, "status": status},
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(lambda: broadcast("dlq", {"type": "dead_letters", "ids": []}))
        transaction.on_commit(lambda: broadcast("dashboard", {"type": "dashboard", "tile": "dlq"}))
    return changed


def purge() -> int:
    """Delete archived and discarded dead letters older than the retention period (DeadLetter.purge_at)."""
    cutoff = timezone.now() - timezone.timedelta(days=settings.DLQ_RETENTION_DAYS)
    done = DeadLetter.objects.filter(status__in=PURGEABLE, status_changed_at__lt=cutoff)
    deleted, _ = done.delete()
    return deleted


def do_save_source(actor, conn, destination: str, origin: str, enabled: bool, reason: str, via: str = "web"):
    """Add or change a source on connection `conn` (a console.brokers.Connection)."""
    with transaction.atomic(durable=True):
        source, created = DeadLetterSource.objects.update_or_create(
            broker=conn.kind,
            connection=conn.name,
            destination=destination,
            defaults={"origin": origin, "enabled": enabled},
        )
        record_audit(
            actor,
            "dlq_source.create" if created else "dlq_source.update",
            "dlq_source",
            source.pk,
            reason=reason,
            parameters={"connection": conn.key, "destination": destination, "origin": origin, "enabled": enabled},
            via=via,
        )
    return source
