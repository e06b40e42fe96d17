"""Dashboard tiles. Each capability adds its tiles with `register_tile`; a tile is re-rendered live by name."""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse
from django.utils import timezone


@dataclass
class Tile:
    name: str
    label: str
    value: str
    href: str
    bad: bool = False
    detail: str = ""


TileSource = Callable[[], list[Tile]]
_sources: list[TileSource] = []


def register_tile(source: TileSource) -> TileSource:
    _sources.append(source)
    return source


def tiles() -> list[Tile]:
    return [tile for source in _sources for tile in source()]


def tile(name: str) -> Tile | None:
    return next((t for t in tiles() if t.name == name), None)


@register_tile
def operation_tiles() -> list[Tile]:
    from console.models import Operation

    Status = Operation.Status
    active = Operation.objects.filter(status__in=[Status.QUEUED, Status.RUNNING, Status.PAUSED]).count()
    since = timezone.now() - timezone.timedelta(hours=24)
    failed = Operation.objects.filter(status=Status.FAILED, finished_at__gte=since).count()
    awaiting = Operation.objects.filter(status=Status.AWAITING_APPROVAL).count()
    href = reverse("operations")
    return [
        Tile("operations", "Operations in progress", str(active), href),
        Tile("operations-failed", "Operations failed (24 h)", str(failed), href + "?status=failed", bad=failed > 0),
        # Work someone asked for sits still until a second operator looks: red until nobody is waiting.
        Tile(
            "operations-awaiting-approval",
            "Operations awaiting approval",
            str(awaiting),
            href + "?status=awaiting_approval",
            bad=awaiting > 0,
        ),
    ]
