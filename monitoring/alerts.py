"""Alert rules: evaluate every rule after each sampler pass; open an incident when a condition starts, resolve it
when it ends, and notify once for each (webhook POST JSON and/or e-mail). A rule an operator silenced opens and
sends nothing until its silence ends.

Rules that need another app's models (dead letters, sagas, outbox) find nothing to say while that app is absent.
"""

import json
import logging
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from monitoring import queries, webhooks
from monitoring.models import RANK, AlertRule, ConsumerTarget, Incident

log = logging.getLogger(__name__)


def firing(rule: AlertRule, now: datetime) -> dict[str, str]:
    """{subject: summary} for every subject the rule fires for right now."""
    since = now - timedelta(minutes=rule.minutes)
    if rule.kind == AlertRule.Kind.CONSUMER_STATUS:
        return _consumer_status(rule, since)
    if rule.kind == AlertRule.Kind.CONSUMER_LAG:
        return _consumer_lag(rule)
    if rule.kind == AlertRule.Kind.DLQ_GROWTH:
        if not apps.is_installed("dlq"):
            return {}
        from dlq.models import DeadLetter

        new = DeadLetter.objects.filter(ingested_at__gte=since).count()
        if new > rule.threshold:
            return {"dead-letters": f"{new} new dead letters in the last {rule.minutes} min (limit {rule.threshold})"}
        return {}
    if rule.kind == AlertRule.Kind.SAGA_STUCK:
        if not apps.is_installed("sagas"):
            return {}
        from sagas.models import ACTIVE, SagaInstance

        stuck = SagaInstance.objects.filter(status__in=ACTIVE, state_since__lt=since).count()
        return {"sagas": f"{stuck} saga(s) stuck for more than {rule.minutes} min"} if stuck else {}
    if rule.kind == AlertRule.Kind.SAGA_COMPENSATION_FAILED:
        return _sagas_compensation_failed(rule, since)
    if rule.kind == AlertRule.Kind.DLQ_RETENTION:
        # The retention check (a beat job) stores its warning on the source; a page shows it, this pages someone.
        if not apps.is_installed("dlq"):
            return {}
        from dlq.models import DeadLetterSource

        sources = DeadLetterSource.objects.exclude(retention_warning="")
        return {f"dlq-retention:{s}": s.retention_warning[:500] for s in sources}
    if rule.kind == AlertRule.Kind.OUTBOX_AGE:
        if not apps.is_installed("outbox"):
            return {}
        from outbox.models import OutboxEvent

        oldest = (
            OutboxEvent.objects.filter(status="pending").order_by("created_at").values_list("created_at", flat=True)
        )
        first = oldest.first()
        if first is not None and first < since:
            return {"outbox": f"oldest pending outbox event is {int((now - first).total_seconds())} s old"}
        return {}
    if rule.kind == AlertRule.Kind.OUTBOX_FAILED:
        return _outbox_failed(rule)
    if rule.kind == AlertRule.Kind.OUTBOX_NO_RELAY:
        return _outbox_no_relay(since, rule.minutes)
    return {}


def _scoped_targets(rule: AlertRule):
    targets = ConsumerTarget.objects.filter(gone=False)
    if rule.broker:
        targets = targets.filter(broker=rule.broker)
    if rule.connection:
        targets = targets.filter(connection=rule.connection)
    if rule.target_name:
        targets = targets.filter(name=rule.target_name)
    return targets


def _topic_partitions(rule: AlertRule, target: ConsumerTarget) -> list[dict]:
    return [p for p in queries.partitions(target) if p["topic"] == rule.topic]


def _consumer_status(rule: AlertRule, since: datetime) -> dict[str, str]:
    out = {}
    for t in _scoped_targets(rule).filter(status_since__lte=since).exclude(status="OK"):
        if RANK[t.status] < RANK["WARN"]:
            continue
        status, reason = t.status, t.reason
        if rule.topic:
            # The group is judged as a whole; with a topic in scope only that topic's partitions may make it fire.
            parts = [p for p in _topic_partitions(rule, t) if RANK[p["status"]] >= RANK["WARN"]]
            if not parts:
                continue
            worst = max(parts, key=lambda p: RANK[p["status"]])
            status, reason = worst["status"], f"{rule.topic}[{worst['partition']}]: {worst['reason']}"
        out[_subject(t, rule.topic)] = (
            f"{t.connection_key} {t.name} is {status} since {t.status_since:%H:%M:%S} UTC: {reason}"[:500]
        )
    return out


def _consumer_lag(rule: AlertRule) -> dict[str, str]:
    """Fires when the latest figures of a target (or of one topic of a Kafka group) are over either threshold.

    Messages are the target's lag (a group's sum over partitions, a queue's depth); seconds are its lag_seconds
    (the worst partition's interpolated age for a group, the oldest message's age for a queue)."""
    out = {}
    for t in _scoped_targets(rule):
        lag, seconds = t.lag, t.lag_seconds
        if rule.topic:
            parts = _topic_partitions(rule, t)
            if not parts:
                continue
            lag = sum(p["lag"] for p in parts)
            known = [p["lag_seconds"] for p in parts if p["lag_seconds"] is not None]
            seconds = max(known) if known else None
        over = []
        if rule.threshold and lag is not None and lag > rule.threshold:
            over.append(f"{lag} messages (limit {rule.threshold})")
        if rule.seconds and seconds is not None and seconds > rule.seconds:
            over.append(f"{int(seconds)} s (limit {rule.seconds} s)")
        if over:
            where = f"{t.connection_key} {t.name}" + (f" on {rule.topic}" if rule.topic else "")
            out[_subject(t, rule.topic)] = f"{where} is {' and '.join(over)} behind"[:500]
    return out


def _subject(target: ConsumerTarget, topic: str) -> str:
    return (f"{target.connection_key}/{target.name}" + (f" / {topic}" if topic else ""))[:400]


def _sagas_compensation_failed(rule: AlertRule, since: datetime) -> dict[str, str]:
    """One subject per saga type: each type usually has its own owner to page."""
    if not apps.is_installed("sagas"):
        return {}
    from sagas.models import SagaInstance, Status

    sagas = SagaInstance.objects.filter(status=Status.COMPENSATION_FAILED, state_since__lt=since)
    if rule.saga_type:
        sagas = sagas.filter(saga_type=rule.saga_type)
    counts = sagas.values("saga_type").annotate(n=Count("id")).order_by("saga_type")
    return {
        f"sagas-compensation-failed:{c['saga_type']}": (
            f"{c['n']} {c['saga_type']} saga(s) failed to compensate and wait for an operator"
        )[:500]
        for c in counts
    }


def _outbox_failed(rule: AlertRule) -> dict[str, str]:
    """One subject per destination with more than `threshold` failed rows (the relay gave up on them)."""
    if not apps.is_installed("outbox"):
        return {}
    from outbox.models import OutboxEvent

    rows = OutboxEvent.objects.filter(status=OutboxEvent.Status.FAILED)
    if rule.destination:
        rows = rows.filter(destination=rule.destination)
    counts = rows.values("destination").annotate(n=Count("id")).filter(n__gt=rule.threshold).order_by("destination")
    return {
        f"outbox-failed:{c['destination']}": (
            f"{c['n']} outbox row(s) to {c['destination']} failed and wait for a retry or skip"
            + (f" (limit {rule.threshold})" if rule.threshold else "")
        )[:500]
        for c in counts
    }


def _outbox_no_relay(since: datetime, minutes: int) -> dict[str, str]:
    """Pending events and no relay heartbeat since `since` (outbox.models.OutboxRelay): nothing is publishing them.
    Failed rows alone do not count: they wait for an operator, not for a relay."""
    if not apps.is_installed("outbox"):
        return {}
    from outbox.models import OutboxEvent, OutboxRelay

    if OutboxRelay.objects.filter(seen_at__gte=since).exists():
        return {}
    waiting = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).count()
    if not waiting:
        return {}
    last = OutboxRelay.objects.order_by("-seen_at").first()
    seen = f"the last one ({last.name}) at {last.seen_at:%Y-%m-%d %H:%M:%S %Z}" if last else "none ever has"
    return {"outbox-relay": f"{waiting} outbox event(s) wait and no relay has reported for {minutes} min; {seen}"}


def evaluate_all(now: datetime | None = None) -> list[tuple[str, Incident]]:
    """Open and resolve incidents for every enabled rule; send the notifications. Returns what was sent."""
    now = now or timezone.now()
    sent = []
    for rule in AlertRule.objects.filter(enabled=True):
        subjects = firing(rule, now)
        silenced = rule.is_silenced(now)
        open_ = {i.subject: i for i in rule.incidents.filter(resolved_at__isnull=True)}
        for subject, summary in subjects.items():
            # A silenced rule opens nothing: whatever still fires when the silence ends opens (and pages) then.
            if subject not in open_ and not silenced:
                with transaction.atomic():
                    incident, created = Incident.objects.get_or_create(
                        rule=rule, subject=subject, resolved_at=None, defaults={"summary": summary, "opened_at": now}
                    )
                if created:
                    open_[subject] = incident
        for subject, incident in open_.items():
            if subject not in subjects and incident.resolved_at is None:
                incident.resolved_at = now
                incident.save(update_fields=["resolved_at"])
        if silenced:
            # Incidents open before the silence still resolve, but quietly: nobody wants a page of "resolved"
            # notifications for everything that ended during a silence.
            rule.incidents.filter(resolved_at__isnull=False, notified_resolved=False).update(notified_resolved=True)
            continue
        # Claim each notification with a conditional UPDATE so two samplers never send the same one twice.
        for incident in rule.incidents.filter(notified_open=False):
            if Incident.objects.filter(pk=incident.pk, notified_open=False).update(notified_open=True):
                notify(rule, incident, "firing")
                sent.append(("firing", incident))
        for incident in rule.incidents.filter(resolved_at__isnull=False, notified_resolved=False):
            if Incident.objects.filter(pk=incident.pk, notified_resolved=False).update(notified_resolved=True):
                notify(rule, incident, "resolved")
                sent.append(("resolved", incident))
    return sent


def notify(rule: AlertRule, incident: Incident, state: str) -> None:
    payload = {"state": state, **incident.as_json()}
    if rule.webhook_url:
        # A Celery task with its own retries: a dead endpoint delays neither this pass nor the other notifications.
        url = rule.webhook_url
        transaction.on_commit(lambda: webhooks.deliver.delay(url, payload))
    if rule.email:
        recipients = [a.strip() for a in rule.email.split(",") if a.strip()]
        subject = f"[switchyard] {state.upper()}: {rule.name} — {incident.subject}"
        try:
            send_mail(subject, json.dumps(payload, indent=2), settings.ALERT_EMAIL_FROM, recipients)
        except Exception as e:  # noqa: BLE001 - a mail server being down must not stop the sampler
            log.warning("alert e-mail to %s failed: %s", recipients, e)
