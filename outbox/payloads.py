"""What the outbox's pages and the schema catalogue read of outbox rows, through formats' decoders (formats is below
outbox: outbox reaches down to it, never the other way)."""

from console import brokers
from formats import local
from formats.decode import Where, decode
from outbox.models import OutboxEvent, split_destination


def outbox_payload(event, head: bytes, truncated: bool) -> dict | None:
    """An outbox row's bytes payload decoded for its page (JSON payloads need no decoder): by its destination's
    connection's registry, the local schemas, CloudEvents headers, compression. Not stored: rendered per view."""
    if event.encoding != "bytes" or truncated or not head:
        return None
    try:
        connection, target = split_destination(event.destination)
    except ValueError:
        return None
    kind, _, name = connection.partition(":")
    if not name:
        name = brokers.default_name(kind) or ""
    headers = {str(k): str(v).encode() for k, v in (event.headers or {}).items()}
    where = Where(destination=target, connection=f"{kind}:{name}", local=local.catalogue())
    return decode(head, headers, where)


def catalogue_rows(after: int, limit: int) -> list[tuple]:
    """Outbox rows after id `after`, as the schema catalogue reads them (formats.catalogue)."""
    return list(
        OutboxEvent.objects.filter(id__gt=after)
        .order_by("id")
        .values_list(
            "id", "event_type", "schema_version", "destination", "headers", "created_at", "payload", "encoding"
        )[:limit]
    )
