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
        "switchyard_dead_letters", "Dead letters by broker and status", labels=["broker", "status"]
    )
    for row in DeadLetter.objects.values("source__broker", "status").annotate(n=Count("id")).order_by():
        gauge.add_metric([row["source__broker"], row["status"]], row["n"])
    yield gauge
