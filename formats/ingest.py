"""The ingest hook (dlq/ingest.py calls `enrich` once per new row): decode the body at ingest and keep the result on
the row (ADR 0051), so search, grouping and the pages read stored JSON, never the codecs."""

from __future__ import annotations

import json

from django.conf import settings

from console import brokers
from formats import decode as d
from formats import local

MESSAGE_TYPE_MAX = 300
CORRELATION_MAX = 200


def enrich(row, source, message) -> None:
    """Set row.decoded (None when the body needs no decoder) and, from it, the search text, and the message type and
    correlation id where the failure headers gave none. A body no decoder could read keeps its reason in
    decoded["error"], not in parse_error: the message itself was read as it came."""
    where = d.Where(
        destination=source.destination,
        origin=row.origin,
        connection=source.connection_key,
        content_type=row.content_type,
        local=local.catalogue(),
    )
    record = d.decode(message.body, message.headers, where)
    key = d.decode_key(message.key, message.headers, where) if isinstance(message.key, bytes) else None
    if key is not None:
        record = {**(record or {}), "key": key}
    row.decoded = record
    if record is None:
        return
    for part in (record, record.get("key") or {}):
        if part.get("error"):
            # A client's error can echo what it was given; no configured secret reaches a row (ADR 0044).
            part["error"] = brokers.scrub(part["error"])
    text = d.search_text(record)
    if text:
        row.body_text = text
    if record.get("value") is not None:
        size = len(json.dumps(record["value"], ensure_ascii=False))
        if size > settings.DLQ_INLINE_BODY_MAX:
            # Like a large body, a large decoded value stays out of the row: searchable by its prefix, not kept.
            record["value"] = None
            record.setdefault("notes", []).append(f"decoded value of {size} characters not kept (DLQ_INLINE_BODY_MAX)")
    event = record.get("cloudevent") or {}
    schema = record.get("schema") or {}
    if not row.message_type:
        row.message_type = str(event.get("type") or schema.get("name") or "")[:MESSAGE_TYPE_MAX]
    if not row.correlation_id and event.get("subject"):
        row.correlation_id = str(event["subject"])[:CORRELATION_MAX]
