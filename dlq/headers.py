"""Failure facts from dead-letter headers: Switchyard's own, Spring Kafka's, MassTransit's and RabbitMQ's x-death.

Frameworks name the same fact differently. Each fact has an ordered list of header names; a source can put its own
names first through `conventions["headers"]` (e.g. {"exception_type": ["my-error-class"]}), so a new framework needs
configuration, not code.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime

# Switchyard's own failure headers: what consumer_kit writes when it dead-letters a message.
EXCEPTION_TYPE = "x-exception-type"
EXCEPTION_MESSAGE = "x-exception-message"
EXCEPTION_STACKTRACE = "x-exception-stacktrace"
ORIGINAL_DESTINATION = "x-original-destination"
FAILED_AT = "x-failed-at"
ATTEMPTS = "x-attempts"
MESSAGE_TYPE = "x-message-type"
EVENT_ID = "x-event-id"  # the outbox relay's event id: links a dead letter to the event that produced it
# Provenance headers on every replayed message.
REPLAY_OF = "x-switchyard-replay-of"
REPLAY_OPERATION = "x-switchyard-operation"
REPLAY_COUNT = "x-switchyard-replay-count"

DEFAULT_NAMES: dict[str, list[str]] = {
    "exception_type": [EXCEPTION_TYPE, "kafka_dlt-exception-fqcn", "MT-Fault-ExceptionType"],
    "exception_message": [EXCEPTION_MESSAGE, "kafka_dlt-exception-message", "MT-Fault-Message"],
    "stacktrace": [EXCEPTION_STACKTRACE, "kafka_dlt-exception-stacktrace", "MT-Fault-StackTrace"],
    "origin": [ORIGINAL_DESTINATION, "kafka_dlt-original-topic", "MT-Fault-InputAddress"],
    "failed_at": [FAILED_AT, "kafka_dlt-exception-timestamp", "MT-Fault-Timestamp"],
    "attempts": [ATTEMPTS, "MT-Fault-RetryCount", "x-delivery-count"],
    # x-event-type: what Switchyard's own outbox puts on every event.
    "message_type": [MESSAGE_TYPE, "x-event-type", "__TypeId__", "MT-MessageType", "ce-type", "type"],
    "content_type": ["content-type", "contentType", "Content-Type"],
    "correlation_id": ["x-correlation-id", "correlation-id", "MT-CorrelationId", "ce-correlationid"],
}


@dataclass
class FailureFacts:
    exception_type: str = ""
    exception_message: str = ""
    stacktrace: str = ""
    origin: str = ""
    failed_at: datetime | None = None
    attempts: int | None = None
    message_type: str = ""
    content_type: str = ""
    correlation_id: str = ""
    # From x-death: the exchange and routing key the message was first published with, and why it died.
    origin_exchange: str = ""
    origin_routing_key: str = ""
    reason: str = ""
    replay_of: int | None = None


def text(value: bytes | None, limit: int = 100_000) -> str:
    """Header bytes as text for display and search; never fails, never holds NUL (Postgres text cannot)."""
    if value is None:
        return ""
    return value[:limit].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def encode_headers(headers: dict[str, bytes]) -> dict[str, str | dict]:
    """A JSON-safe copy: UTF-8 text without NUL stays a string (so a header filter can match it), else base64.

    Never fails: a name is stored as text (NUL and what is not UTF-8 replaced), a value that is not bytes as its
    UTF-8 text."""
    out: dict[str, str | dict] = {}
    for name, raw in headers.items():
        safe_name = text(name.encode("utf-8", "surrogatepass") if isinstance(name, str) else bytes(name))
        value = _as_bytes(raw)
        try:
            decoded = value.decode()
            if "\x00" in decoded:
                raise UnicodeDecodeError("utf-8", value, 0, 1, "NUL")
            out[safe_name] = decoded
        except UnicodeDecodeError:
            out[safe_name] = {"base64": base64.b64encode(value).decode()}
    return out


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if value is None:
        return b""
    return str(value).encode("utf-8", "surrogatepass")


def decode_headers(stored: dict) -> dict[str, bytes]:
    return {name: v.encode() if isinstance(v, str) else v for name, v in header_values(stored).items()}


def header_values(stored: dict) -> dict[str, str | bytes]:
    """Stored headers as a broker adapter takes them: text as str (each adapter encodes it as UTF-8, the same bytes
    decode_headers gives), the rest as bytes. The replay's hot path: no encode per header."""
    return {name: value if value.__class__ is str else _stored_value(value) for name, value in (stored or {}).items()}


def _stored_value(value) -> str | bytes:
    return base64.b64decode(value["base64"]) if isinstance(value, dict) else str(value)


def parse(headers: dict[str, bytes], conventions: dict | None = None) -> FailureFacts:
    names = {fact: list(extra) for fact, extra in ((conventions or {}).get("headers") or {}).items()}
    lowered = {name.lower(): value for name, value in headers.items()}

    def first(fact: str) -> str:
        for name in names.get(fact, []) + DEFAULT_NAMES[fact]:
            value = lowered.get(name.lower())
            if value:
                return text(value, 20_000)
        return ""

    facts = FailureFacts(
        exception_type=first("exception_type")[:300],
        exception_message=first("exception_message")[:5000],
        stacktrace=first("stacktrace"),
        origin=_origin(first("origin"))[:500],
        failed_at=_when(first("failed_at")),
        attempts=_int(first("attempts")),
        message_type=first("message_type")[:300],
        content_type=first("content_type")[:200],
        correlation_id=first("correlation_id")[:200],
    )
    _read_x_death(lowered.get("x-death"), facts)
    replay_of = _int(text(lowered.get(REPLAY_OF)))
    facts.replay_of = replay_of
    return facts


def _origin(value: str) -> str:
    # MassTransit gives an address (rabbitmq://host/vhost/queue); the queue is its last path segment.
    if "://" in value:
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def _int(value: str) -> int | None:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        return None


def _when(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # epoch milliseconds (Spring) or seconds
        number = int(value[:30])
        try:
            return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, UTC)
        except (OverflowError, OSError, ValueError):
            return None  # a time no datetime can hold: unknown, rather than a message that cannot be stored
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The RabbitMQ adapter gives table-valued headers as JSON (dead letters stored before: as Python's text form of
# them); this reads the first death's fields from either.
_X_DEATH_FIELD = re.compile(r"""['"]?(queue|exchange|reason|count)['"]?\s*:\s*(?:b?['"]([^'"]*)['"]|(\d+))""")


def _read_x_death(value: bytes | None, facts: FailureFacts) -> None:
    if not value:
        return
    fields: dict[str, str] = {}
    routing = re.search(r"""['"]routing-keys['"]\s*:\s*\[\s*b?['"]([^'"]*)['"]""", text(value))
    for match in _X_DEATH_FIELD.finditer(text(value)):
        fields.setdefault(match.group(1), match.group(2) if match.group(2) is not None else match.group(3))
    facts.origin = facts.origin or fields.get("queue", "")
    facts.origin_exchange = fields.get("exchange", "")
    facts.origin_routing_key = routing.group(1) if routing else ""
    facts.reason = fields.get("reason", "")
    if facts.attempts is None and fields.get("count"):
        facts.attempts = int(fields["count"])
    if not facts.exception_type and facts.reason:
        facts.exception_type = f"rabbitmq:{facts.reason}"
