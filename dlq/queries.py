"""Read-side queries shared by the pages and the API: the inbox page and the groups with their sparklines."""

from __future__ import annotations

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from dlq import filters
from dlq.models import DeadLetter

PAGE_SIZE = 50
SPARK_HOURS = 24
# List rows never load the body or the stack trace: those can be megabytes each.
LIST_FIELDS = (
    "id",
    "source__broker",
    "source__connection",
    "source__destination",
    "origin",
    "message_id",
    "partition",
    "offset",
    "content_type",
    "message_type",
    "exception_type",
    "exception_message",
    "fingerprint",
    "status",
    "status_changed_at",  # with status: when the purge deletes an archived or discarded row
    "replay_count",
    "delivery_count",
    "body_size",
    "parse_error",  # marks the row (at most 5,000 characters: dlq.ingest cuts it)
    "first_failure_at",
    "last_failure_at",
    "ingested_at",
)


# A since/until window the planner expects to hold at most this many rows is read through its BRIN index and sorted.
NARROW_WINDOW = 50_000


def inbox(f: dict, before: int | None = None, size: int = PAGE_SIZE) -> tuple[list[DeadLetter], int | None]:
    """One keyset page, newest first, and the id to continue before (None at the end)."""
    qs = filters.apply(DeadLetter.objects.select_related("source").only(*LIST_FIELDS), f).order_by("-id")
    if ("since" in f or "until" in f) and filters.estimate(qs) <= NARROW_WINDOW:
        # The planner would walk the id index backwards until it met 51 rows of the window, expecting them spread
        # evenly; a window in the past lies all together, half a table away (1 s at a million rows). Ordering by an
        # expression instead makes it take the window from dlq_failure_brin and sort those few rows.
        qs = qs.order_by((F("id") + 0).desc())
    if before:
        qs = qs.filter(id__lt=before)
    rows = list(qs[: size + 1])
    return rows[:size], rows[size - 1].pk if len(rows) > size else None


def groups(f: dict, limit: int = 200) -> list[dict]:
    """One row per fingerprint: count (every status), new (what "Replay group" sends), origins, first / last seen, and
    hourly counts for the last day."""
    qs = filters.apply(DeadLetter.objects.all(), f)
    rows = list(
        qs.values("fingerprint")
        .annotate(
            count=Count("id"),
            new=Count("id", filter=Q(status=DeadLetter.Status.NEW)),
            origins=ArrayAgg("origin", distinct=True),
            exception_type=Max("exception_type"),
            message_type=Max("message_type"),
            first_seen=Min("first_failure_at"),
            last_seen=Max("last_failure_at"),
            sample=Min("id"),
        )
        .order_by("-last_seen")[:limit]
    )
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = now - timezone.timedelta(hours=SPARK_HOURS - 1)
    hourly = (
        qs.filter(fingerprint__in=[r["fingerprint"] for r in rows], last_failure_at__gte=start)
        .annotate(hour=TruncHour("last_failure_at"))
        .values("fingerprint", "hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    series: dict[str, list[int]] = {r["fingerprint"]: [0] * SPARK_HOURS for r in rows}
    for point in hourly:
        index = int((point["hour"] - start).total_seconds() // 3600)
        if 0 <= index < SPARK_HOURS:
            series[point["fingerprint"]][index] = point["n"]
    for r in rows:
        r["spark"] = series[r["fingerprint"]]
        r["spark_points"] = sparkline(r["spark"])
    return rows


def sparkline(values: list[int], width: int = 96, height: int = 20) -> str:
    """Points for an inline SVG polyline."""
    top = max(values) or 1
    step = width / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values))


def group_json(row: dict) -> dict:
    return {
        "fingerprint": row["fingerprint"],
        "count": row["count"],
        "new": row["new"],
        "origins": [o for o in row["origins"] if o],
        "exception_type": row["exception_type"],
        "message_type": row["message_type"],
        "first_seen": row["first_seen"].isoformat(),
        "last_seen": row["last_seen"].isoformat(),
        "hourly": row["spark"],
    }


def catalogue_rows(after: int, limit: int) -> list[tuple]:
    """Dead letters with a message type, after id `after`, as the schema catalogue reads them (formats.catalogue)."""
    return list(
        DeadLetter.objects.filter(id__gt=after)
        .exclude(message_type="")
        .order_by("id")
        .values_list(
            "id", "message_type", "decoded", "headers", "origin", "source__broker", "source__connection",
            "first_failure_at", "body_text", "fingerprint",
        )[:limit]
    )  # fmt: skip
