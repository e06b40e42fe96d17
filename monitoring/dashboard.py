"""The consumer tiles on the dashboard: the worst statuses and the total lag."""

from django.urls import reverse

from console.dashboard import Tile
from monitoring.models import RANK, ConsumerTarget


def consumer_tiles() -> list[Tile]:
    targets = list(
        ConsumerTarget.objects.filter(gone=False).only("broker", "name", "status", "lag", "kind").order_by("pk")
    )
    bad = sorted((t for t in targets if t.status != "OK"), key=lambda t: (-RANK[t.status], t.broker, t.name))
    href = reverse("consumers")
    worst = bad[0].status if bad else "OK"
    detail = ", ".join(f"{t.name} {t.status}" for t in bad[:3]) if bad else f"{len(targets)} watched"
    lag = sum(t.lag or 0 for t in targets if t.is_lag())
    return [
        Tile("consumers", "Consumers not OK", str(len(bad)), href + "?status=bad", bad=bool(bad), detail=detail),
        Tile("consumers-worst", "Worst consumer status", worst, href, bad=RANK[worst] >= RANK["STALL"]),
        Tile("consumers-lag", "Consumer lag (messages)", f"{lag:,}", href),
    ]


def consumer_charts(window) -> list:
    """Targets not OK at the end of each bucket (the worst pass in it), from the sampler's per-pass tallies."""
    from django.db import connection

    from console.dashboard import Chart, Series
    from monitoring.models import StatusTally

    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, time, %s), max(not_ok) FROM {StatusTally._meta.db_table}
                WHERE time >= %s GROUP BY 1""",
            [window.step, window.origin, window.since],
        )
        found = dict(cursor.fetchall())
    href = reverse("consumers") + "?status=bad"
    # None where no pass ran: a gap, not a false "all OK".
    return [
        Chart(
            "consumers", "Consumers not OK", href, "targets", [Series("not OK", window.fill(found, missing=None), href)]
        )
    ]


def outbox_charts(window) -> list:
    """Backlog (the sampler's outbox samples: the most waiting in each bucket) and the outbox's p95 publish latency."""
    from django.db import connection

    from console.dashboard import Chart, Series
    from monitoring.models import Sample
    from outbox import stats

    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT date_bin(%s, s.time, %s), max(s.depth) FROM {Sample._meta.db_table} s
                JOIN {ConsumerTarget._meta.db_table} t ON t.id = s.target_id
                WHERE t.broker = 'outbox' AND s.partition IS NULL AND s.time >= %s GROUP BY 1""",
            [window.step, window.origin, window.since],
        )
        backlog = dict(cursor.fetchall())
    latency = stats.publish_latency(window)
    href = reverse("outbox")
    return [
        Chart(
            "outbox",
            "Outbox backlog and publish latency",
            f"{href}?status=pending",
            "rows waiting",
            [
                Series("backlog", window.fill(backlog, missing=None), f"{href}?status=pending"),
                Series("p95 latency ms", window.fill(latency, missing=None), href),
            ],
            axis2=["p95 latency ms"],
        )
    ]


def consumer_changes(since) -> list:
    """Targets that turned WARN or worse since `since` and still are."""
    from console.dashboard import Change

    turned = ConsumerTarget.objects.filter(gone=False, status_since__gte=since).exclude(status="OK")
    return [
        Change(t.status_since, "consumer", f"{t.connection_key}/{t.name} turned {t.status}", t.get_absolute_url())
        for t in turned.order_by("-status_since")[:10]
    ]
