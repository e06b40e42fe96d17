"""`outbox.publish()`: what a service calls inside its own transaction."""

import json
from collections.abc import Mapping
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from formats.catalogue import validate_outbox
from outbox.models import OutboxEvent, OutboxPayload, payload_digest, split_destination

# One INSERT with parameters bound by the server, not Django's save(). Django's psycopg cursors bind client-side:
# they quote every parameter into the SQL text in Python, and save() compiles the statement again for every row. That
# cost 0.7 ms of the caller's CPU per event (bench/outbox_relay.py's publishers kept a core busy at 1,000 events/s);
# this statement costs about a quarter of that. It follows the connection's own settings: Django turns psycopg's
# prepared statements off unless OPTIONS sets prepare_threshold (connection poolers), and the 0.19 ms was measured so.
# Columns the model fills in by default are written here from the instance, so the two cannot drift apart.
_COLUMNS = (
    "event_id", "destination", "key", "order_key", "event_type", "schema_version", "headers", "payload", "encoding",
    "claim_check_id", "correlation_id", "created_at", "status", "attempts", "next_attempt_at", "last_error",
)  # fmt: skip
_INSERT_SQL = (
    f"INSERT INTO {OutboxEvent._meta.db_table} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) RETURNING id"
)


class OutsideTransaction(RuntimeError):
    """publish() was called in autocommit mode: the event would not share the fate of the caller's write."""


def publish(
    destination: str,
    key: str | None,
    event_type: str,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    correlation_id: str = "",
    schema_version: int = 1,
) -> OutboxEvent:
    """Write one event in the caller's transaction; the relay sends it after commit, never if it rolls back.

    `payload` is bytes (sent base64 in the envelope) or anything JSON-serializable. Payloads larger than
    OUTBOX_CLAIM_CHECK_BYTES are stored aside and sent as a reference. The relay is woken by a NOTIFY that a
    statement trigger on the table issues; Postgres delivers it only at commit.
    """
    if not connection.in_atomic_block:
        raise OutsideTransaction("outbox.publish() must run inside transaction.atomic()")
    split_destination(destination)
    if not event_type:
        raise ValueError("event_type is required")
    # Opt-in per type (OUTBOX_VALIDATE_TYPES): refused with the field errors before anything is written.
    validate_outbox(event_type, payload)
    if isinstance(payload, bytes | bytearray | memoryview):
        data, encoding = bytes(payload), OutboxEvent.Encoding.BYTES
    else:
        data, encoding = json.dumps(payload, separators=(",", ":")).encode(), OutboxEvent.Encoding.JSON
    now = timezone.now()
    event = OutboxEvent(
        created_at=now,
        next_attempt_at=now,
        destination=destination,
        key=key or "",
        event_type=event_type,
        schema_version=schema_version,
        headers={str(k): str(v) for k, v in (headers or {}).items()},
        encoding=encoding,
        correlation_id=correlation_id or "",
    )
    event.order_key = OutboxEvent.order_key_for(event.key, event.event_id)
    if len(data) > settings.OUTBOX_CLAIM_CHECK_BYTES:
        event.claim_check = OutboxPayload.objects.create(data=data, sha256=payload_digest(data))
    else:
        event.payload = data
    values = [getattr(event, column) for column in _COLUMNS]
    values[_COLUMNS.index("headers")] = Jsonb(event.headers)
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_INSERT_SQL, values)
        (event.pk,) = cursor.fetchone()
    event._state.adding = False
    event._state.db = connection.alias
    return event
