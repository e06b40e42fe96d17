"""The dead-letter tiles and the Prometheus gauge."""

from django.db.models import Count
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
