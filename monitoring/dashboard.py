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
