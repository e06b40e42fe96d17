"""Dashboard tiles. Each capability adds its tiles with `register_tile`; a tile is re-rendered live by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


# --- The dashboard over time: charts and "what changed in the last hour" -------------------------------------------
# Each app registers a chart source (a Window in, Charts out) and a change source, as it registers tiles; the page and
# GET /api/v1/dashboard/timeline read them all. Only reads: a bucketed GROUP BY over an indexed time column each.

# range -> (seconds shown, bucket seconds): 60 buckets an hour, 96 a day, 84 a week.
RANGES = {"hour": (3600, 60), "day": (86400, 900), "week": (604800, 7200)}


@dataclass
class Window:
    name: str
    seconds: int
    bucket: int
    until: datetime

    @classmethod
    def of(cls, name: str, now: datetime | None = None) -> Window:
        seconds, bucket = RANGES[name]
        return cls(name, seconds, bucket, now or timezone.now())

    @property
    def since(self) -> datetime:
        return self.first_bucket()

    def first_bucket(self) -> datetime:
        start = int(self.until.timestamp()) - self.seconds
        return datetime.fromtimestamp(start - start % self.bucket + self.bucket, UTC)

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=self.bucket)

    @property
    def origin(self) -> datetime:
        """date_bin's origin: buckets aligned to the epoch, as first_bucket() is."""
        return datetime(1970, 1, 1, tzinfo=UTC)

    def times(self) -> list[int]:
        first = int(self.first_bucket().timestamp())
        return list(range(first, int(self.until.timestamp()) + 1, self.bucket))

    def fill(self, found: dict, scale: float = 1.0, missing=0) -> list:
        """Values for times() from {bucket datetime or epoch seconds: value}; a bucket with nothing is `missing`."""
        by_second = {int(k.timestamp()) if hasattr(k, "timestamp") else int(k): v for k, v in found.items()}
        return [
            (round(by_second[t] * scale, 3) if by_second[t] is not None else None) if t in by_second else missing
            for t in self.times()
        ]


@dataclass
class Series:
    label: str
    values: list
    href: str = ""


@dataclass
class Chart:
    name: str
    title: str
    href: str  # the filtered list behind the chart
    unit: str
    series: list[Series]
    axis2: list[str] | None = None  # labels of series on a second axis (e.g. latency in ms beside a count)
    style: str = "line"  # "bars" for counts per bucket (arrivals, failures), "line" for levels (backlog, not OK)

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "href": self.href,
            "unit": self.unit,
            "series": [{"label": s.label, "href": s.href, "values": s.values} for s in self.series],
            "axis2": self.axis2 or [],
            "style": self.style,
        }


@dataclass
class Change:
    when: datetime
    kind: str  # "dead-letter group", "consumer", "saga"
    text: str
    href: str

    def as_json(self) -> dict:
        return {"when": self.when.isoformat(), "kind": self.kind, "text": self.text, "href": self.href}


ChartSource = Callable[[Window], list[Chart]]
ChangeSource = Callable[[datetime], list[Change]]
_charts: list[ChartSource] = []
_changes: list[ChangeSource] = []


def register_chart(source: ChartSource) -> ChartSource:
    _charts.append(source)
    return source


def register_changes(source: ChangeSource) -> ChangeSource:
    _changes.append(source)
    return source


CHANGES_MAX = 30


def timeline(range_name: str, now: datetime | None = None) -> dict:
    """Every chart over the range (hour, day, week) and what changed in the last hour, newest first."""
    window = Window.of(range_name, now)
    since = window.until - timedelta(hours=1)
    changes = sorted((c for source in _changes for c in source(since)), key=lambda c: c.when, reverse=True)
    return {
        "range": window.name,
        "bucket_seconds": window.bucket,
        "t": window.times(),
        "charts": [chart.as_json() for source in _charts for chart in source(window)],
        "changes": [c.as_json() for c in changes[:CHANGES_MAX]],
    }
