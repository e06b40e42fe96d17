"""Reads shared by the outbox page and the API: the filtered, keyset-paged row list and the headers a user may see."""

from django.db.models.expressions import RawSQL

from console.access import can_read_contents
from outbox.models import H_CORRELATION, H_EVENT_ID, H_EVENT_TYPE, H_SCHEMA, OutboxEvent

PAGE_SIZE = 100

# Not a stored status: the rows that hold their key back, i.e. the oldest open row of a key when it has failed or is
# backing off after a failed attempt. Skipping or retrying one of them is what frees the rows behind it.
BLOCKED = "blocked"
STATUS_FILTERS = (*OutboxEvent.Status.values, BLOCKED)
_BLOCKING_HEADS_SQL = f"""
SELECT id FROM (
    SELECT DISTINCT ON (order_key) id, status, attempts FROM {OutboxEvent._meta.db_table}
    WHERE status IN ('pending', 'failed') ORDER BY order_key, id
) AS head WHERE status = 'failed' OR attempts > 0
"""


def events_page(filters: dict) -> tuple[list[OutboxEvent], int | None]:
    """Newest first, keyset-paged by id (`before`), by the cleaned data of an EventFilterForm."""
    rows = OutboxEvent.objects.order_by("-id").defer("payload", "headers")
    status = filters.get("status")
    if status == BLOCKED:
        rows = rows.filter(id__in=RawSQL(_BLOCKING_HEADS_SQL, []))
    elif status:
        rows = rows.filter(status=status)
    for name in ("destination", "key", "event_type"):
        if filters.get(name):
            rows = rows.filter(**{name: filters[name]})
    if filters.get("before") is not None:
        rows = rows.filter(id__lt=filters["before"])
    page = list(rows[:PAGE_SIZE])
    return page, page[-1].pk if len(page) == PAGE_SIZE else None


# The envelope's own headers: what the outbox says about the event. The publisher's headers may carry the same personal
# or secret data as the payload, so a user who may not read contents sees their names only (value None).
ENVELOPE_HEADERS = frozenset((H_EVENT_ID, H_EVENT_TYPE, H_SCHEMA, H_CORRELATION))


def headers_for(user, row: OutboxEvent) -> dict[str, str | None]:
    headers = row.envelope_headers()
    if can_read_contents(user):
        return headers
    return {name: value if name in ENVELOPE_HEADERS else None for name, value in headers.items()}
