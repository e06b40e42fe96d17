"""Writes with side effects. Views validate (4xx); these assume valid input.

Each `do_*` runs in one transaction with its audit entry; Celery work and live broadcasts go out on commit only, so
nothing is ever sent for work that rolled back.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from console.access import OPERATOR, ROLE_ORDER, has_role
from console.live import broadcast
from console.models import AuditEntry, Operation
from console.operations import get_kind

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
    from console.sign_in import identity_of  # here: console.sign_in imports this module's siblings at start-up

    actor_provider, actor_subject = identity_of(actor)
    return AuditEntry.objects.create(
        actor=actor,
        actor_provider=actor_provider,
        actor_subject=actor_subject,
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
    """Create and enqueue an operation. The same idempotency key returns the same operation, never a second run.

    A kind listed in OPERATION_APPROVAL_KINDS is created awaiting approval and not enqueued: a second operator's
    do_approve_operation enqueues it."""
    existing = Operation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.requested_by_id != actor.pk or existing.kind != kind:
            raise Conflict("this idempotency key was already used for a different request")
        return existing, False
    needs_approval = kind in settings.OPERATION_APPROVAL_KINDS
    try:
        with transaction.atomic(durable=True):
            op = Operation.objects.create(
                kind=kind,
                requested_by=actor,
                parameters=parameters,
                reason=reason,
                idempotency_key=idempotency_key,
                status=Status.AWAITING_APPROVAL if needs_approval else Status.QUEUED,
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
            if needs_approval:
                transaction.on_commit(_broadcast_awaiting)
            else:
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
                waiting = before == Status.AWAITING_APPROVAL
                refusing = waiting and op.requested_by_id != actor.pk
                if refusing:
                    # Someone else's waiting request: cancelling it is refusing it, so it takes what refusing takes.
                    role = approval_role(op.kind)
                    if not has_role(actor, role):
                        raise PermissionDenied(f"the {role} role is required to cancel a waiting {op.kind} operation")
                op.status, op.requested_state, op.finished_at = Status.CANCELLED, "", timezone.now()
                # Who and why, on the operation itself: the list and the page show this line, not the audit log.
                verb = "cancelled while awaiting approval" if refusing else "withdrawn before approval"
                op.message = f"{verb if waiting else 'cancelled'} by {actor.get_username()}: {reason}"[:2000]
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
        if before == Status.AWAITING_APPROVAL:
            transaction.on_commit(_broadcast_awaiting)
    return op


def approval_role(kind: str) -> str:
    """The least role that may approve or reject an operation of `kind`: operator, or the kind's own if higher."""
    registered = get_kind(kind)
    own = registered.role if registered is not None else OPERATOR
    return own if ROLE_ORDER[own] > ROLE_ORDER[OPERATOR] else OPERATOR


def do_approve_operation(actor, operation_id, reason: str, idempotency_key: str, via: str = "web") -> Operation:
    """A second operator lets an operation awaiting approval run: it is queued and enqueued on commit."""
    return _decide(actor, operation_id, "approve", reason, idempotency_key, via)


def do_reject_operation(actor, operation_id, reason: str, idempotency_key: str, via: str = "web") -> Operation:
    """A second operator refuses an operation awaiting approval: it is cancelled and never runs."""
    return _decide(actor, operation_id, "reject", reason, idempotency_key, via)


def _decide(actor, operation_id, decision: str, reason: str, idempotency_key: str, via: str) -> Operation:
    action = f"operation.{decision}"
    repeat = find_repeat(actor, idempotency_key, action)
    if repeat is not None:
        return Operation.objects.select_related("requested_by", "approved_by").get(pk=repeat.target_id)
    with transaction.atomic(durable=True):
        op = Operation.objects.select_for_update().get(pk=operation_id)
        role = approval_role(op.kind)
        if not has_role(actor, role):
            raise PermissionDenied(f"the {role} role is required to {decision} a {op.kind} operation")
        if not op.is_awaiting_approval:
            raise Conflict(f"a {op.status} operation is not awaiting approval")
        if not op.can_be_approved_by(actor):
            raise Conflict(f"an operation must be {decision}ed by an operator other than the one who requested it")
        now = timezone.now()
        before = op.status
        if decision == "approve":
            op.status, op.approved_by, op.approved_at = Status.QUEUED, actor, now
            transaction.on_commit(lambda: enqueue_operation(op.pk))
        else:
            op.status, op.finished_at = Status.CANCELLED, now
            op.message = f"rejected by {actor.get_username()}: {reason}"[:2000]
        op.updated_at = now
        op.save(update_fields=["status", "approved_by", "approved_at", "finished_at", "message", "updated_at"])
        record_audit(
            actor,
            action,
            "operation",
            op.pk,
            reason=reason,
            parameters={"status_before": before, "requested_by": op.requested_by.get_username()},
            result={"status": op.status},
            operation=op,
            idempotency_key=idempotency_key,
            via=via,
        )
        transaction.on_commit(lambda: broadcast("operations", op.live_event()))
        transaction.on_commit(_broadcast_awaiting)
    return op


def _broadcast_awaiting() -> None:
    broadcast("dashboard", {"type": "dashboard", "tile": "operations-awaiting-approval"})


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
