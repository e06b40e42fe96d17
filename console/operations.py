"""Operation kinds and the machinery that runs them.

A kind is a function `run(ctx) -> dict | None` registered with `@register(...)`. It reports progress through the
context and calls `ctx.checkpoint()` (or `ctx.sleep()`) between items so that pause and cancel take effect within a
second. A paused operation's task ends; resuming enqueues it again and the kind continues from `ctx.done`.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from console.live import broadcast
from console.models import Operation

log = logging.getLogger(__name__)

Status = Operation.Status
# A running operation whose worker has not checked in for this long is considered dead and may be claimed again.
STALE_AFTER_SECONDS = 60


class Cancelled(Exception):
    pass


class Paused(Exception):
    pass


class ParameterError(Exception):
    """Invalid parameters for a kind: `fields` maps a parameter to its messages."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))
        self.fields = fields


@dataclass
class OperationKind:
    name: str
    run: Callable[["OperationContext"], dict | None]
    label: str
    startable: bool  # may be started directly through POST /api/v1/operations and the Operations page
    role: str = "operator"
    validate: Callable[[dict], dict] = field(default=lambda params: params)
    # A setting that must be true as well, read when asked (so tests can change it): the no-op's is off in production.
    startable_setting: str | None = None

    def can_start(self) -> bool:
        return self.startable and (self.startable_setting is None or bool(getattr(settings, self.startable_setting)))


KINDS: dict[str, OperationKind] = {}


def register(
    name: str,
    *,
    label: str,
    startable: bool = False,
    role: str = "operator",
    validate=None,
    startable_setting: str | None = None,
):
    def decorator(run):
        validate_ = validate or (lambda params: params)
        KINDS[name] = OperationKind(name, run, label, startable, role, validate_, startable_setting)
        return run

    return decorator


def get_kind(name) -> OperationKind | None:
    """The registered kind of that name; None for anything else, a JSON list or object included (unhashable)."""
    return KINDS.get(name) if isinstance(name, str) else None


class OperationContext:
    """What a running kind sees: its parameters, progress reporting, and the pause / cancel checkpoint."""

    PERSIST_EVERY = 0.2  # seconds between progress writes (and live updates)
    CHECK_EVERY = 0.25  # seconds between reads of the operator's pause / cancel request

    def __init__(self, operation: Operation):
        self.operation = operation
        self.params = operation.parameters
        self.done = operation.progress_done
        self.total = operation.progress_total
        self._errors: list[dict] = []
        self._error_count = 0
        self._last_persist = 0.0
        self._last_check = 0.0

    def set_total(self, total: int) -> None:
        self.total = total
        self.flush(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.flush()

    def error(self, item, message: str) -> None:
        self._error_count += 1
        self._errors.append({"item": str(item), "error": str(message)[:2000]})
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_persist < self.PERSIST_EVERY:
            return
        self._last_persist = now
        op = self.operation
        room = max(0, settings.OPERATION_MAX_ERRORS - len(op.errors))
        op.errors = op.errors + self._errors[:room]
        Operation.objects.filter(pk=op.pk).update(
            progress_done=self.done,
            progress_total=self.total,
            errors=op.errors,
            error_count=F("error_count") + self._error_count,
            updated_at=timezone.now(),
        )
        op.error_count += self._error_count
        self._errors, self._error_count = [], 0
        op.progress_done, op.progress_total = self.done, self.total
        broadcast("operations", op.live_event())

    def checkpoint(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_check < self.CHECK_EVERY:
            return
        self._last_check = now
        requested = Operation.objects.filter(pk=self.operation.pk).values_list("requested_state", flat=True).first()
        if requested == "cancel":
            raise Cancelled()
        if requested == "pause":
            raise Paused()

    def sleep(self, seconds: float) -> None:
        """Sleep in short slices so a pause or cancel is seen within CHECK_EVERY seconds."""
        deadline = time.monotonic() + seconds
        while True:
            self.checkpoint()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.CHECK_EVERY))


def claim(operation_id) -> Operation | None:
    """Move a queued (or abandoned running) operation to running. None if someone else has it or it is finished.

    Only those two states are claimed: an operation awaiting approval (or paused) is never run, even when a stray
    or forged task names it; the conditional UPDATE makes that hold against a concurrent approve as well."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=STALE_AFTER_SECONDS)
    claimed = Operation.objects.filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, updated_at__lt=stale), pk=operation_id
    ).update(status=Status.RUNNING, started_at=now, updated_at=now)
    if not claimed:
        return None
    return Operation.objects.select_related("requested_by").get(pk=operation_id)


def _finish(op: Operation, status: str, **fields) -> None:
    now = timezone.now()
    fields.setdefault("requested_state", "")
    if status in Operation.FINISHED:
        fields["finished_at"] = now
    with transaction.atomic():
        Operation.objects.filter(pk=op.pk).update(status=status, updated_at=now, **fields)
    op.status = status
    for name, value in fields.items():
        setattr(op, name, value)
    broadcast("operations", op.live_event())
    broadcast("dashboard", {"type": "dashboard", "tile": "operations"})


def execute(operation_id) -> str | None:
    """Run one operation to its next resting state. Returns that state (None if it could not be claimed)."""
    op = claim(operation_id)
    if op is None:
        return None
    broadcast("operations", op.live_event())
    kind = get_kind(op.kind)
    if kind is None:
        _finish(op, Status.FAILED, message=f"unknown operation kind {op.kind!r}")
        return op.status
    ctx = OperationContext(op)
    try:
        ctx.checkpoint(force=True)
        result = kind.run(ctx) or {}
    except Cancelled:
        ctx.flush(force=True)
        _finish(op, Status.CANCELLED, message="cancelled by an operator")
    except Paused:
        ctx.flush(force=True)
        _finish(op, Status.PAUSED)
    except Exception as e:
        log.exception("operation %s failed", op.pk)
        ctx.flush(force=True)
        _finish(op, Status.FAILED, message=f"{type(e).__name__}: {e}"[:2000])
    else:
        ctx.flush(force=True)
        _finish(op, Status.SUCCEEDED, result=result)
    return op.status


def validate_noop(params: dict) -> dict:
    errors: dict[str, list[str]] = {}
    clean = {}
    for name, default, low, high in (("items", 10, 1, 10_000), ("delay_ms", 200, 0, 5_000)):
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | str):
            errors[name] = [f"must be an integer from {low} to {high}"]
            continue
        try:
            value = int(value)
        except ValueError:
            errors[name] = [f"must be an integer from {low} to {high}"]
            continue
        if not low <= value <= high:
            errors[name] = [f"must be from {low} to {high}"]
        clean[name] = value
    unknown = set(params) - {"items", "delay_ms"}
    if unknown:
        errors["parameters"] = [f"unknown parameter(s): {', '.join(sorted(unknown))}"]
    if errors:
        raise ParameterError(errors)
    return clean


# A demonstration of the machinery, not something to run against production (issue 14): OPERATION_NOOP_STARTABLE.
@register(
    "noop",
    label="No-op (sleeps over N items)",
    startable=True,
    validate=validate_noop,
    startable_setting="OPERATION_NOOP_STARTABLE",
)
def run_noop(ctx: OperationContext) -> dict:
    """Proves the machinery: progress, pause, resume and cancel, without touching a broker."""
    items, delay = ctx.params["items"], ctx.params["delay_ms"] / 1000
    ctx.set_total(items)
    while ctx.done < items:
        ctx.sleep(delay)
        ctx.advance()
    return {"items": items}


def stale() -> list:
    """Operations left `running` by a dead worker (no heartbeat for STALE_AFTER_SECONDS)."""
    before = timezone.now() - timezone.timedelta(seconds=STALE_AFTER_SECONDS)
    return list(
        Operation.objects.filter(status=Operation.Status.RUNNING, updated_at__lt=before).values_list("pk", flat=True)
    )
