"""Writes with side effects. Views validate (4xx); these assume valid input.

Each `do_*` runs in one transaction with its audit entry; Celery work and live broadcasts go out on commit only, so
nothing is ever sent for work that rolled back.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from console.live import broadcast
from console.models import AuditEntry, Operation
from console.operations import STALE_AFTER_SECONDS

Status = Operation.Status


class Conflict(Exception):
    """The request cannot be applied in the object's current state (HTTP 409)."""


def record_audit(
    actor,
    action: str,
    target_type: str,
    target_id,
    *,
    reason: str = "",
    parameters: dict | None = None,
    result: dict | None = None,
    operation: Operation | None = None,
    idempotency_key: str = "",
    via: str = "web",
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        reason=reason,
        parameters=parameters or {},
        result=result or {},
        operation=operation,
        idempotency_key=idempotency_key,
        via=via,
    )


def find_repeat(actor, idempotency_key: str, action: str | None = None) -> AuditEntry | None:
    """The earlier audit entry made with this key by this actor: a repeated request returns its result. With
    `action`, a key first used for another kind of request is a Conflict, not that request's result passed off as
    this one's (a client that reuses keys by mistake must hear about it)."""
    if not idempotency_key:
        return None
    repeat = AuditEntry.objects.filter(actor=actor, idempotency_key=idempotency_key).first()
    if repeat is not None and action is not None and repeat.action != action:
        raise Conflict("this idempotency key was already used for a different request")
    return repeat


def enqueue_operation(operation_id) -> None:
    from console.tasks import run_operation

    run_operation.delay(str(operation_id))


def do_start_operation(
    actor, kind: str, parameters: dict, reason: str, idempotency_key: str, via: str = "web"
) -> tuple[Operation, bool]:
    """Create and enqueue an operation. The same idempotency key returns the same operation, never a second run."""
    existing = Operation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.requested_by_id != actor.pk or existing.kind != kind:
            raise Conflict("this idempotency key was already used for a different request")
        return existing, False
    try:
        with transaction.atomic(durable=True):
            op = Operation.objects.create(
                kind=kind,
                requested_by=actor,
                parameters=parameters,
                reason=reason,
                idempotency_key=idempotency_key,
            )
            record_audit(
                actor,
                "operation.start",
                "operation",
                op.pk,
                reason=reason,
                parameters={"kind": kind, **parameters},
                result={"status": op.status},
                operation=op,
                idempotency_key=idempotency_key,
                via=via,
            )
            transaction.on_commit(lambda: enqueue_operation(op.pk))
            transaction.on_commit(lambda: broadcast("operations", op.live_event()))
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its operation.
        return Operation.objects.get(idempotency_key=idempotency_key), False
    return op, True


def do_control_operation(
    actor, operation_id, action: str, reason: str, idempotency_key: str, via: str = "web"
) -> Operation:
    """Pause, resume or cancel. Queued or paused work changes at once; running work at its next checkpoint."""
    repeat = find_repeat(actor, idempotency_key, f"operation.{action}")
    if repeat is not None:
        return Operation.objects.get(pk=repeat.target_id)
    with transaction.atomic(durable=True):
        op = Operation.objects.select_for_update().get(pk=operation_id)
        before = op.status
        if action == "pause":
            if not op.can_pause():
                raise Conflict(f"a {op.status} operation cannot be paused")
            if op.status == Status.QUEUED:
                op.status = Status.PAUSED
            else:
                op.requested_state = "pause"
        elif action == "resume":
            if not op.can_resume():
                raise Conflict(f"a {op.status} operation cannot be resumed")
            op.status, op.requested_state = Status.QUEUED, ""
            transaction.on_commit(lambda: enqueue_operation(op.pk))
        elif action == "cancel":
            if not op.can_cancel():
                raise Conflict(f"a {op.status} operation cannot be cancelled")
            if op.status == Status.RUNNING:
                op.requested_state = "cancel"
            else:
                op.status, op.requested_state, op.finished_at = Status.CANCELLED, "", timezone.now()
                op.message = "cancelled by an operator"
        else:
            raise ValueError(f"unknown control action {action!r}")
        op.updated_at = timezone.now()
        op.save(update_fields=["status", "requested_state", "finished_at", "message", "updated_at"])
        record_audit(
            actor,
            f"operation.{action}",
            "operation",
            op.pk,
            reason=reason,
            parameters={"status_before": before},
            result={"status": op.status, "requested_state": op.requested_state or None},
            operation=op,
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(lambda: broadcast("operations", op.live_event()))
    return op


def requeue_stale() -> list:
    """Operations left `running` by a dead worker (no heartbeat for STALE_AFTER_SECONDS)."""
    stale = timezone.now() - timezone.timedelta(seconds=STALE_AFTER_SECONDS)
    return list(Operation.objects.filter(status=Status.RUNNING, updated_at__lt=stale).values_list("pk", flat=True))


def do_create_api_token(actor, owner, name: str, via: str = "web") -> str:
    """Create a token for `owner` and return it; only its hash is kept."""
    from console.models import ApiToken

    token = ApiToken.generate()
    with transaction.atomic(durable=True):
        row = ApiToken.objects.create(user=owner, name=name, prefix=token[:10], token_hash=ApiToken.hash(token))
        record_audit(
            actor,
            "token.create",
            "api_token",
            row.pk,
            parameters={"owner": owner.get_username(), "name": name},
            via=via,
        )
    return token


def do_revoke_api_token(actor, token, reason: str = "", via: str = "web") -> None:
    with transaction.atomic(durable=True):
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
        record_audit(
            actor, "token.revoke", "api_token", token.pk, reason=reason, parameters={"name": token.name}, via=via
        )
