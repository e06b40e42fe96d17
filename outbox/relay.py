"""The relay: claim a batch of outbox rows, publish it, mark it — one `run_once()` step at a time.

Per-key order with several relays at once (docs/decisions/0030-outbox-ordering-and-delivery.md):

1. Find the head of every key (`order_key`) among rows that still block their key (pending or failed), oldest
   first, and keep the heads that are pending, due, and on a destination that is not paused.
2. Take transaction-scoped advisory locks on up to a batch of those keys with pg_try_advisory_xact_lock; a key
   another relay (or an operator action) holds is skipped, never waited for.
3. In a new statement (so a fresh snapshot: whatever the previous holder of a key committed is visible) select the
   open rows of the locked keys in id order, FOR UPDATE SKIP LOCKED, and keep per key only the prefix that is
   pending and due — a failed or backing-off row stops its key.
4. Publish in waves while holding the locks, one publish_batch per broker per wave (brokers in parallel). For SQS,
   RabbitMQ and NATS wave n holds the n-th row of every key, so a row is sent only after the key's previous row was
   confirmed and a failure can never let a later row of its key overtake it. A key's consecutive Kafka rows to
   one topic share a wave: one key is one partition, and the idempotent producer keeps a partition in order; a row
   to another topic (another partition) waits a wave like any other broker's. The one failure librdkafka reports
   synchronously per message (too large) is checked here before anything is sent (each adapter's
   max_message_bytes), for every broker. Known gap (docs/decisions/0031): a broker-side rejection of one record
   batch does not stop librdkafka from delivering a later batch of the same partition, so a later row of that key
   can go out first; it is left pending and sent again after the earlier one (first-seen order can break in that
   case, nothing is lost).
5. In the same transaction: mark every confirmed row published in one UPDATE (its latency counted from the commit
   that wrote it, OutboxCommit), give the first failed row of a key its backoff (or `failed` after
   OUTBOX_MAX_ATTEMPTS) in one UPDATE, leave the key's later rows pending (never sent); commit, which releases the
   locks.

A relay killed during 4 leaves its rows pending (the connection dies, the locks go): they are sent again. That is
the at-least-once window; consumers deduplicate by event_id.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from brokers.base import Capability, OutgoingMessage, PublishError
from console import brokers
from console.backoff import backoff as delay
from outbox.models import OutboxEvent, envelope_body, envelope_headers, split_destination

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "switchyard_outbox"
# Rows of one key per batch: each is a wave (a broker round trip), so a hot key cannot make one batch slow.
MAX_WAVES = 32
TABLE = OutboxEvent._meta.db_table

# The head (oldest open row) of every key, by a loose index scan over outbox_open_by_key: one index probe per key
# instead of sorting every open row, which matters once the backlog is large.
_HEADS_SQL = f"""
WITH RECURSIVE keys AS (
    (SELECT order_key FROM {TABLE} WHERE status IN ('pending', 'failed') ORDER BY order_key LIMIT 1)
    UNION ALL
    SELECT (SELECT order_key FROM {TABLE}
            WHERE status IN ('pending', 'failed') AND order_key > keys.order_key ORDER BY order_key LIMIT 1)
    FROM keys WHERE keys.order_key IS NOT NULL
)
SELECT head.order_key FROM keys
CROSS JOIN LATERAL (
    SELECT id, order_key, destination, status, next_attempt_at FROM {TABLE}
    WHERE status IN ('pending', 'failed') AND order_key = keys.order_key ORDER BY id LIMIT 1
) AS head
WHERE head.status = 'pending' AND head.next_attempt_at <= %s
  AND head.destination NOT IN (SELECT destination FROM outbox_outboxdestinationstate WHERE paused)
ORDER BY head.id
LIMIT %s
"""
# Advisory locks are one namespace per database: the two-int form with our own first int keeps ours apart.
LOCK_SPACE = 0x0B0C  # "outbox"
# A function scan yields in array order and LIMIT stops it, so locks are tried oldest head first and only until
# enough keys are held: a second relay skips the first relay's keys and takes the next ones.
_LOCK_SQL = f"""
SELECT k FROM unnest(%s::text[]) AS wanted(k)
WHERE pg_try_advisory_xact_lock({LOCK_SPACE}, hashtext(k))
LIMIT %s
"""
# Plain columns only: the envelope is formatted in Python by envelope_body(), the model's own, so the two cannot drift
# (json_build_object here cost about what the Python step now does: ADR 0031). occurred_at comes as ISO 8601 text in
# UTC (to_json of a timestamptz), cheaper to fetch than a timestamptz psycopg turns into a datetime. Headers come
# back only when the row has its own (most have none).
_ROWS_SQL = f"""
SELECT id, order_key, destination, key, status, next_attempt_at <= %s AS due, attempts, event_id::text, event_type,
       schema_version, correlation_id, NULLIF(headers, '{{}}'::jsonb)::text, to_json(created_at) #>> '{{}}',
       encoding, claim_check_id::text, payload
FROM {TABLE}
WHERE status IN ('pending', 'failed')
  AND order_key = ANY(%s)
ORDER BY id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_MARK_PUBLISHED_SQL = f"""
UPDATE {TABLE}
SET status = 'published', published_at = %s, attempts = attempts + 1, last_error = '',
    latency_ms = GREATEST(0, EXTRACT(EPOCH FROM (%s - COALESCE(
        (SELECT c.committed_at FROM outbox_outboxcommit c WHERE c.event_id = {TABLE}.id), created_at))) * 1000)
WHERE id = ANY(%s)
"""
_MARK_FAILED_SQL = f"""
UPDATE {TABLE} AS e
SET attempts = e.attempts + 1, last_error = f.error, next_attempt_at = f.next_at,
    status = CASE WHEN e.attempts + 1 >= %s THEN 'failed' ELSE 'pending' END
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS f(id, error, next_at)
WHERE e.id = f.id
"""


# A row whose connection is down: it waits for the connection's retry, keeps its attempts, says why.
_PUT_OFF_SQL = f"""
UPDATE {TABLE} AS e
SET last_error = f.error, next_attempt_at = f.next_at
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS f(id, error, next_at)
WHERE e.id = f.id
"""


def backoff(attempts: int) -> timedelta:
    """How long a failed row waits: equal jitter (at least half the curve, so a row that keeps failing never
    hammers its broker), doubling from twice the base after the first failure as it always has."""
    return timedelta(
        milliseconds=delay(attempts + 1, settings.OUTBOX_BACKOFF_BASE_MS, settings.OUTBOX_BACKOFF_MAX_MS, "equal")
    )


def lock_keys(cursor, keys: list[str], limit: int) -> list[str]:
    """Advisory-lock up to `limit` order keys for this transaction, without waiting; returns the ones obtained."""
    if not keys:
        return []
    cursor.execute(_LOCK_SQL, [keys, limit])
    return [k for (k,) in cursor.fetchall()]


@dataclass(slots=True)
class Row:
    """A claimed row as the relay needs it: plain values and its message (no model instance on the hot path)."""

    pk: int
    order_key: str
    destination: str
    status: str
    due: bool
    attempts: int
    message: OutgoingMessage
    size: int  # body + key + headers, for the per-broker message limit
    wave: int = 0  # which round trip of the batch sends it (see Relay._publish)
    broker: str = ""  # the connection key: "kafka:prod-eu", or "kafka" for the kind's default

    def __post_init__(self):
        if not self.broker:
            self.broker = _split(self.destination)[0]

    @classmethod
    def from_cursor(cls, values: tuple) -> Row:
        (pk, order_key, destination, key, status, due, attempts, event_id, event_type, schema_version, correlation_id,
         own_headers, occurred_at, encoding, claim_check, payload) = values  # fmt: skip
        headers = json.loads(own_headers) if own_headers else {}
        headers = envelope_headers(headers, event_id, event_type, schema_version, correlation_id)
        body = envelope_body(
            event_id, event_type, schema_version, occurred_at, correlation_id, payload, encoding, claim_check
        )
        size = len(body) + len(key) + sum(len(k) + len(v) for k, v in headers.items())
        connection_key, target = _split(destination)
        message = OutgoingMessage(target, body, key or None, headers)
        return cls(pk, order_key, destination, status, due, attempts, message, size, broker=connection_key)


@dataclass
class BatchResult:
    claimed: int = 0
    published: int = 0
    failed: int = 0  # rows that got a backoff or became `failed`
    deferred: int = 0  # later rows of a key whose earlier row failed in this batch (not sent; they wait)


class Relay:
    def __init__(self, batch_size: int | None = None, on_batch: Callable[[BatchResult], None] | None = None):
        self.batch_size = batch_size or settings.OUTBOX_BATCH_SIZE
        self.on_batch = on_batch
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbox-publish")
        self.totals = BatchResult()
        # Connections that did not answer: connection key -> (retry at, failures in a row, why). Their rows are put
        # off until then without an attempt (see _publish), so one dead cluster never holds up every batch for its
        # delivery timeout, nor spends the attempts of rows that never reached it.
        self._down: dict[str, tuple[datetime, int, str]] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def run_once(self) -> bool:
        """Relay one batch. True when it found work (the loop then goes again at once)."""
        with transaction.atomic():
            result = self._relay_batch()
        self.totals.claimed += result.claimed
        self.totals.published += result.published
        self.totals.failed += result.failed
        self.totals.deferred += result.deferred
        if result.claimed and self.on_batch is not None:
            self.on_batch(result)
        return result.claimed > 0

    def _relay_batch(self) -> BatchResult:
        now = timezone.now()
        with connection.cursor() as cursor:
            # Losing this commit in a Postgres crash only loses "published" marks, so the rows are sent again: the
            # at-least-once contract already allows that, and not waiting for the WAL flush halves the batch's cost.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            # More heads than we lock: room to step past keys that other relays hold right now.
            cursor.execute(_HEADS_SQL, [now, self.batch_size * 4])
            keys = lock_keys(cursor, [k for (k,) in cursor.fetchall()], self.batch_size)
            if not keys:
                return BatchResult()
            cursor.execute(_ROWS_SQL, [now, keys, self.batch_size])
            rows = [Row.from_cursor(values) for values in cursor.fetchall()]
        batch = _due_prefixes(rows)
        if not batch:
            return BatchResult()
        errors = self._publish(batch)
        return self._mark(batch, errors, self._put_off)

    def _publish(self, batch: list[Row]) -> dict[int, str]:
        """Publish the batch wave by wave (see the module docstring); returns {row id: error} for failed rows."""
        errors: dict[int, str] = {}
        # Per key, the first row that must not be sent (it failed, or is too large); rows before it still go.
        cut: dict[str, int] = {}
        limits: dict[str, int | None] = {}
        # Rows of a connection that is down: not sent, not attempted; their key waits until the connection's retry.
        self._put_off: dict[int, tuple[datetime, str]] = {}
        now = timezone.now()
        for row in batch:
            down = self._down.get(row.broker)
            if down is not None and down[0] > now and row.order_key not in cut:
                self._put_off[row.pk] = (down[0], down[2])
                cut[row.order_key] = row.pk
        for row in batch:
            if row.broker not in limits:
                limits[row.broker] = _max_bytes(row.broker)
            limit = limits[row.broker]
            if row.order_key not in cut and limit and row.size > limit:
                errors[row.pk] = f"message of {row.size} bytes is over the {row.broker} limit of {limit} bytes"
                cut[row.order_key] = row.pk
        waves: list[list[Row]] = [[] for _ in range(batch[-1].wave + 1 if batch else 0)]
        for row in batch:
            waves[row.wave].append(row)
        for wave in waves:
            sending = [row for row in wave if row.pk < cut.get(row.order_key, row.pk + 1)]
            if not sending:
                continue
            errors.update(self._publish_wave(sending))
            for row in sending:
                if row.pk in errors:
                    cut[row.order_key] = min(row.pk, cut.get(row.order_key, row.pk))
        return errors

    def _publish_wave(self, rows: list[Row]) -> dict[int, str]:
        by_broker: dict[str, list[Row]] = {}
        for row in rows:
            by_broker.setdefault(row.broker, []).append(row)
        if len(by_broker) == 1:  # the common case: no thread hop
            name, group = by_broker.popitem()
            found = {name: (group, _publish_one_broker(name, group))}
        else:
            futures = {name: self._pool.submit(_publish_one_broker, name, group) for name, group in by_broker.items()}
            found = {name: (by_broker[name], future.result()) for name, future in futures.items()}
        errors: dict[int, str] = {}
        for name, (group, failed) in found.items():
            errors.update(failed)
            self._judge(name, group, failed)
        return errors

    def _judge(self, name: str, rows: list[Row], failed: dict[int, str]) -> None:
        """After a connection's publish: when every row failed, ask the connection itself (one health check, at most
        HEALTH_TIMEOUT) whether it is down — a poison row fails alone, a dead cluster fails everything. Down: its
        rows wait, unattempted, for a backoff that doubles per failure (full jitter, capped at a minute)."""
        if not failed or len(failed) < len(rows):
            if name in self._down:
                log.warning("outbox: %s answers again", name)
                del self._down[name]
            return
        try:
            health = brokers.health(brokers.by_key(name))
        except brokers.NotConfigured as exc:
            reachable, why = False, str(exc)
        else:
            reachable, why = health.reachable, f"{health.reason or 'error'}: {health.error or ''}"
        if reachable:
            return
        failures = self._down.get(name, (None, 0, ""))[1] + 1
        base, cap = settings.OUTBOX_CONNECTION_BACKOFF_BASE_MS / 1000, settings.OUTBOX_CONNECTION_BACKOFF_MAX_MS / 1000
        until = timezone.now() + timedelta(seconds=delay(failures, base, cap, "equal"))
        if failures == 1:
            log.warning("outbox: %s is down (%s); its rows wait", name, brokers.scrub(why)[:500])
        self._down[name] = (until, failures, brokers.scrub(why)[:1000])

    def _mark(
        self, batch: list[Row], errors: dict[int, str], put_off: dict[int, tuple[datetime, str]] | None = None
    ) -> BatchResult:
        confirmed_at = timezone.now()
        result = BatchResult(claimed=len(batch))
        published: list[int] = []
        failed: list[tuple[int, str, datetime]] = []
        waiting: list[tuple[int, str, datetime]] = []
        broken: set[str] = set()
        put_off = put_off or {}
        for row in batch:
            if row.pk in put_off and row.order_key not in broken:
                # Its connection is down: the key's head waits for the connection's retry, with no attempt spent.
                broken.add(row.order_key)
                until, why = put_off[row.pk]
                waiting.append((row.pk, f"not sent: {row.broker} is down ({why})"[:2000], until))
                result.deferred += 1
            elif row.order_key in broken:
                result.deferred += 1
            elif row.pk in errors:
                broken.add(row.order_key)
                failed.append((row.pk, errors[row.pk][:2000], confirmed_at + backoff(row.attempts)))
            else:
                published.append(row.pk)
        with connection.cursor() as cursor:
            if published:
                cursor.execute(_MARK_PUBLISHED_SQL, [confirmed_at, confirmed_at, published])
            if failed:
                ids, reasons, next_at = zip(*failed, strict=True)
                cursor.execute(
                    _MARK_FAILED_SQL, [settings.OUTBOX_MAX_ATTEMPTS, list(ids), list(reasons), list(next_at)]
                )
            if waiting:
                ids, reasons, next_at = zip(*waiting, strict=True)
                cursor.execute(_PUT_OFF_SQL, [list(ids), list(reasons), list(next_at)])
        result.published, result.failed = len(published), len(failed)
        return result


def _due_prefixes(rows: list[Row]) -> list[Row]:
    """Per key, the leading rows that are pending and due; a failed or backing-off row ends its key. Each kept row gets
    its wave: a Kafka row rides with the key's previous row when that one went to the same topic (same key, same
    partition: the producer keeps it in order), anything else — another topic included — waits one wave for the row
    before it to be confirmed. A key stops at MAX_WAVES waves.
    The result is sorted by wave, so the last row has the deepest one."""
    stopped: set[str] = set()
    last: dict[str, Row] = {}
    batch = []
    for row in rows:
        if row.order_key in stopped:
            continue
        if row.status != OutboxEvent.Status.PENDING or not row.due:
            stopped.add(row.order_key)
            continue
        before = last.get(row.order_key)
        if before is not None:
            together = _pipelined(row.broker) and before.destination == row.destination
            row.wave = before.wave if together else before.wave + 1
            if row.wave >= MAX_WAVES:
                stopped.add(row.order_key)
                continue
        last[row.order_key] = row
        batch.append(row)
    batch.sort(key=lambda row: row.wave)  # stable: id order within a wave
    return batch


@functools.lru_cache(maxsize=4096)
def _split(destination: str) -> tuple[str, str]:
    """(connection key, target) of a destination URI; the same few destinations repeat across every batch."""
    return split_destination(destination)


def _pipelined(key: str) -> bool:
    """Whether the connection's client keeps a key's messages in order when sent together (see step 4)."""
    return brokers.kind_supports(key, Capability.KEY_ORDERED_PIPELINE)


def _max_bytes(key: str) -> int | None:
    """The connection's message size limit, from its adapter; None when the connection is unknown (the publish
    then fails the row with that reason)."""
    try:
        return brokers.by_key(key).adapter().max_message_bytes
    except brokers.NotConfigured:
        return None


def _publish_one_broker(name: str, rows: list[Row]) -> dict[int, str]:
    try:
        adapter = brokers.by_key(name).adapter()
    except brokers.NotConfigured as exc:
        return {row.pk: str(exc) for row in rows}
    try:
        adapter.publish_batch([row.message for row in rows])
    except PublishError as exc:
        reasons = {id(message): reason for message, reason in exc.failures}
        return {row.pk: reasons[id(row.message)] for row in rows if id(row.message) in reasons}
    except Exception as exc:  # noqa: BLE001 - any other broker error fails the whole group, which is retried
        log.warning("outbox: publishing to %s failed", name, exc_info=True)
        return {row.pk: f"{type(exc).__name__}: {exc}" for row in rows}
    return {}


def purge(now: datetime | None = None, chunk: int = 10_000) -> int:
    """Delete published and skipped rows older than OUTBOX_RETENTION_HOURS, and claim checks nobody needs."""
    from outbox.models import OutboxCommit, OutboxPayload

    cutoff = (now or timezone.now()) - timedelta(hours=settings.OUTBOX_RETENTION_HOURS)
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"""DELETE FROM {TABLE} WHERE id IN (
                    SELECT id FROM {TABLE}
                    WHERE (status = 'published' AND published_at < %s) OR (status = 'skipped' AND created_at < %s)
                    LIMIT %s)""",
                [cutoff, cutoff, chunk],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < chunk:
                break
    # Commit times are read once, when the row is marked published; older ones only matter to rows still waiting
    # after the retention period, whose latency then starts at the insert instead.
    OutboxCommit.objects.filter(committed_at__lt=cutoff).delete()
    OutboxPayload.objects.filter(created_at__lt=cutoff).exclude(
        pk__in=OutboxEvent.objects.filter(claim_check__isnull=False).values("claim_check")
    ).delete()
    return deleted


class Listener:
    """A separate autocommit psycopg connection that LISTENs for the NOTIFY the table's trigger sends on commit."""

    def __init__(self):
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        self.conn = psycopg.connect(**params, autocommit=True)
        self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """True if a notification came within `timeout` seconds."""
        return any(True for _ in self.conn.notifies(timeout=timeout, stop_after=1))

    def close(self) -> None:
        self.conn.close()


class LiveThrottle:
    """Broadcast the backlog at most once a second per relay: a busy relay must not flood the channel layer."""

    def __init__(self, every: float = 1.0):
        self.every = every
        self.last = 0.0

    def __call__(self, result: BatchResult) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        _announce()


class Heartbeat:
    """This process's OutboxRelay row: written at start, then at most every HEARTBEAT_SECONDS from the loop, and
    deleted on a graceful stop. One upsert of one narrow row: nothing next to the batches it reports on."""

    def __init__(self, name: str | None = None):
        import os
        import socket

        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = timezone.now()
        self.last = 0.0
        self.last_batch_at: datetime | None = None

    def __call__(self, totals: BatchResult, worked: bool) -> None:
        from outbox.models import OutboxRelay

        if worked:
            self.last_batch_at = timezone.now()
        if time.monotonic() - self.last < OutboxRelay.HEARTBEAT_SECONDS:
            return
        first = self.last == 0.0
        self.last = time.monotonic()
        now = {
            "seen_at": timezone.now(),
            "last_batch_at": self.last_batch_at,
            "published": totals.published,
            "failed": totals.failed,
        }
        OutboxRelay.objects.update_or_create(
            name=self.name, defaults=now, create_defaults={**now, "started_at": self.started_at}
        )
        if first:
            _announce()  # an open backlog page stops saying that no relay runs

    def gone(self) -> None:
        from outbox.models import OutboxRelay

        try:
            OutboxRelay.objects.filter(name=self.name).delete()
            _announce()
        except Exception:  # noqa: BLE001 - stopping anyway; the row goes stale and the page says so
            log.warning("outbox relay could not remove its heartbeat", exc_info=True)


def _announce() -> None:
    from outbox.live import announce_backlog

    announce_backlog()


def serve(
    stop: threading.Event, relay: Relay | None = None, purge_every: float = 300.0, heartbeat: Heartbeat | None = None
) -> BatchResult:
    """The thin loop around run_once(): relay while there is work, else wait for NOTIFY or the fallback poll."""
    relay = relay or Relay(on_batch=LiveThrottle())
    heartbeat = heartbeat or Heartbeat()
    listener = None
    last_purge = 0.0
    try:
        while not stop.is_set():
            close_old_connections()
            try:
                if listener is None:
                    listener = Listener()
                worked = relay.run_once()
                heartbeat(relay.totals, worked)
                if time.monotonic() - last_purge > purge_every:
                    last_purge = time.monotonic()
                    purge()
            except Exception:
                log.exception("outbox relay step failed; trying again shortly")
                if listener is not None:
                    listener.close()
                    listener = None
                stop.wait(1.0)
                continue
            if not worked:
                try:
                    _idle(listener, stop, settings.OUTBOX_POLL_MS / 1000)
                except Exception:
                    log.warning("outbox relay lost its LISTEN connection; reconnecting", exc_info=True)
                    listener.close()
                    listener = None
    finally:
        if listener is not None:
            listener.close()
        relay.close()
        heartbeat.gone()
    return relay.totals


def _idle(listener: Listener, stop: threading.Event, poll: float) -> None:
    """Wait for a NOTIFY, the fallback poll or a stop request, whichever comes first (stop within 0.25 s)."""
    deadline = time.monotonic() + poll
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or listener.wait(min(0.25, remaining)):
            return
