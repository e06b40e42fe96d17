"""Alert rules: evaluate every rule after each sampler pass; open an incident when a condition starts, resolve it
when it ends, and notify once for each (webhook POST JSON and/or e-mail).

Rules that need another app's models (dead letters, sagas, outbox) find nothing to say while that app is absent.
"""

import json
import logging
import random
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from monitoring.models import RANK, AlertRule, ConsumerTarget, Incident

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT = 5
# Bounded retry: 3 attempts, 0.5 s then 1 s apart (± jitter), so one dead endpoint delays a sampler pass ≤ ~17 s.
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF = 0.5


def firing(rule: AlertRule, now: datetime) -> dict[str, str]:
    """{subject: summary} for every subject the rule fires for right now."""
    since = now - timedelta(minutes=rule.minutes)
    if rule.kind == AlertRule.Kind.CONSUMER_STATUS:
        targets = ConsumerTarget.objects.filter(gone=False, status_since__lte=since).exclude(status="OK")
        return {
            f"{t.broker}:{t.name}": f"{t.broker} {t.name} is {t.status} since {t.status_since:%H:%M:%S} UTC: {t.reason}"
            for t in targets
            if RANK[t.status] >= RANK["WARN"]
        }
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
    return {}


def evaluate_all(now: datetime | None = None) -> list[tuple[str, Incident]]:
    """Open and resolve incidents for every enabled rule; send the notifications. Returns what was sent."""
    now = now or timezone.now()
    sent = []
    for rule in AlertRule.objects.filter(enabled=True):
        subjects = firing(rule, now)
        open_ = {i.subject: i for i in rule.incidents.filter(resolved_at__isnull=True)}
        for subject, summary in subjects.items():
            if subject not in open_:
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
        post_webhook(rule.webhook_url, payload)
    if rule.email:
        recipients = [a.strip() for a in rule.email.split(",") if a.strip()]
        subject = f"[switchyard] {state.upper()}: {rule.name} — {incident.subject}"
        try:
            send_mail(subject, json.dumps(payload, indent=2), settings.ALERT_EMAIL_FROM, recipients)
        except Exception as e:  # noqa: BLE001 - a mail server being down must not stop the sampler
            log.warning("alert e-mail to %s failed: %s", recipients, e)


def post_webhook(url: str, payload: dict) -> bool:
    """POST the JSON payload; retry connection errors and 5xx / 429 answers with exponential backoff and jitter, up
    to WEBHOOK_ATTEMPTS. A 4xx other than 429 is the receiver refusing the payload: retrying will not help.
    Returns whether it was delivered; never raises (a dead endpoint must not stop the sampler)."""
    data = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "switchyard-alerts"}
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT):
                return True
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429:
                log.warning("alert webhook %s refused the notification: HTTP %s", url, e.code)
                return False
            problem = f"HTTP {e.code}"
        except OSError as e:
            problem = str(e)
        log.warning("alert webhook %s failed (attempt %s of %s): %s", url, attempt, WEBHOOK_ATTEMPTS, problem)
        if attempt < WEBHOOK_ATTEMPTS:
            time.sleep(WEBHOOK_BACKOFF * 2 ** (attempt - 1) * random.uniform(0.8, 1.2))
    return False
