"""`dlq.replay`: send a frozen set of dead letters back to their origin (or elsewhere), paced, with a canary.

Resuming re-runs `run()`: the dead letters this operation already replayed have a ReplayRecord and are skipped, so
a resume (or a worker killed mid-run and re-claimed) re-sends at most the batches in flight when it died (two at
most, ADR 0024). Such a duplicate carries the same x-switchyard-replay-of and operation id, so a consumer can drop
it (ADR 0020).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from brokers.base import BrokerError, Capability, OutgoingMessage, PendingPublish, PublishError
from console import brokers
from console.models import Operation
from console.operations import OperationContext, ParameterError, Paused, register
from dlq import conventions, sns
from dlq import headers as h
from dlq.models import DeadLetter, DeadLetterBody, DeadLetterSource, ReplayRecord, replayable

# A kill re-sends at most the batches in flight: large ones are for throughput, small ones for fewer duplicates and
# a prompt cancel. Without a rate limit the size follows the throughput seen so far: about BATCH_SECONDS of sending.
MAX_BATCH = 5000
MIN_BATCH = 50
FIRST_BATCH = 500
BATCH_SECONDS = 0.3
# Unpaced, batch k+1 is queued for delivery before batch k is recorded (ADR 0024).
IN_FLIGHT = 2
# A paced batch holds this much more than the limit allows in the time one batch's cycle takes (read, send, record,
# without the pacer's sleep), so a broker that is slow per call (SQS on moto) keeps up with the limit (ADR 0024).
PACED_HEADROOM = 1.5
# Failure headers are facts about the last failure, not part of the message: a replay sends the message as it was.
DROPPED_HEADERS = (
    {
        n.lower()
        for fact in ("exception_type", "exception_message", "stacktrace", "failed_at")
        for n in h.DEFAULT_NAMES[fact]
    }
    | {"x-death", h.REPLAY_OF, h.REPLAY_OPERATION, h.REPLAY_COUNT, h.ATTEMPTS}
    | conventions.REPLAY_DROPPED_HEADERS
)
DROPPED_PREFIXES = ("kafka_dlt-", "mt-fault-", "x-first-death-", *conventions.REPLAY_DROPPED_PREFIXES)


class CanaryFailed(Exception):
    pass


def validate(params: dict) -> dict:
    errors: dict[str, list[str]] = {}
    ids = params.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        errors["ids"] = ["must be a non-empty list of dead-letter ids"]
    clean = {"ids": ids}
    rate = params.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 100_000):
        errors["rate"] = ["must be a number of messages per second from 0 to 100000"]
    clean["rate"] = rate
    for name, default, low, high in (("canary", 0, 0, 100_000), ("batch", None, 1, MAX_BATCH)):
        value = params.get(name, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            errors[name] = [f"must be an integer from {low} to {high}"]
        clean[name] = value
    if clean["canary"] is None:
        errors["canary"] = ["must be an integer from 0 to 100000"]
    threshold = params.get("canary_threshold", 0.2)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        errors["canary_threshold"] = ["must be a fraction from 0 to 1"]
    clean["canary_threshold"] = threshold
    wait = params.get("canary_wait_seconds", 5)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 600:
        errors["canary_wait_seconds"] = ["must be from 0 to 600 seconds"]
    clean["canary_wait_seconds"] = wait
    mode = params.get("canary_mode", "auto")
    if mode not in ("auto", "manual"):
        errors["canary_mode"] = ["must be auto or manual"]
    clean["canary_mode"] = mode
    # "broker" names a connection: "kafka:prod-eu", or "kafka" for the kind's only or default connection.
    broker, destination = params.get("broker"), params.get("destination")
    if destination is not None:
        if not isinstance(destination, str) or not destination.strip() or len(destination) > 500:
            errors["destination"] = ["must be a destination name"]
        try:
            broker = brokers.by_key(broker).key if isinstance(broker, str) else None
        except brokers.NotConfigured as exc:
            errors["broker"] = [str(exc)]
        if broker is None and "broker" not in errors:
            known = ", ".join(c.key for c in brokers.connections())
            errors["broker"] = [f"must name a configured connection: {known}"]
    clean["broker"], clean["destination"] = (broker, destination) if destination else (None, None)
    # An SNS subscription's dead letter goes to its endpoint only; to its topic (every subscriber) only by this choice.
    republish = params.get("republish_to_topic", False)
    if not isinstance(republish, bool):
        errors["republish_to_topic"] = ["must be true or false"]
    clean["republish_to_topic"] = republish is True
    if clean["destination"] and not errors:
        _, refused = sns.replay_target(clean["broker"], clean["destination"], clean["republish_to_topic"])
        if refused:
            errors["destination"] = [refused]
    clean["dry_run"] = bool(params.get("dry_run", False))
    clean["override_loop_guard"] = bool(params.get("override_loop_guard", False))
    if errors:
        raise ParameterError(errors)
    return clean


class Pacer:
    """A token bucket refilled at `rate` per second: after n messages, the next may go at start + n / rate."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    def chunk(self, batch: int) -> int:
        # About ten sends a second, so the pace is smooth and a pause or cancel is never behind a long burst.
        return batch if not self.rate else max(1, min(batch, math.ceil(self.rate / 10)))

    def took(self, n: int, sleep) -> bool:
        """Count n sent and sleep until the next may go; True when there was nothing to wait for (behind the pace)."""
        self.sent += n
        if not self.rate:
            return False
        wait = self.started + self.sent / self.rate - time.monotonic()
        if wait > 0:
            sleep(wait)
        return wait <= 0


def _kept(name: str) -> bool:
    low = name.lower()
    return low not in DROPPED_HEADERS and not low.startswith(DROPPED_PREFIXES) and not name.endswith("~b64")


# Header names repeat across dead letters; remember each one's verdict (bounded: names come from hostile messages).
_KEPT: dict[str, bool] = {}


def kept_header(name: str) -> bool:
    verdict = _KEPT.get(name)
    if verdict is None:
        verdict = _kept(name)
        if len(_KEPT) < 10_000:
            _KEPT[name] = verdict
    return verdict


def outgoing(
    dl: DeadLetter | Target,
    body: bytes,
    op_id,
    broker: str,
    destination: str,
    headers: dict[str, bytes | str] | None = None,
):
    base = headers if headers is not None else dl.header_values()
    kept = {k: v for k, v in base.items() if kept_header(k)}
    kept[h.REPLAY_OF] = str(dl.replay_of_id or dl.pk)
    kept[h.REPLAY_OPERATION] = str(op_id)
    kept[h.REPLAY_COUNT] = str(dl.replay_count + 1)
    if brokers.kind_supports(broker, Capability.UNIQUE_PUBLISH_ID):
        # JetStream drops a publish whose Nats-Msg-Id (the event id) it saw in its duplicate window: make it unique.
        kept["Nats-Msg-Id"] = f"replay-{dl.pk}-{dl.replay_count + 1}-{op_id}"
    return OutgoingMessage(destination, body, dl.key_bytes(), kept)


@dataclass(slots=True)
class Target:
    """One dead letter as the replay hot path needs it: read by one query per batch, no model instances."""

    pk: int
    status: str
    replay_count: int
    replay_of_id: int | None
    origin: str
    broker: str  # the source's connection key, "kind:name"
    key: bytes | None
    headers: dict
    body: bytes

    def header_values(self) -> dict[str, str | bytes]:
        return h.header_values(self.headers)

    def key_bytes(self) -> bytes | None:
        return self.key

    def can_replay(self, override: bool = False) -> bool:
        return replayable(self.status, self.replay_count, override)

    def replay_destination(self) -> tuple[str, str]:
        return self.broker, self.origin


# Bodies too large for the row come from DeadLetterBody in the same query (a left join only where body is NULL).
LOAD_SQL = f"""
    SELECT d.id, d.status, d.replay_count, d.replay_of_id, d.origin, s.broker || ':' || s.connection, d.key,
           d.headers::text,
           COALESCE(d.body, b.data)
    FROM {DeadLetter._meta.db_table} d
    JOIN {DeadLetterSource._meta.db_table} s ON s.id = d.source_id
    LEFT JOIN {DeadLetterBody._meta.db_table} b ON d.body IS NULL AND b.dead_letter_id = d.id
    WHERE d.id = ANY(%s)
"""


def load(ids: list[int]) -> list[Target]:
    """The targets among `ids` that still exist, in the order of `ids`."""
    with connection.cursor() as cursor:
        cursor.execute(LOAD_SQL, [ids])
        rows = {
            r[0]: Target(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                bytes(r[6]) if r[6] is not None else None,
                json.loads(r[7]),
                bytes(r[8]) if r[8] is not None else b"",
            )
            for r in cursor.fetchall()
        }
    return [rows[pk] for pk in ids if pk in rows]


@dataclass(slots=True)
class Batch:
    """One batch ready to go: the messages per connection key, and the ids refused before sending (with the reason)."""

    ids: list[int]
    plan: dict[str, list[tuple[int, OutgoingMessage]]] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)


def prepare(ctx: OperationContext, ids: list[int]) -> Batch:
    """Read one batch (bodies included) in one query and build its messages; no broker I/O."""
    p = ctx.params
    batch = Batch(ids)
    op_id = str(ctx.operation.pk)
    found = load(ids)
    missing = set(ids) - {t.pk for t in found}
    batch.refused += [(pk, "dead letter no longer exists") for pk in ids if pk in missing]
    routes: dict[tuple[str, str], tuple[str | None, str]] = {}
    for t in found:
        broker, destination = (p["broker"], p["destination"]) if p["destination"] else t.replay_destination()
        if destination:
            # A topic fans out: only by explicit choice (dlq/sns.py). One answer per destination of the batch.
            route = routes.get((broker, destination))
            if route is None:
                route = routes[(broker, destination)] = sns.replay_target(
                    broker, destination, p.get("republish_to_topic", False)
                )
            destination, refused = route
            if refused:
                batch.refused.append((t.pk, refused))
                continue
        if t.status in (DeadLetter.Status.ARCHIVED, DeadLetter.Status.DISCARDED):
            batch.refused.append((t.pk, f"{t.status}: not replayed"))
        elif not t.can_replay(p["override_loop_guard"]):
            batch.refused.append(
                (t.pk, f"loop guard: already replayed {t.replay_count} times (override to replay again)")
            )
        elif not destination:
            batch.refused.append((t.pk, "no origin known: choose a destination"))
        else:
            message = outgoing(t, t.body, op_id, broker, destination)
            batch.plan.setdefault(broker, []).append((t.pk, message))
    return batch


@dataclass(slots=True)
class Delivery:
    """One batch handed to its brokers' clients; outcome() waits for the confirmations. Splitting the two lets the
    delivery thread hand batch k+1 to Kafka while batch k is still being confirmed (ADR 0024)."""

    dry_run: bool
    # (broker, its (id, message) pairs, the pending publish, or the error that stopped it before sending)
    parts: list[tuple[str, list[tuple[int, OutgoingMessage]], PendingPublish | None, str | None]]

    def outcome(self) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
        """(sent, failed), each by dead-letter id."""
        sent: list[tuple[int, str, str]] = []
        failed: list[tuple[int, str]] = []
        for broker, pairs, pending, error in self.parts:
            ok = pairs
            if error is not None:
                failed += [(pk, error) for pk, _ in pairs]
                ok = []
            elif pending is not None:
                try:
                    pending.result()
                except PublishError as exc:
                    reasons = {id(m): reason for m, reason in exc.failures}
                    failed += [(pk, reasons[id(m)]) for pk, m in pairs if id(m) in reasons]
                    ok = [(pk, m) for pk, m in pairs if id(m) not in reasons]
                except BrokerError as exc:
                    failed += [(pk, str(exc)) for pk, _ in pairs]
                    ok = []
            sent += [(pk, broker, m.destination) for pk, m in ok]
        return sent, failed


def deliver(batch: Batch, dry_run: bool) -> Delivery:
    """Broker I/O only (it runs beside the next batch's database read): hand every message to its broker's client."""
    parts: list[tuple[str, list[tuple[int, OutgoingMessage]], PendingPublish | None, str | None]] = []
    for broker, pairs in batch.plan.items():
        if dry_run:
            parts.append((broker, pairs, None, None))
            continue
        try:
            parts.append((broker, pairs, brokers.by_key(broker).adapter().start_batch([m for _, m in pairs]), None))
        except (BrokerError, brokers.NotConfigured) as exc:
            parts.append((broker, pairs, None, str(exc)))
    return Delivery(dry_run, parts)


def record(ctx: OperationContext, sent: list[tuple[int, str, str]], writer: StatusWriter) -> None:
    """One COPY of ReplayRecords per batch, committed before the next batch goes (resume skips what has a record);
    the statuses follow in one UPDATE on the writer, beside the next batch's delivery."""
    if not sent:
        return
    op, dry, now = ctx.operation, ctx.params["dry_run"], timezone.now()
    columns = "dead_letter_id, broker, connection, destination, operation_id, dry_run, edited, actor_id, created_at"
    # One COPY text block built here instead of write_row() per record (a third of the main thread's time per
    # message); only broker and destination vary, so each row is its id plus a tail shared by its destination.
    actor = "\\N" if op.requested_by_id is None else str(op.requested_by_id)
    common = f"{op.pk}\t{'t' if dry else 'f'}\tf\t{actor}\t{now.isoformat()}\n"
    tails: dict[tuple[str, str], str] = {}
    lines = []
    for pk, broker, destination in sent:
        tail = tails.get((broker, destination))
        if tail is None:
            kind, _, name = broker.partition(":")
            where = f"{_copy_text(kind)}\t{_copy_text(name)}\t{_copy_text(destination)}"
            tail = tails[(broker, destination)] = f"\t{where}\t{common}"
        lines.append(f"{pk}{tail}")
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {ReplayRecord._meta.db_table} ({columns}) FROM STDIN") as copy:
            copy.write("".join(lines).encode())
    if not dry:
        writer.submit([pk for pk, _, _ in sent], now)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    return value.translate(_COPY_ESCAPES)


MARK_SQL = f"""
    UPDATE {DeadLetter._meta.db_table} SET status = %s, replay_count = replay_count + 1, status_changed_at = %s
    WHERE id = ANY(%s)
"""
# A run killed between a batch's ReplayRecords and its status UPDATE left dead letters whose status_changed_at is
# older than their record (the UPDATE sets it to the record's created_at): apply those on resume.
RECONCILE_SQL = f"""
    UPDATE {DeadLetter._meta.db_table} d
    SET status = %s, replay_count = d.replay_count + 1, status_changed_at = r.created_at
    FROM {ReplayRecord._meta.db_table} r
    WHERE r.operation_id = %s AND NOT r.dry_run AND r.dead_letter_id = d.id
      AND (d.status_changed_at IS NULL OR d.status_changed_at < r.created_at)
"""


def mark_replayed(ids: list[int], when) -> None:
    with connection.cursor() as cursor:
        cursor.execute(MARK_SQL, [DeadLetter.Status.REPLAYED, when, ids])


def reconcile(operation) -> None:
    with connection.cursor() as cursor:
        cursor.execute(RECONCILE_SQL, [DeadLetter.Status.REPLAYED, operation.pk])


class StatusWriter:
    """Runs each batch's status UPDATE on its own thread and database connection, one at a time, so Postgres
    rewrites the (wide, GIN-indexed) rows while the next batch is read and delivered. Inside an outer transaction
    (tests) another connection could not see the rows, so it runs inline there."""

    def __init__(self):
        self._pool = None if connection.in_atomic_block else ThreadPoolExecutor(1, thread_name_prefix="dlq-mark")
        self._pending: Future | None = None

    def submit(self, ids: list[int], when) -> None:
        self.wait()
        if self._pool is None:
            mark_replayed(ids, when)
        else:
            self._pending = self._pool.submit(mark_replayed, ids, when)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.submit(lambda: connection.close()).result()  # the thread's own connection
                self._pool.shutdown()


def send(ctx: OperationContext, ids: list[int]) -> int:
    """Replay one batch without overlap; returns how many were sent (or would be, in a dry run)."""
    batch = prepare(ctx, ids)
    writer = StatusWriter()
    try:
        return _finish(ctx, batch, deliver(batch, ctx.params["dry_run"]), writer)
    finally:
        writer.close()


def _finish(ctx: OperationContext, batch: Batch, delivery: Delivery, writer: StatusWriter) -> int:
    sent, failed = delivery.outcome()
    record(ctx, sent, writer)
    for pk, reason in batch.refused + failed:
        ctx.error(pk, reason)
    ctx.advance(len(batch.ids))
    return len(sent)


class Sizer:
    """Batch size: fixed when asked or paced; otherwise about BATCH_SECONDS of the throughput seen so far."""

    def __init__(self, fixed: int | None, pacer: Pacer):
        self.fixed = fixed
        self.pacer = pacer
        self.size = fixed or FIRST_BATCH
        self.paced_floor = 1
        self.settled_at = 0.0

    def next(self) -> int:
        if not self.pacer.rate:
            return self.size
        # A tenth of a second's worth, unless one send takes longer than that: then as many as the limit allows
        # in the time one send takes, so a slow broker (SQS on moto) still keeps up with an achievable limit.
        return max(self.pacer.chunk(self.size), min(self.size if self.fixed else MAX_BATCH, self.paced_floor))

    def behind(self, n: int) -> None:
        """The pacer had nothing to wait for after a batch of n: the sends are not keeping up with the limit. Double
        the batch (up to a second's worth), so a broker that is faster per message in larger batches (SQS: chunks
        of 10 sent concurrently) catches up; the token bucket then lets it make up the lost time."""
        if self.pacer.rate and not self.fixed:
            self.paced_floor = max(self.paced_floor, min(MAX_BATCH, math.ceil(self.pacer.rate), 2 * n))

    def saw(self, n: int, seconds: float) -> None:
        if not n or seconds <= 0:
            return
        if self.pacer.rate:
            self.paced_floor = math.ceil(self.pacer.rate * seconds * PACED_HEADROOM)
        elif not self.fixed:
            self.size = max(MIN_BATCH, min(MAX_BATCH, int(n / seconds * BATCH_SECONDS)))


def replay_ids(ctx: OperationContext, todo: list[int], pacer: Pacer, sizer: Sizer) -> None:
    """Send `todo` in batches, with up to IN_FLIGHT batches sent but not yet recorded: batch k+1 is queued for
    delivery before batch k is recorded, so k's COPY and status UPDATE overlap k+1's delivery and k+2's read. One
    delivery worker, so batches reach the broker in the frozen set's order. Batches are recorded oldest first, so
    a kill re-sends at most the batches in flight. A paced replay keeps one in flight: the pacer's sleep must come
    before the next batch goes, not after."""
    dry = ctx.params["dry_run"]
    limit = 1 if pacer.rate else IN_FLIGHT
    pending: deque[tuple[Batch, Future, float]] = deque()
    position = 0
    writer = StatusWriter()
    with ThreadPoolExecutor(1, thread_name_prefix="dlq-replay") as pool:
        try:
            while position < len(todo) or pending:
                # Every batch, not every CHECK_EVERY: one indexed read per batch is cheap, and a cancel must stop
                # within a second even when a batch plus its delivery take half of that.
                ctx.checkpoint(force=True)
                upcoming = None
                if position < len(todo):
                    size = sizer.next()
                    upcoming = prepare(ctx, todo[position : position + size])
                    position += size
                if pending and (len(pending) >= limit or upcoming is None):
                    _settle(ctx, pending.popleft(), writer, sizer, pacer)
                if upcoming:
                    pending.append((upcoming, pool.submit(deliver, upcoming, dry), time.monotonic()))
        finally:
            # Cancelled or paused with batches in flight: record what they sent before stopping.
            while pending:
                batch, future, _ = pending.popleft()
                _finish(ctx, batch, future.result(), writer)
            writer.close()


class BrokerDown(Exception):
    """A whole batch failed and its connection does not answer: stop sending into it (_retry_while_down waits)."""


def _settle(ctx: OperationContext, item: tuple[Batch, Future, float], writer, sizer: Sizer, pacer: Pacer) -> None:
    batch, future, started = item
    if not _finish(ctx, batch, future.result(), writer) and batch.ids and _down_connections(ctx, batch.ids):
        # Each further batch would only wait for its own timeout against a broker that is gone.
        raise BrokerDown()
    # Throughput is batches settled per unit of time: with two in flight, a batch's own span overlaps the last one's.
    now = time.monotonic()
    sizer.saw(len(batch.ids), now - max(started, sizer.settled_at))
    sizer.settled_at = now
    if pacer.took(len(batch.ids), ctx.sleep):
        sizer.behind(len(batch.ids))


def _canary(ctx: OperationContext, canary_ids: list[int]) -> None:
    """Wait for the canary's re-failures to be ingested, then stop, pause for the operator, or go on."""
    p = ctx.params
    ctx.sleep(p["canary_wait_seconds"])
    refailed = DeadLetter.objects.filter(replay_of_id__in=canary_ids, ingested_at__gte=ctx.operation.started_at)
    failures = refailed.values("replay_of_id").distinct().count()
    rate = failures / len(canary_ids)
    verdict = (
        f"canary: {failures} of {len(canary_ids)} failed again ({rate:.0%}, threshold {p['canary_threshold']:.0%})"
    )
    if not p["dry_run"] and rate > p["canary_threshold"]:
        raise CanaryFailed(verdict)
    if p["canary_mode"] == "manual":
        Operation.objects.filter(pk=ctx.operation.pk).update(message=verdict + "; resume to replay the rest")
        ctx.flush(force=True)
        raise Paused()
    Operation.objects.filter(pk=ctx.operation.pk).update(message=verdict)


def _down_connections(ctx: OperationContext, remaining: list[int]) -> dict[str, str]:
    """The connections the remaining dead letters go to that do not answer now: key -> why, in words."""
    if ctx.params.get("broker"):
        keys = {ctx.params["broker"]}
    else:
        rows = DeadLetter.objects.filter(pk__in=remaining[:1000]).select_related("source")
        keys = {dl.replay_destination()[0] for dl in rows}
    down = {}
    for key in sorted(keys):
        try:
            health = brokers.health(brokers.by_key(key))
        except brokers.NotConfigured:
            continue  # a connection that is not configured is not an outage to wait out
        if not health.reachable:
            down[key] = brokers.scrub(f"{health.reason or 'error'}: {health.error or ''}")[:500]
    return down


def _say(ctx: OperationContext, message: str) -> None:
    ctx.operation.message = message
    Operation.objects.filter(pk=ctx.operation.pk).update(message=message)
    ctx.flush(force=True)  # and the live event, which carries the message


def _retry_while_down(ctx: OperationContext, ids: list[int], pacer: Pacer, sizer: Sizer) -> None:
    """Dead letters whose send failed because their broker was down go again once it answers (issue 14's outage
    drill): the operation says which connection is down and why, waits with a growing backoff (a pause or a cancel
    still stops it at once), then sends what is left and goes on. Letters that failed for another reason (refused,
    a poison message) stay failed with their errors. After DLQ_REPLAY_OUTAGE_WAIT_SECONDS of waiting it stops."""
    waited, delay = 0.0, 1.0
    while True:
        done = set(ReplayRecord.objects.filter(operation=ctx.operation).values_list("dead_letter_id", flat=True))
        remaining = [i for i in ids if i not in done]
        down = _down_connections(ctx, remaining) if remaining else {}
        if not down:
            return
        while down:
            if waited >= settings.DLQ_REPLAY_OUTAGE_WAIT_SECONDS:
                _say(
                    ctx,
                    f"gave up after {waited:.0f} s: " + "; ".join(f"{k} is down ({why})" for k, why in down.items()),
                )
                return
            _say(
                ctx,
                "waiting: "
                + "; ".join(f"{k} is down ({why})" for k, why in down.items())
                + f"; {len(remaining)} dead letters left, trying again in {delay:.0f} s",
            )
            ctx.sleep(delay)
            waited += delay
            delay = min(delay * 2, 30.0)
            down = _down_connections(ctx, remaining)
        # Back: the failed attempts are history, not errors of letters that are now replayed; progress restarts from
        # what is recorded.
        ctx.done = len(done)
        _say(ctx, f"resumed after {waited:.0f} s: {', '.join(sorted(_keys_of(ctx, remaining)))} answers again")
        try:
            replay_ids(ctx, remaining, pacer, sizer)
        except BrokerDown:
            pass  # down again: the loop waits once more
        _forget_errors_of_replayed(ctx, ids)


def _keys_of(ctx: OperationContext, ids: list[int]) -> set[str]:
    if ctx.params.get("broker"):
        return {ctx.params["broker"]}
    return {dl.replay_destination()[0] for dl in DeadLetter.objects.filter(pk__in=ids[:1000]).select_related("source")}


def _forget_errors_of_replayed(ctx: OperationContext, ids: list[int]) -> None:
    """After a pass that followed an outage: errors are those of the letters still not replayed (each failed in the
    last pass), not the attempts made while the broker was down."""
    ctx.flush(force=True)
    op = Operation.objects.get(pk=ctx.operation.pk)
    done = {str(i) for i in ReplayRecord.objects.filter(operation=op).values_list("dead_letter_id", flat=True)}
    kept = [e for e in op.errors if e.get("item") not in done]
    left = sum(1 for i in dict.fromkeys(ids) if str(i) not in done)
    count = min(op.error_count, left)
    Operation.objects.filter(pk=op.pk).update(errors=kept, error_count=count)
    ctx.operation.errors, ctx.operation.error_count = kept, count


@register("dlq.replay", label="Replay dead letters", startable=False, validate=validate)
def run_replay(ctx: OperationContext) -> dict:
    p = ctx.params
    ids: list[int] = list(dict.fromkeys(p["ids"]))  # a repeated id is one target
    done = set(ReplayRecord.objects.filter(operation=ctx.operation).values_list("dead_letter_id", flat=True))
    ctx.done = len(done)
    if done:
        reconcile(ctx.operation)
    ctx.set_total(len(ids))
    todo = [i for i in ids if i not in done]
    pacer = Pacer(p["rate"])
    sizer = Sizer(p["batch"], pacer)
    canary_left = max(0, p["canary"] - ctx.done)
    started = time.monotonic()
    if canary_left:
        replay_ids(ctx, todo[:canary_left], pacer, sizer)
        todo = todo[canary_left:]
        _canary(ctx, [i for i in ids[: p["canary"]]])
    try:
        replay_ids(ctx, todo, pacer, sizer)
    except BrokerDown:
        pass  # what is left goes once the broker answers
    _retry_while_down(ctx, ids, pacer, sizer)
    elapsed = time.monotonic() - started
    replayed = ReplayRecord.objects.filter(operation=ctx.operation).count()
    return {
        "replayed": replayed,
        "dry_run": p["dry_run"],
        "elapsed_seconds": round(elapsed, 3),
        "rate": round(pacer.sent / elapsed, 2) if elapsed > 0 else None,
    }
