"""Backlog figures for the page, the API, /metrics and the dashboard — each a handful of aggregate queries.

Counts here cover only open rows (pending + failed) through a partial index: the backlog, not the whole table.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.urls import reverse
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from console.dashboard import Tile
from outbox.models import OutboxDestinationState, OutboxEvent, OutboxRelay

TABLE = OutboxEvent._meta.db_table
BUCKET_SECONDS = 10
WINDOW_MINUTES = 15


@dataclass
class Line:
    name: str
    unpublished: int = 0
    failed: int = 0
    blocked_keys: int = 0
    oldest: datetime | None = None
    paused: bool = False

    def oldest_age_seconds(self, now: datetime) -> float | None:
        return round((now - self.oldest).total_seconds(), 3) if self.oldest else None

    def as_json(self, now: datetime) -> dict:
        return {
            "unpublished": self.unpublished,
            "failed": self.failed,
            "blocked_keys": self.blocked_keys,
            "oldest_unpublished_age_seconds": self.oldest_age_seconds(now),
            "paused": self.paused,
        }


@dataclass
class Backlog:
    now: datetime
    total: Line
    destinations: dict[str, Line] = field(default_factory=dict)
    event_types: dict[str, Line] = field(default_factory=dict)
    relays: list[OutboxRelay] = field(default_factory=list)  # running first, then stale, most recently seen first

    @property
    def running(self) -> list[OutboxRelay]:
        return [r for r in self.relays if r.is_running(self.now)]

    @property
    def stale(self) -> list[OutboxRelay]:
        return [r for r in self.relays if not r.is_running(self.now)]

    @property
    def stalled(self) -> bool:
        """Events wait and no relay runs: nothing will publish them until one is started."""
        return self.total.unpublished > self.total.failed and not self.running

    def as_json(self) -> dict:
        return {
            **self.total.as_json(self.now),
            "relays_running": len(self.running),
            "relays": [r.as_json(self.now) for r in self.relays],
            "destinations": {name: line.as_json(self.now) for name, line in sorted(self.destinations.items())},
            "event_types": {name: line.as_json(self.now) for name, line in sorted(self.event_types.items())},
        }


def _add(line: Line, status: str, n: int, oldest: datetime) -> None:
    # "unpublished" = every open row (pending or failed); failed is also shown on its own.
    line.unpublished += n
    if status == OutboxEvent.Status.FAILED:
        line.failed += n
    if line.oldest is None or oldest < line.oldest:
        line.oldest = oldest


def backlog(now: datetime | None = None) -> Backlog:
    now = now or timezone.now()
    result = Backlog(now, Line("all"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT destination, event_type, status, count(*), min(created_at) FROM {TABLE}
                WHERE status IN ('pending', 'failed') GROUP BY 1, 2, 3"""
        )
        for destination, event_type, status, n, oldest in cursor.fetchall():
            _add(result.total, status, n, oldest)
            _add(result.destinations.setdefault(destination, Line(destination)), status, n, oldest)
            _add(result.event_types.setdefault(event_type, Line(event_type)), status, n, oldest)
        # A key is blocked when its head row has failed at least once (backing off) or is `failed`.
        cursor.execute(
            f"""SELECT destination, count(*) FROM (
                    SELECT DISTINCT ON (order_key) destination, status, attempts FROM {TABLE}
                    WHERE status IN ('pending', 'failed') ORDER BY order_key, id
                ) AS head WHERE status = 'failed' OR attempts > 0 GROUP BY 1"""
        )
        for destination, n in cursor.fetchall():
            result.destinations.setdefault(destination, Line(destination)).blocked_keys = n
            result.total.blocked_keys += n
    for state in OutboxDestinationState.objects.filter(paused=True):
        result.destinations.setdefault(state.destination, Line(state.destination)).paused = True
    relays = list(OutboxRelay.objects.order_by("-seen_at"))
    for r in relays:  # in seconds: a heartbeat's age is "0 minutes" to Django's timesince
        r.seen_ago = _age_text((now - r.seen_at).total_seconds())
        r.batch_ago = _age_text((now - r.last_batch_at).total_seconds()) if r.last_batch_at else None
    result.relays = sorted(relays, key=lambda r: not r.is_running(now))  # stable: recent first within each
    return result


def series(now: datetime | None = None, minutes: int = WINDOW_MINUTES) -> dict:
    """Rates in / out (events per second) and publish latency percentiles per BUCKET_SECONDS over the window."""
    now = now or timezone.now()
    since = now - timedelta(minutes=minutes)
    origin = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    step = timedelta(seconds=BUCKET_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, published_at, %s) AS t, count(*),
                       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
                FROM {TABLE} WHERE status = 'published' AND published_at >= %s GROUP BY 1""",
            [step, origin, since],
        )
        out = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT date_bin(%s, created_at, %s), count(*) FROM {TABLE} WHERE created_at >= %s GROUP BY 1",
            [step, origin, since],
        )
        came = dict(cursor.fetchall())
    buckets = sorted(set(out) | set(came))
    return {
        "bucket_seconds": BUCKET_SECONDS,
        "t": [int(b.timestamp()) for b in buckets],
        "rate_in": [round(came.get(b, 0) / BUCKET_SECONDS, 2) for b in buckets],
        "rate_out": [round(out[b][0] / BUCKET_SECONDS, 2) if b in out else 0 for b in buckets],
        "p50_ms": [_pct(out, b, 0) for b in buckets],
        "p95_ms": [_pct(out, b, 1) for b in buckets],
        "p99_ms": [_pct(out, b, 2) for b in buckets],
    }


def _pct(out: dict, bucket, index: int) -> float | None:
    if bucket not in out or out[bucket][1] is None or out[bucket][1][index] is None:
        return None
    return round(out[bucket][1][index], 1)


def latency(now: datetime | None = None, minutes: int = 5) -> dict:
    """p50 / p95 / p99 publish latency (ms) over the last `minutes`."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
                FROM {TABLE} WHERE status = 'published' AND published_at >= %s""",
            [since],
        )
        n, pcts = cursor.fetchone()
    pcts = pcts or [None, None, None]
    return {
        "window_minutes": minutes,
        "published": n,
        "rate_out": round(n / (minutes * 60), 2),
        "p50_ms": _round(pcts[0]),
        "p95_ms": _round(pcts[1]),
        "p99_ms": _round(pcts[2]),
    }


def _round(value):
    return None if value is None else round(value, 1)


def tiles() -> list[Tile]:
    b = backlog()
    age = b.total.oldest_age_seconds(b.now)
    href = reverse("outbox")
    return [
        Tile(
            "outbox-backlog",
            "Outbox backlog",
            str(b.total.unpublished),
            href,
            bad=b.total.failed > 0 or b.stalled,
            detail=("no relay running; " if b.stalled else "")
            + f"{b.total.failed} failed, {b.total.blocked_keys} blocked keys",
        ),
        Tile("outbox-oldest", "Oldest unpublished", _age_text(age), href, bad=age is not None and age > 60),
    ]


def publish_latency(window) -> dict:
    """p95 publish latency (ms) per bucket of `window` (published rows are kept OUTBOX_RETENTION_HOURS, so a week
    shows latency for that last stretch only); the dashboard's outbox chart (monitoring/dashboard.py) draws it beside
    the backlog the sampler keeps."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, published_at, %s), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
                FROM {TABLE} WHERE status = 'published' AND published_at >= %s GROUP BY 1""",
            [window.step, window.origin, window.since],
        )
        return dict(cursor.fetchall())


def _age_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def metric_families():
    b = backlog()
    unpublished = GaugeMetricFamily(
        "switchyard_outbox_unpublished", "Outbox rows not yet published (pending or failed)", labels=["destination"]
    )
    failed = GaugeMetricFamily(
        "switchyard_outbox_failed", "Outbox rows that exhausted their retries", labels=["destination"]
    )
    blocked = GaugeMetricFamily(
        "switchyard_outbox_blocked_keys", "Keys whose head row is failing", labels=["destination"]
    )
    oldest = GaugeMetricFamily(
        "switchyard_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished row", labels=["destination"]
    )
    for name, line in b.destinations.items():
        unpublished.add_metric([name], line.unpublished)
        failed.add_metric([name], line.failed)
        blocked.add_metric([name], line.blocked_keys)
        oldest.add_metric([name], line.oldest_age_seconds(b.now) or 0)
    yield from (unpublished, failed, blocked, oldest)
    yield GaugeMetricFamily(
        "switchyard_outbox_relays_running", "Relay processes that reported within the last minute", len(b.running)
    )
    lat = latency()
    gauge = GaugeMetricFamily(
        "switchyard_outbox_publish_latency_ms", "Publish latency over the last 5 minutes", labels=["quantile"]
    )
    for q in ("p50", "p95", "p99"):
        if lat[f"{q}_ms"] is not None:
            gauge.add_metric([q], lat[f"{q}_ms"])
    yield gauge


def outbox_trace(correlation: str, limit: int):
    """The events written under the correlation id (not indexed: an on-demand page over a table the purge keeps to
    OUTBOX_RETENTION_HOURS)."""
    from console.trace import TraceRow, TraceSection, stamp

    events = (
        OutboxEvent.objects.filter(correlation_id=correlation).defer("payload", "headers").order_by("-id")[: limit + 1]
    )
    rows = [
        TraceRow(
            [
                str(e.event_id),
                e.event_type,
                e.destination,
                e.key or "—",
                e.status,
                str(e.attempts),
                stamp(e.created_at),
                stamp(e.published_at),
                f"{e.latency_ms:.1f} ms" if e.latency_ms is not None else "—",
            ],
            e.get_absolute_url(),
            e.created_at,
        )
        for e in events
    ]
    columns = ["Event", "Type", "Destination", "Key", "Status", "Attempts", "Created", "Published", "Latency"]
    return TraceSection("outbox", "Outbox events", columns, rows)
