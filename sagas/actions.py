"""Operator actions on sagas. Each runs as an Operation (kind "saga-action") over a frozen list of saga ids.

Starting checks the action is possible now (409 otherwise) and audits the start; running re-checks each saga under a
row lock, records the operator's event (who, why, note) through the recording path, audits it per saga, and then
moves the saga on: an SDK saga gets its next Celery task, an external one gets a command on its configured route.
"""

import json

from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from console import brokers
from console.actions import Conflict, do_start_operation, record_audit
from sagas import sdk
from sagas.models import CompensationRoute, SagaInstance, SagaStepEvent, Status
from sagas.recording import record_events

ACTIONS = ("retry-step", "retry-compensation", "compensate", "resolve", "skip")
OPERATION_KIND = "saga-action"


def step_order(saga: SagaInstance) -> list[str]:
    """Steps in the order they first executed (the SDK definition's order for SDK sagas). Cached on the instance."""
    if not hasattr(saga, "_step_order"):
        if saga.origin == SagaInstance.Origin.SDK and saga.saga_type in sdk.SAGAS:
            saga._step_order = [s.name for s in sdk.SAGAS[saga.saga_type].steps]
        else:
            rows = (
                SagaStepEvent.objects.filter(saga=saga, direction="execute")
                .values("step")
                .annotate(first_seq=Min("seq"), first_at=Min("occurred_at"))
                .order_by(F("first_seq").asc(nulls_last=True), "first_at")
            )
            saga._step_order = [row["step"] for row in rows]
    return saga._step_order


def last_failure(saga: SagaInstance, direction: str) -> SagaStepEvent | None:
    """The latest failed event in `direction`. Cached on the instance: a page's previews ask for it more than once."""
    cache = saga.__dict__.setdefault("_last_failure", {})
    if direction not in cache:
        cache[direction] = (
            SagaStepEvent.objects.filter(saga=saga, direction=direction, status="failed")
            .order_by("-seq", "-occurred_at", "-id")
            .first()
        )
    return cache[direction]


def preview(saga: SagaInstance, action: str, params: dict) -> dict:
    """What the action will do to this saga, or Conflict if it cannot be done in the saga's current state."""
    if action not in ACTIONS:
        raise Conflict(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    plan: dict = {"saga_id": saga.id, "action": action, "status_before": saga.status}
    if action == "retry-step":
        if not saga.can_retry_step():
            raise Conflict(f"a {saga.status} saga has no failed step to retry")
        failed = last_failure(saga, "execute")
        plan.update(step=failed.step, attempt=failed.attempt + 1)
    elif action == "retry-compensation":
        if not saga.can_retry_compensation():
            raise Conflict(f"a {saga.status} saga has no failed compensation to retry")
        failed = last_failure(saga, "compensate")
        plan.update(step=failed.step, attempt=failed.attempt + 1)
    elif action == "compensate":
        plan["steps"] = compensation_plan(saga, params.get("step"))
    elif action == "resolve":
        if not saga.can_resolve():
            raise Conflict(f"a {saga.status} saga cannot be resolved manually")
        plan["status_after"] = Status.RESOLVED_MANUALLY
    elif action == "skip":
        if not saga.can_skip():
            raise Conflict(f"a {saga.status} saga has no failed step to skip")
        direction = "compensate" if saga.status == Status.COMPENSATION_FAILED else "execute"
        plan.update(step=last_failure(saga, direction).step, direction=direction)
    if saga.origin == SagaInstance.Origin.EXTERNAL and action in ("retry-step", "retry-compensation", "compensate"):
        steps = plan.get("steps") or [plan["step"]]
        missing = set(steps) - set(CompensationRoute.for_steps(saga.saga_type, steps))
        if missing:
            raise Conflict(f"no command route is configured for {saga.saga_type} / {', '.join(sorted(missing))}")
    return plan


def compensation_plan(saga: SagaInstance, from_step: str | None) -> list[str]:
    """The steps "compensate from step N" will undo, in the order it undoes them (N first, then backwards)."""
    if not saga.can_compensate():
        raise Conflict(f"a {saga.status} saga cannot be compensated")
    order = step_order(saga)
    # The recording path keeps the steps still to compensate on the instance (ADR 0012); NULL: read the history.
    pending = list(saga.pending_steps) if saga.pending_steps is not None else sdk.to_compensate(saga.id)
    if not pending:
        raise Conflict("no completed step is left to compensate")
    from_step = from_step or pending[-1]
    if from_step not in order:
        raise Conflict(f"this saga has no step {from_step!r}")
    later = [s for s in pending if order.index(s) > order.index(from_step)]
    if later:
        raise Conflict(f"step(s) {', '.join(later)} after {from_step} completed: compensate from {later[-1]}")
    return list(reversed(pending))


def do_start_saga_action(
    actor, saga: SagaInstance, action: str, params: dict, reason: str, key: str, via: str = "web"
) -> tuple:
    """Check the action is possible now, then start (or, for a repeated key, return) its operation."""
    from console.models import Operation

    if not Operation.objects.filter(idempotency_key=key).exists():  # a repeat answers with the first operation
        preview(saga, action, params)
    parameters = {"action": action, "saga_ids": [saga.id], **params}
    return do_start_operation(actor, OPERATION_KIND, parameters, reason, key, via)


def apply_action(operation, saga_id: str, index: int) -> dict:
    """Do one saga's part of an operation: re-check under a lock, record, audit, and move the saga on."""
    params, actor = operation.parameters, operation.requested_by
    action = params["action"]
    key = f"{operation.idempotency_key}:{index}"
    with transaction.atomic(durable=True):
        saga = SagaInstance.objects.select_for_update().get(pk=saga_id)
        plan = preview(saga, action, params)
        now = timezone.now()
        base = {
            "saga_id": saga.id,
            "saga_type": saga.saga_type,
            "occurred_at": now,
            "idempotency_key": key,
            "note": params.get("note", "")[:5000],
            "reason": operation.reason[:5000],
        }
        seq = sdk.next_seq(saga.id)
        if seq is not None:
            base["seq"] = seq
        if action in ("retry-step", "retry-compensation"):
            direction = "execute" if action == "retry-step" else "compensate"
            ev = {**base, "step": plan["step"], "direction": direction, "status": "started", "attempt": plan["attempt"]}
            ev["saga_status"] = "running" if direction == "execute" else "compensating"
            if saga.origin == SagaInstance.Origin.SDK:
                # The SDK's own "started" event for this attempt has this id, so the task does not record it again.
                ev["event_id"] = f"{saga.id}:{direction}:{plan['step']}:{plan['attempt']}:started"
        elif action == "compensate":
            first = plan["steps"][0]
            ev = {**base, "step": first, "direction": "compensate", "status": "started", "saga_status": "compensating"}
        elif action == "resolve":
            direction = "compensate" if saga.status == Status.COMPENSATION_FAILED else "execute"
            ev = {**base, "step": saga.current_step or "-", "direction": direction, "status": "resolved"}
            ev["evidence_url"] = params.get("evidence_url", "")
        else:  # skip
            ev = {**base, "step": plan["step"], "direction": plan["direction"], "status": "skipped"}
        ev.setdefault("event_id", f"op:{key}")
        ev.setdefault("attempt", 1)
        record_events([ev], origin=saga.origin, actor=actor)
        if saga.origin == SagaInstance.Origin.EXTERNAL and action != "resolve" and action != "skip":
            # Published inside the transaction: if the broker refuses, nothing is recorded and the item errors. A
            # commit that fails after the publish leaves a command with an idempotency key the participant dedupes.
            plan["published"] = _publish_commands(saga, action, plan, key, operation.reason)
        record_audit(
            actor,
            f"saga.{action}",
            "saga",
            saga.id,
            reason=operation.reason,
            parameters={k: v for k, v in params.items() if k != "saga_ids"},
            result=plan,
            operation=operation,
            via="operation",
        )
        if saga.origin == SagaInstance.Origin.SDK:
            nxt = _sdk_next(saga, action, plan)
            transaction.on_commit(lambda: sdk.enqueue(saga.id, nxt))
    return plan


def _sdk_next(saga: SagaInstance, action: str, plan: dict) -> "sdk.Next | None":
    definition = sdk.SAGAS.get(saga.saga_type)
    if definition is None or action == "resolve":
        return None
    if action in ("retry-step", "retry-compensation"):
        direction = "execute" if action == "retry-step" else "compensate"
        return sdk.Next(direction, definition.index(plan["step"]), plan["attempt"])
    if action == "compensate":
        return sdk.Next("compensate", definition.index(plan["steps"][0]), 1)
    if plan["direction"] == "execute":  # skip a failed step: carry on with the next one
        index = definition.index(plan["step"]) + 1
        return sdk.Next("execute", index, 1) if index < len(definition.steps) else None
    return sdk.next_compensation(definition, saga.id)


def _publish_commands(saga: SagaInstance, action: str, plan: dict, key: str, reason: str) -> list[dict]:
    sent = []
    steps = plan.get("steps") or [plan["step"]]
    routes = CompensationRoute.for_steps(saga.saga_type, steps)
    for step in steps:
        route = routes[step]
        command = {"saga_id": saga.id, "step": step, "idempotency_key": f"{key}:{step}", "reason": reason}
        command["command"] = action
        result = brokers.get(route.broker, route.connection).publish(
            route.destination, json.dumps(command).encode(), key=saga.id, headers={"switchyard-command": action}
        )
        where = {"broker": route.broker, "connection": route.connection, "destination": route.destination}
        sent.append({"step": step, **where, "offset": result.offset})
    return sent


BULK_MAX = 10_000
BULK_SALT = "sagas.bulk-selection"


def freeze_selection(action: str, saga_ids: list[str]) -> dict:
    """The preview of a bulk action: the frozen target set (signed, so the start acts on exactly it), count, sample."""
    from django.core import signing

    token = signing.dumps({"action": action, "ids": saga_ids}, salt=BULK_SALT, compress=True)
    return {"action": action, "count": len(saga_ids), "sample": saga_ids[:10], "selection": token}


def thaw_selection(action: str, token: str, max_age: int = 3600) -> list[str]:
    from django.core import signing

    try:
        data = signing.loads(token, salt=BULK_SALT, max_age=max_age)
    except signing.BadSignature as e:
        raise Conflict("the selection is invalid or older than an hour: preview again") from e
    if data.get("action") != action:
        raise Conflict("the selection was previewed for a different action")
    return data["ids"]


def do_start_bulk_saga_action(
    actor, action: str, saga_ids: list[str], params: dict, reason: str, key: str, via: str = "web"
) -> tuple:
    """One operation over the frozen ids; sagas that no longer qualify are reported as item errors, not skipped."""
    parameters = {"action": action, "saga_ids": saga_ids, **params}
    return do_start_operation(actor, OPERATION_KIND, parameters, reason, key, via)
