"""The dead-letter tiles and the Prometheus gauge."""

from django.db.models import Count, Max, Min
from django.urls import reverse
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from console.dashboard import Tile
from dlq.models import DeadLetter


def tiles() -> list[Tile]:
    since = timezone.now() - timezone.timedelta(hours=1)
    new = DeadLetter.objects.filter(status=DeadLetter.Status.NEW)
    last_hour = new.filter(ingested_at__gte=since).count()
    total = new.count()
    href = reverse("dlq")
    return [
        Tile("dlq", "Dead letters new (1 h)", str(last_hour), href, bad=last_hour > 0),
        Tile("dlq-total", "Dead letters waiting", str(total), href + "?status=new", bad=total > 0),
    ]


def families():
    gauge = GaugeMetricFamily(
        "switchyard_dead_letters",
        "Dead letters by broker, connection and status",
        labels=["broker", "connection", "status"],
    )
    rows = DeadLetter.objects.values("source__broker", "source__connection", "status").annotate(n=Count("id"))
    for row in rows.order_by():
        gauge.add_metric([row["source__broker"], row["source__connection"], row["status"]], row["n"])
    yield gauge


def dead_letter_trace(correlation: str, limit: int):
    from django.urls import reverse

    from console.trace import TraceRow, TraceSection, stamp
    from dlq.models import DeadLetter

    letters = DeadLetter.objects.filter(correlation_id=correlation).select_related("source").order_by("-id")
    rows = [
        TraceRow(
            [
                str(d.pk),
                str(d.source),
                d.origin or "—",
                d.exception_type or "—",
                d.exception_message[:200] or "—",
                d.status,
                str(d.replay_count),
                stamp(d.last_failure_at),
            ],
            reverse("dlq_detail", args=[d.pk]),
            d.last_failure_at,
        )
        for d in letters[: limit + 1]
    ]
    columns = ["Dead letter", "Source", "Origin", "Exception", "Message", "Status", "Replays", "Last failure"]
    return TraceSection("dead-letters", "Dead letters", columns, rows)


def charts(window) -> list:
    """Dead letters arriving (ingested) per bucket, one line per connection: a rise shows on which cluster."""
    from django.db import connection

    from console.dashboard import Chart, Series
    from dlq.models import DeadLetterSource

    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, d.ingested_at, %s), s.broker, s.connection, count(*)
                FROM {DeadLetter._meta.db_table} d JOIN {DeadLetterSource._meta.db_table} s ON s.id = d.source_id
                WHERE d.ingested_at >= %s GROUP BY 1, 2, 3""",
            [window.step, window.origin, window.since],
        )
        rows = cursor.fetchall()
    per_connection: dict[str, dict] = {}
    for bucket, broker, conn, n in rows:
        per_connection.setdefault(f"{broker}:{conn}", {})[bucket] = n
    href = reverse("dlq")
    series = [
        Series(key, window.fill(found), f"{href}?connection={key}") for key, found in sorted(per_connection.items())
    ]
    return [
        Chart(
            "dead-letters",
            "Dead letters arriving",
            href,
            "per bucket",
            series or [Series("none", window.fill({}))],
            style="bars",
        )
    ]


def changes(since) -> list:
    """Failure groups whose first dead letter arrived since `since` (none of theirs is older)."""
    from console.dashboard import Change

    recent = (
        DeadLetter.objects.filter(ingested_at__gte=since)
        .values("fingerprint")
        .annotate(n=Count("id"), first_at=Min("ingested_at"), exception=Max("exception_type"))
        .order_by("-first_at")[:200]
    )
    found = []
    for row in recent:
        if DeadLetter.objects.filter(fingerprint=row["fingerprint"], ingested_at__lt=since).exists():
            continue  # an older group that failed again: not new
        text = f"new failure group {row['fingerprint'][:12]}: {row['exception'] or 'no exception type'} ({row['n']})"
        found.append(Change(row["first_at"], "dead-letter group", text, f"{reverse('dlq')}?group={row['fingerprint']}"))
    return found[:10]
