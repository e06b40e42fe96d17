import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A machine client's credential. Only a SHA-256 of the token is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)  # shown in lists so a token can be recognised without storing it
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @staticmethod
    def hash(token: str) -> str:
        # Tokens are 256-bit random strings, so a plain SHA-256 is enough; a slow KDF buys nothing here.
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return "sy_" + secrets.token_urlsafe(32)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AuditEntry(models.Model):
    """Who did what, to what, why, and what came of it. Written in the same transaction as the change."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="audit_entries")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    operation = models.ForeignKey("Operation", models.SET_NULL, null=True, blank=True, related_name="audit_entries")
    # The same (actor, key) never acts twice: a repeat returns the first result.
    idempotency_key = models.CharField(max_length=200, blank=True)
    via = models.CharField(max_length=16, default="web")  # web | api | cli
    # Who the actor is at their identity provider, as at the time of the action: "oidc:okta" and the token's `sub`,
    # "ldap" and the DN, or "local" and the username (console.sign_in.identity_of). db_default: the previous
    # release writes audit entries without them while a rolling upgrade is under way (deploy/k8s/README.md).
    actor_provider = models.CharField(max_length=64, blank=True, default="", db_default="")
    actor_subject = models.CharField(max_length=255, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        constraints = [
            models.UniqueConstraint(
                fields=["actor", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="audit_unique_idempotency_key",
            )
        ]

    def __str__(self):
        return f"{self.actor_id} {self.action} {self.target_type}:{self.target_id}"

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "time": self.created_at.isoformat(),
            "actor": self.actor.get_username(),
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "reason": self.reason,
            "parameters": self.parameters,
            "result": self.result,
            "operation_id": str(self.operation_id) if self.operation_id else None,
            "idempotency_key": self.idempotency_key or None,
            "via": self.via,
            "actor_provider": self.actor_provider or None,
            "actor_subject": self.actor_subject or None,
        }


class Operation(models.Model):
    """A long-running Celery job started by a person: progress, pause / resume / cancel, per-item errors."""

    class Status(models.TextChoices):
        # A kind listed in OPERATION_APPROVAL_KINDS waits here, never enqueued, until another operator approves it.
        AWAITING_APPROVAL = "awaiting_approval"
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="operations")
    parameters = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # What an operator asked for while the job runs; the worker acts on it at its next checkpoint.
    requested_state = models.CharField(max_length=16, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"item": ..., "error": ...}], capped
    result = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)  # why it failed, in a sentence
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The second person who let an operation of a listed kind run (OPERATION_APPROVAL_KINDS).
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="approved_operations"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(self.progress_done * 100 / self.progress_total))

    def can_pause(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING) and self.requested_state != "pause"

    def can_resume(self) -> bool:
        return self.status == self.Status.PAUSED

    def can_cancel(self) -> bool:
        return not self.is_finished

    @property
    def is_awaiting_approval(self) -> bool:
        return self.status == self.Status.AWAITING_APPROVAL

    def can_be_approved_by(self, user) -> bool:
        """Four eyes: whoever asked for it may not let it run."""
        return self.is_awaiting_approval and user.pk != self.requested_by_id

    def live_event(self) -> dict:
        """The `operations` stream payload (console.live.OperationEvent) for this row's current state."""
        return {
            "type": "operation",
            "id": str(self.pk),
            "status": self.status,
            "done": self.progress_done,
            "total": self.progress_total,
        }

    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def as_json(self) -> dict:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "status": self.status,
            "requested_state": self.requested_state or None,
            "requested_by": self.requested_by.get_username(),
            "approved_by": self.approved_by.get_username() if self.approved_by_id else None,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "reason": self.reason,
            "parameters": self.parameters,
            "progress": {"done": self.progress_done, "total": self.progress_total, "percent": self.percent},
            "error_count": self.error_count,
            "errors": self.errors,
            "result": self.result,
            "message": self.message,
            "idempotency_key": self.idempotency_key,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class Lease(models.Model):
    """A named piece of work that one process holds until `expires_at` (a dead-letter source, the beat scheduler):
    held by renewing it, lost by letting it expire. console.leases reads and writes it; times are the database's
    clock, so pods whose clocks disagree still agree on who holds what."""

    name = models.CharField(max_length=200, primary_key=True)
    holder = models.CharField(max_length=200)  # "<host>:<pid>:<random>": one process, never reused
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["holder"], name="console_lease_holder")]

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at.isoformat()}"


class ExternalIdentity(models.Model):
    """The account at an identity provider a Switchyard user signs in with: (provider, subject) is the key, never the
    e-mail or the name, which providers let people change. Written at every sign-in and revalidation
    (console.sign_in)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, models.CASCADE, related_name="external_identity")
    provider = models.CharField(max_length=64)  # "oidc:<name>" or "ldap"
    subject = models.CharField(max_length=255)  # OIDC `sub`; LDAP: the user's DN
    login = models.CharField(max_length=255, blank=True)  # the name the provider knows them by (LDAP: what they type)
    role = models.CharField(max_length=16, blank=True)  # as mapped at the last sign-in or revalidation
    role_values = models.JSONField(default=list, blank=True)  # what the groups claim held then
    # An OIDC refresh token, encrypted with a key derived from SECRET_KEY: how revalidation asks the provider again.
    refresh_token = models.TextField(blank=True)
    signed_in_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "subject"], name="identity_unique_subject")]

    def __str__(self):
        return f"{self.provider} {self.subject}"
