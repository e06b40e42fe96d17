"""How one attempt of one SDK saga step runs: the saga definitions, the attempt itself (record, run, record, say what
comes next) and the compensation order. Below both the SDK's public calls (sagas/sdk.py) and the Celery task that
runs each attempt (sagas/tasks.py), which import it; it imports neither, so the two never import each other.
"""

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from console.backoff import backoff as delay
from sagas.models import FINISHED, SagaInstance, SagaStepEvent, Status
from sagas.recording import record_events


@dataclass
class Step:
    name: str
    execute: Callable[[dict], dict | None]
    compensate: Callable[[dict], None] | None = None
    attempts: int | None = None  # default: settings.SAGA_STEP_ATTEMPTS


@dataclass
class Saga:
    saga_type: str
    steps: list[Step] = field(default_factory=list)

    def index(self, step_name: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.name == step_name)


@dataclass
class Next:
    """The task to run after this one: which step, which way, which attempt, and after how long."""

    direction: str
    index: int
    attempt: int
    delay: float = 0.0


SAGAS: dict[str, Saga] = {}


def define(saga_type: str, steps: list[Step]) -> Saga:
    SAGAS[saga_type] = Saga(saga_type, steps)
    return SAGAS[saga_type]


def backoff(attempt: int) -> float:
    """Equal jitter: one saga's step retried, at least half the curve apart."""
    return delay(attempt, settings.SAGA_RETRY_BASE_SECONDS, jitter="equal")


def next_seq(saga_id: str) -> int | None:
    """One more than the highest seq so far (None while the saga has no sequenced events)."""
    top = SagaStepEvent.objects.filter(saga_id=saga_id).aggregate(m=Max("seq"))["m"]
    return None if top is None else top + 1


def event(saga: SagaInstance | dict, step: str, direction: str, status: str, attempt: int, **extra) -> dict:
    """A saga event as the schema describes it. The id is deterministic, so a redelivered task records nothing twice."""
    saga_id = saga["saga_id"] if isinstance(saga, dict) else saga.id
    saga_type = saga["saga_type"] if isinstance(saga, dict) else saga.saga_type
    seq = extra.pop("seq", None)
    return {
        "event_id": f"{saga_id}:{direction}:{step}:{attempt}:{status}",
        "saga_id": saga_id,
        "saga_type": saga_type,
        "step": step,
        "direction": direction,
        "status": status,
        "attempt": attempt,
        "occurred_at": timezone.now(),
        "seq": seq if seq is not None else (next_seq(saga_id) or 1),
        **extra,
    }


def to_compensate(saga_id: str) -> list[str]:
    """Steps whose execute succeeded and that are not compensated yet, in execution order."""
    done: list[str] = []
    rows = SagaStepEvent.objects.filter(saga_id=saga_id).order_by("seq", "occurred_at", "id")
    for step, direction, status in rows.values_list("step", "direction", "status"):
        if direction == "execute" and status == "succeeded" and step not in done:
            done.append(step)
        elif direction == "compensate" and status in ("succeeded", "skipped") and step in done:
            done.remove(step)
    return done


def next_compensation(saga: Saga, saga_id: str) -> "Next | None":
    pending = to_compensate(saga_id)
    return Next("compensate", saga.index(pending[-1]), 1) if pending else None


def _error(exc: BaseException) -> dict:
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:10000],
        "traceback": "".join(traceback.format_exception(exc))[:100000],
    }


def run_attempt(saga_id: str, direction: str, index: int, attempt: int) -> "Next | None":
    """Run one attempt of one step, record what happened, and say what runs next (None: the saga rests)."""
    instance = SagaInstance.objects.filter(pk=saga_id).first()
    if instance is None or instance.status in FINISHED or instance.saga_type not in SAGAS:
        return None
    saga = SAGAS[instance.saga_type]
    step = saga.steps[index]
    attempts = step.attempts or settings.SAGA_STEP_ATTEMPTS
    if direction == "execute":
        if instance.status not in (Status.RUNNING, Status.FAILED):
            return None  # an operator moved it on (e.g. compensating) while this task waited
        record_events([event(instance, step.name, "execute", "started", attempt, saga_status="running")], "sdk")
        began = time.monotonic()
        try:
            output = step.execute(dict(instance.context)) or {}
        except Exception as exc:
            ms = int((time.monotonic() - began) * 1000)
            if attempt < attempts:
                failed = event(instance, step.name, "execute", "failed", attempt, error=_error(exc), duration_ms=ms)
                record_events([{**failed, "saga_status": "running"}], "sdk")
                return Next("execute", index, attempt + 1, backoff(attempt))
            failed = event(instance, step.name, "execute", "failed", attempt, error=_error(exc), duration_ms=ms)
            record_events([{**failed, "saga_status": "failed"}], "sdk")
            return next_compensation(saga, saga_id)
        ms = int((time.monotonic() - began) * 1000)
        last = index == len(saga.steps) - 1
        done = event(instance, step.name, "execute", "succeeded", attempt, duration_ms=ms)
        done["context"] = {**instance.context, **output}
        if last:
            done["saga_status"] = "completed"
        record_events([done], "sdk")
        return None if last else Next("execute", index + 1, 1)

    if instance.status not in (Status.FAILED, Status.COMPENSATING, Status.COMPENSATION_FAILED, Status.RUNNING):
        return None
    if step.compensate is None:
        record_events([event(instance, step.name, "compensate", "skipped", attempt)], "sdk")
        return next_compensation(saga, saga_id)
    record_events([event(instance, step.name, "compensate", "started", attempt, saga_status="compensating")], "sdk")
    began = time.monotonic()
    try:
        step.compensate(dict(instance.context))
    except Exception as exc:
        ms = int((time.monotonic() - began) * 1000)
        final = attempt >= attempts
        failed = event(instance, step.name, "compensate", "failed", attempt, error=_error(exc), duration_ms=ms)
        failed["saga_status"] = "compensation_failed" if final else "compensating"
        record_events([failed], "sdk")
        return None if final else Next("compensate", index, attempt + 1, backoff(attempt))
    ms = int((time.monotonic() - began) * 1000)
    record_events([event(instance, step.name, "compensate", "succeeded", attempt, duration_ms=ms)], "sdk")
    return next_compensation(saga, saga_id)
