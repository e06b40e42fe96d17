"""The Python SDK: define a saga as ordered steps, start it, and let Celery run it.

    from sagas import sdk

    order = sdk.define("order", [
        sdk.Step("reserve", reserve_stock, release_stock),
        sdk.Step("charge", charge_card, refund_card),
        sdk.Step("ship", ship_parcel),
    ])
    saga_id = sdk.start("order", {"order": 42}, correlation_id="ORD-42")

Each step attempt is one Celery task (`sagas.run_step`). A failed attempt is retried with exponential backoff and
jitter; a step that fails every attempt makes the completed steps compensate in reverse order; a compensation that
fails every attempt leaves the saga `compensation_failed` for an operator. Every transition goes through
`sagas.recording.record_events`, the same path as events from other languages.
"""

import uuid

from django.db import transaction

from sagas import steps, tasks
from sagas.recording import record_events
from sagas.steps import SAGAS, Next, Saga, Step, define, event, next_compensation, next_seq, to_compensate

__all__ = [
    "SAGAS",
    "Next",
    "Saga",
    "Step",
    "define",
    "enqueue",
    "next_compensation",
    "next_seq",
    "run_inline",
    "start",
    "to_compensate",
]


def start(saga_type: str, context: dict | None = None, correlation_id: str = "", saga_id: str | None = None) -> str:
    """Record the saga and its first step's start; the first task is enqueued when the caller's transaction commits."""
    saga = SAGAS[saga_type]
    saga_id = saga_id or str(uuid.uuid4())
    first = saga.steps[0].name
    head = {"saga_id": saga_id, "saga_type": saga_type}
    extra = {"correlation_id": correlation_id} if correlation_id else {}
    record_events(
        [event(head, first, "execute", "started", 1, seq=1, context=context or {}, saga_status="running", **extra)],
        origin="sdk",
    )
    transaction.on_commit(lambda: enqueue(saga_id, Next("execute", 0, 1)))
    return saga_id


def enqueue(saga_id: str, nxt: "Next | None") -> None:
    if nxt is None:
        return
    tasks.run_step.apply_async((saga_id, nxt.direction, nxt.index, nxt.attempt), countdown=nxt.delay)


def run_inline(saga_id: str, nxt: "Next | None") -> None:
    """Run every step in this process, without the retry delays (tests and `manage.py saga --inline`)."""
    while nxt is not None:
        nxt = steps.run_attempt(saga_id, nxt.direction, nxt.index, nxt.attempt)
