"""Reads shared by the pages, the API and the live consumer: list rows with sparklines, partitions, history."""

from django.conf import settings
from django.db import connection
from django.utils import timezone

from brokers.connections import KINDS as BROKER_KINDS
from monitoring.models import RANK, ConsumerTarget, PartitionState, Sample
from monitoring.partitions import F_COMMITTED, F_END, F_PRODUCED, partition_status

RANGES = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400}
SPARK_POINTS = 30


def scope(broker: str) -> dict:
    """The lookups a broker filter means: "kafka" every Kafka connection, "kafka:prod-eu" one, "celery" the queue."""
    kind, _, name = broker.partition(":")
    return {"broker": kind, **({"connection": name} if name else {})}


def find_target(broker: str, name: str) -> ConsumerTarget | None:
    """The target `name` on `broker`: a connection key ("kafka:prod-eu"), a kind alone for its default connection
    ("kafka", as URLs before connections had names), or one of the console's own ("celery", "outbox", "dlq")."""
    kind, _, connection = broker.partition(":")
    if not connection and kind in BROKER_KINDS:
        from console.brokers import default_name

        connection = default_name(kind) or "default"
    return ConsumerTarget.objects.filter(broker=kind, connection=connection, name=name).first()


def targets(status: str = "", broker: str = "", ids=None, q: str = "") -> list[ConsumerTarget]:
    qs = ConsumerTarget.objects.filter(gone=False)
    if broker:
        qs = qs.filter(**scope(broker))
    if q:
        qs = qs.filter(name__icontains=q)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    rows = [t for t in qs.order_by("broker", "connection", "name") if matches_status(t, status)]
    rows.sort(key=lambda t: (-RANK.get(t.status, 0), t.broker, t.connection, t.name))
    return rows


def matches_status(target: ConsumerTarget, status: str) -> bool:
    """The list's status filter: "" any, "bad" anything not OK, else that status."""
    return not status or (target.status != "OK" if status == "bad" else target.status == status)


def matches(target: ConsumerTarget, status: str = "", broker: str = "", q: str = "") -> bool:
    """The same test as targets(), for one row in hand (the live list appends only new rows its filter shows)."""
    return (
        (not broker or all(getattr(target, k) == v for k, v in scope(broker).items()))
        and (not q or q.casefold() in target.name.casefold())
        and matches_status(target, status)
    )


def attach_sparklines(rows: list[ConsumerTarget], seconds: int = 3600) -> None:
    """One query for every row's last-hour lag series, drawn as an SVG polyline (no JS needed for the list)."""
    since = timezone.now() - timezone.timedelta(seconds=seconds)
    series: dict[int, list[int]] = {}
    for target_id, lag in (
        Sample.objects.filter(target__in=[t.pk for t in rows], partition__isnull=True, time__gte=since)
        .order_by("target_id", "time")
        .values_list("target_id", "lag")
    ):
        series.setdefault(target_id, []).append(lag or 0)
    for t in rows:
        values = series.get(t.pk, [])[-SPARK_POINTS:]
        t.spark = _polyline(values)
        t.trend = (
            ""
            if len(values) < 2
            else ("up" if values[-1] > values[0] else "down" if values[-1] < values[0] else "flat")
        )


def _polyline(values: list[int], width: int = 100, height: int = 20) -> str:
    if len(values) < 2:
        return ""
    top = max(values) or 1
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v / top) * height:.1f}" for i, v in enumerate(values))


def partitions(target: ConsumerTarget) -> list[dict]:
    """Latest figures of every partition of a Kafka group with its status, from the state the sampler keeps."""
    state = PartitionState.objects.filter(target=target).first()
    if state is None or state.seen_at is None:
        return []
    now, window = state.seen_at, settings.MONITORING_STATUS_WINDOW_SECONDS
    out = []
    for key, e in state.partitions.items():
        topic, _, partition = key.rpartition("/")
        lag = max(0, e[F_END] - (e[F_COMMITTED] or 0))
        status, reason = partition_status(e, target.members, now, window)
        seconds = 0.0 if lag == 0 else (None if e[F_PRODUCED] is None else max(0.0, now - e[F_PRODUCED]))
        out.append(
            {
                "topic": topic,
                "partition": int(partition),
                "committed": e[F_COMMITTED],
                "end": e[F_END],
                "lag": lag,
                "lag_seconds": seconds,
                "status": status,
                "reason": reason,
            }
        )
    out.sort(key=lambda p: (p["topic"], p["partition"]))
    return out


LABELS = {
    # broker -> labels of (lag, lag_seconds, in_flight, depth); None = not charted for that broker.
    "kafka": ("lag (messages)", "lag (s)", None, None),
    "nats": ("pending + ack pending", None, "ack pending", None),
    "outbox": ("outbox backlog", "oldest pending (s)", None, None),
    "dlq": ("dead letters new", None, None, "dead letters kept"),
}
DEFAULT_LABELS = ("depth", "oldest (s)", "in flight", None)


def history(target: ConsumerTarget, range_name: str) -> dict:
    """Series for the charts: times (epoch seconds) and lag / depth / in-flight / lag_seconds of the target rows,
    plus `series`, the named lines this kind of target draws (outbox backlog, dead-letter counts, lag...)."""
    seconds = RANGES.get(range_name, 3600)
    since = timezone.now() - timezone.timedelta(seconds=seconds)
    # Bucket so a 7-day chart stays a few hundred points however often the sampler runs.
    bucket = max(settings.SAMPLER_INTERVAL_SECONDS, seconds // 500)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT floor(extract(epoch FROM time) / %s) * %s AS t, max(lag), max(lag_seconds), max(in_flight),
                   max(depth)
            FROM monitoring_sample WHERE target_id = %s AND partition IS NULL AND time >= %s
            GROUP BY 1 ORDER BY 1
            """,
            [bucket, bucket, target.pk, since],
        )
        rows = cursor.fetchall()
    out = {
        "range": range_name if range_name in RANGES else "1h",
        "time": [float(r[0]) for r in rows],
        "lag": [r[1] for r in rows],
        "lag_seconds": [r[2] for r in rows],
        "in_flight": [r[3] for r in rows],
        "depth": [r[4] for r in rows],
    }
    labels = LABELS.get(target.broker, DEFAULT_LABELS)
    out["series"] = [
        {"label": label, "key": key, "seconds": key == "lag_seconds"}
        for label, key in zip(labels, ("lag", "lag_seconds", "in_flight", "depth"), strict=True)
        if label is not None
    ]
    return out
