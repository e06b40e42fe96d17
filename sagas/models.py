"""Saga instances and their append-only step history.

`SagaStepEvent` rows are the truth; `SagaInstance` is a cache of the state derived from them (see
`sagas.recording.derive`), rewritten only by the recording path, never edited by hand.
"""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from sagas.forms import is_web_link


class Status(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    RESOLVED_MANUALLY = "resolved_manually"


FINISHED = (Status.COMPLETED, Status.COMPENSATED, Status.RESOLVED_MANUALLY)
# A saga in one of these states is waiting for progress; "stuck" means it has waited too long.
ACTIVE = (Status.RUNNING, Status.COMPENSATING)
# Waiting on an operator: what the Failures view groups.
FAILING = (Status.FAILED, Status.COMPENSATION_FAILED)


class SagaInstance(models.Model):
    Status = Status

    class Origin(models.TextChoices):
        SDK = "sdk"
        EXTERNAL = "external"

    id = models.CharField(primary_key=True, max_length=200)  # the producer's saga_id
    saga_type = models.CharField(max_length=100)
    correlation_id = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RUNNING)
    current_step = models.CharField(max_length=200, blank=True, default="")
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()  # the latest event's occurred_at: the list's sort key
    finished_at = models.DateTimeField(null=True, blank=True)
    state_since = models.DateTimeField()  # when the current status began (time-in-state)
    context = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.EXTERNAL)
    event_count = models.PositiveIntegerField(default=0)
    # Where the derived state stands, so that events arriving after it extend the state instead of re-reading the
    # whole history (ADR 0012): the order key (seq, occurred_at) of the last event in history order, and the steps
    # executed and not compensated yet. NULL means not known (rows written before these columns): derive from history.
    tail_seq = models.BigIntegerField(null=True, blank=True)
    tail_at = models.DateTimeField(null=True, blank=True)
    pending_steps = models.JSONField(null=True, blank=True)
    # The error type of the latest failed event in history order ("" if none failed or it named no type): derived by
    # the recording path like the rest of the row, so filtering by error is a column test, in SQL and for live rows.
    # db_default: raw INSERTs that name their columns (bench, old writers) still get a value.
    last_error_type = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        indexes = [
            # Keyset pagination of the list, newest update first, alone and under each equality filter.
            models.Index(fields=["-updated_at", "-id"], name="saga_updated"),
            models.Index(fields=["status", "-updated_at", "-id"], name="saga_status_updated"),
            models.Index(fields=["saga_type", "-updated_at", "-id"], name="saga_type_updated"),
            models.Index(fields=["saga_type", "status", "-updated_at", "-id"], name="saga_type_status_updated"),
            # Exact and prefix lookups of a business key (text_pattern_ops serves LIKE 'abc%').
            models.Index(fields=["correlation_id"], opclasses=["varchar_pattern_ops"], name="saga_correlation_prefix"),
            # "Stuck": active and in the same state since before a cutoff.
            models.Index(fields=["status", "state_since"], name="saga_status_since"),
            models.Index(fields=["-started_at", "-id"], name="saga_started"),
            # Sagas waiting on an operator, by what failed: the Failures view groups them with an index-only scan,
            # a group's list (status, step, error, type) is one range in keyset order, and status + step is a range
            # too. Partial, so the ingest of healthy sagas never writes to it.
            models.Index(
                fields=["status", "current_step", "last_error_type", "saga_type", "-updated_at", "-id"],
                condition=Q(status__in=FAILING),
                name="saga_failures",
            ),
            # The error filter on its own (any status): without it a rare error type walks the whole updated index.
            # Only sagas that ever failed are in it.
            models.Index(
                fields=["last_error_type", "-updated_at", "-id"], condition=~Q(last_error_type=""), name="saga_error"
            ),
        ]

    def __str__(self):
        return f"{self.saga_type} {self.id}"

    def get_absolute_url(self) -> str:
        return reverse("saga", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_failing(self) -> bool:
        return self.status in FAILING

    @property
    def dom_id(self) -> str:
        # Saga ids are the producer's strings (any characters); DOM ids need a safe, stable form.
        return hashlib.sha1(self.id.encode()).hexdigest()[:16]

    def time_in_state(self) -> timedelta:
        return timezone.now() - self.state_since

    # Plain strftime (all times are UTC): Django's |date filter is a third of the list's render time.
    def updated_label(self) -> str:
        return self.updated_at.strftime("%Y-%m-%d %H:%M:%S")

    def started_label(self) -> str:
        return self.started_at.strftime("%Y-%m-%d %H:%M:%S")

    def time_in_state_label(self) -> str:
        """Compact and sortable by eye ("3d 4h", "12m 5s"); Django's timesince is wordier and ~10x slower per row."""
        seconds = max(0, int(self.time_in_state().total_seconds()))
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        if days:
            return f"{days}d {hours}h"
        if hours:
            return f"{hours}h {minutes}m"
        return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"

    def pill(self) -> str:
        return {
            Status.COMPLETED: "pill-ok",
            Status.COMPENSATED: "pill-ok",
            Status.RESOLVED_MANUALLY: "pill-info",
            Status.RUNNING: "pill-running",
            Status.COMPENSATING: "pill-warn",
            Status.FAILED: "pill-err",
            Status.COMPENSATION_FAILED: "pill-err",
        }.get(self.status, "pill-muted")

    def can_retry_step(self) -> bool:
        return self.status == Status.FAILED

    def can_retry_compensation(self) -> bool:
        return self.status == Status.COMPENSATION_FAILED

    def can_compensate(self) -> bool:
        return self.status in (Status.RUNNING, Status.FAILED, Status.COMPENSATION_FAILED)

    def can_resolve(self) -> bool:
        return self.status in (Status.COMPENSATION_FAILED, Status.FAILED)

    def can_skip(self) -> bool:
        return self.status in (Status.FAILED, Status.COMPENSATION_FAILED)

    def as_json(self, context: bool = True) -> dict:
        data = {
            "id": self.id,
            "saga_type": self.saga_type,
            "correlation_id": self.correlation_id or None,
            "status": self.status,
            "current_step": self.current_step or None,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "state_since": self.state_since.isoformat(),
            "time_in_state_seconds": round(self.time_in_state().total_seconds(), 3),
            "origin": self.origin,
            "event_count": self.event_count,
            "last_error_type": self.last_error_type or None,
        }
        if context:  # the list leaves it out: it is the one large column
            data["context"] = self.context
        return data

    def context_text(self, limit: int) -> tuple[str, int]:
        """The context as indented JSON cut to `limit` characters, and the length of the whole text (> limit: cut)."""
        text = json.dumps(self.context, indent=2, ensure_ascii=False)
        return text[:limit], len(text)

    def context_dropped_bytes(self) -> int | None:
        """The size of a context the producer sent over SAGA_CONTEXT_MAX_BYTES (the recording path kept only that)."""
        context = self.context
        if isinstance(context, dict) and context.get("_truncated") is True and isinstance(context.get("_bytes"), int):
            return context["_bytes"]
        return None


class SagaStepEvent(models.Model):
    class Direction(models.TextChoices):
        EXECUTE = "execute"
        COMPENSATE = "compensate"

    class StepStatus(models.TextChoices):
        STARTED = "started"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        RESOLVED = "resolved"

    event_id = models.CharField(max_length=200, unique=True)  # idempotency: a repeat is ignored
    # No index of its own: saga_event_order (saga, seq, occurred_at, id) serves every lookup by saga.
    saga = models.ForeignKey(SagaInstance, models.CASCADE, related_name="events", db_index=False)
    seq = models.BigIntegerField(null=True, blank=True)
    step = models.CharField(max_length=200)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=StepStatus.choices)
    saga_status = models.CharField(max_length=24, choices=Status.choices, blank=True, default="")
    error_type = models.CharField(max_length=200, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    transport = models.CharField(max_length=20, blank=True, default="")
    destination = models.CharField(max_length=300, blank=True, default="")
    partition = models.IntegerField(null=True, blank=True)
    offset = models.BigIntegerField(null=True, blank=True)
    message_id = models.CharField(max_length=300, blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Operator actions: who and why (the recording path sets these, never a producer).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )  # unindexed: almost always NULL, never filtered on; deleting a user who acted is refused anyway (PROTECT)
    note = models.TextField(blank=True, default="")  # what was done (resolve) or accepted (skip)
    reason = models.TextField(blank=True, default="", db_default="")  # why the operator acted
    evidence_url = models.URLField(max_length=500, blank=True, default="")
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["saga", "seq", "occurred_at", "id"], name="saga_event_order"),
            # The dashboard's failures over time: failed events are a small part of all, so the index stays small.
            models.Index(fields=["recorded_at"], name="saga_event_failed_at", condition=models.Q(status="failed")),
        ]

    def __str__(self):
        return f"{self.saga_id} {self.step} {self.direction} {self.status}"

    @property
    def is_failure(self) -> bool:
        return self.status == self.StepStatus.FAILED

    @property
    def is_operator(self) -> bool:
        return self.actor_id is not None

    def when_label(self) -> str:
        return self.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f")

    def pill(self) -> str:
        return {"failed": "pill-err", "succeeded": "pill-ok", "started": "pill-info"}.get(self.status, "pill-warn")

    def broker_label(self) -> str:
        """transport destination [partition] @offset id message-id — where this step's message was."""
        parts = [self.transport, self.destination]
        if self.partition is not None:
            parts.append(f"[{self.partition}]")
        if self.offset is not None:
            parts.append(f"@{self.offset}")
        if self.message_id:
            parts.append(f"id {self.message_id}")
        return " ".join(p for p in parts if p)

    def html(self) -> str:
        """The event's entry in the timeline, escaped field by field. Built here rather than in a template: a
        1,000-event saga's page renders 100 of these, and per-event template work was most of the page's time."""
        classes = (
            f"event lane-{self.direction}" + (" failed" if self.is_failure else "") + (" op" if self.actor_id else "")
        )
        head = f"<strong>{escape(self.step)}</strong> · {escape(self.direction)} "
        head += f'<span class="pill {self.pill()}">{escape(self.status)}</span>'
        if self.attempt > 1:
            head += f' <span class="muted">attempt {self.attempt}</span>'
        if self.duration_ms is not None:
            head += f' <span class="muted">{self.duration_ms} ms</span>'
        if self.saga_status:
            head += f' <span class="muted">→ {escape(self.saga_status)}</span>'
        seq = f"#{self.seq} · " if self.seq is not None else ""
        parts = [
            f'<div class="{classes}" data-testid="event" data-status="{escape(self.status)}">',
            f"<div>{head}</div>",
            f'<div class="when">{seq}{self.when_label()}</div>',
        ]
        if self.actor_id:
            who = f"<strong>{escape(self.actor.get_username())}</strong>"
            if self.note:
                who += f": {escape(self.note)}"
            if self.reason:
                who += f' <span class="muted">— why: {escape(self.reason)}</span>'
            if self.evidence_url and is_web_link(self.evidence_url):
                who += (
                    f' · <a href="{escape(self.evidence_url)}" rel="noopener noreferrer" target="_blank">evidence</a>'
                )
            elif self.evidence_url:  # stored before the form refused it: shown, never a link
                who += f' · evidence <span class="mono">{escape(self.evidence_url)}</span>'
            parts.append(f'<div data-testid="operator-action">{who}</div>')
        if self.error_type or self.error_message:
            message = self.error_message if len(self.error_message) <= 500 else self.error_message[:499] + "…"
            parts.append(f'<div><span class="mono">{escape(self.error_type)}</span>: {escape(message)}</div>')
            if self.traceback:
                parts.append(f"<details><summary>traceback</summary><pre>{escape(self.traceback)}</pre></details>")
        if self.transport or self.destination:
            parts.append(f'<div class="muted mono">{escape(self.broker_label())}</div>')
        parts.append("</div>")
        return "\n".join(parts)

    def as_json(self) -> dict:
        broker = None
        if self.transport or self.destination:
            broker = {
                "transport": self.transport or None,
                "destination": self.destination or None,
                "partition": self.partition,
                "offset": self.offset,
                "message_id": self.message_id or None,
            }
        error = None
        if self.error_type or self.error_message:
            error = {"type": self.error_type, "message": self.error_message, "traceback": self.traceback or None}
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "step": self.step,
            "direction": self.direction,
            "attempt": self.attempt,
            "status": self.status,
            "saga_status": self.saga_status or None,
            "error": error,
            "broker": broker,
            "duration_ms": self.duration_ms,
            "idempotency_key": self.idempotency_key or None,
            "actor": self.actor.get_username() if self.actor_id else None,
            "note": self.note or None,
            "reason": self.reason or None,
            "evidence_url": self.evidence_url or None,
            "occurred_at": self.occurred_at.isoformat(),
        }


class CompensationRoute(models.Model):
    """Where the console sends a compensate command for an external saga's step (blank step: any step)."""

    saga_type = models.CharField(max_length=100)
    step = models.CharField(max_length=200, blank=True, default="")
    broker = models.CharField(max_length=16, choices=[(b, b) for b in ("kafka", "sqs", "rabbitmq", "nats")])
    connection = models.CharField(max_length=63, default="default", db_default="default")  # of the broker's kind
    destination = models.CharField(max_length=300)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["saga_type", "step"], name="saga_route_unique")]

    def __str__(self):
        return f"{self.saga_type}/{self.step or '*'} → {self.broker}:{self.connection}/{self.destination}"

    @classmethod
    def for_steps(cls, saga_type: str, steps: list[str]) -> dict[str, "CompensationRoute"]:
        """The route of each step that has one (its own, else the saga type's catch-all), in one query."""
        routes = {r.step: r for r in cls.objects.filter(saga_type=saga_type, step__in=[*steps, ""])}
        found = {step: routes.get(step) or routes.get("") for step in steps}
        return {step: route for step, route in found.items() if route is not None}
