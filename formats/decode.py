"""One body, decoded: the steps in order, each done by the library that owns the format.

1. CloudEvents binary-mode attributes from the headers (the body is then the event's data).
2. Compression inside the body: by content-encoding header or magic bytes; the rest works on the inflated bytes.
3. CloudEvents structured mode: the attributes, and the data (read on when it is bytes).
4. Local schemas mapped by pattern (formats.local): .avsc files, descriptor sets, schemaless Protobuf; what an
   operator mapped explicitly wins.
5. The Confluent wire format: through the connection's schema registry.
6. What is left: JSON or text when an earlier step applied, else nothing to say (None: the page's usual views).

The record says which decoder read the body (`decoder`), and with which schema (id, subject, version, name); a step
that fails leaves `error` with its reason and the body shown as text or hex. Never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from formats import compression, confluent, events, registries

SEARCH_CHARS = 100_000


@dataclass
class Where:
    """Where the body was read from: its destination (topic, queue) and connection key (for its registry)."""

    destination: str = ""
    origin: str = ""
    connection: str = ""
    content_type: str = ""
    registry: object | None = None  # a SchemaRegistryClient; looked up from the connection when None
    local: object | None = None  # formats.local.Catalogue


def decode(body: bytes, headers: dict[str, bytes], where: Where) -> dict | None:
    try:
        return _decode(body, headers, where)
    except Exception as exc:  # noqa: BLE001 - a body must never stop ingest or a page
        return _fallback({}, body, f"{type(exc).__name__}: {exc}")


def _decode(body: bytes, headers: dict[str, bytes], where: Where) -> dict | None:
    record: dict = {}
    try:
        attributes = events.binary(headers)
    except Exception as exc:  # noqa: BLE001 - a broken event is still a body to read
        attributes = None
        record["notes"] = [f"CloudEvents headers present but not a valid event: {exc}"]
    if attributes:
        record["cloudevent"] = attributes

    codec = compression.detect(body, headers)
    if codec:
        try:
            body = compression.inflate(body, codec)
        except ValueError as exc:
            record["compression"] = codec
            return _fallback(record, body, f"{codec} could not be inflated: {exc}")
        record["compression"] = codec

    if "cloudevent" not in record and events.looks_structured(body, where.content_type):
        try:
            attributes, data = events.structured(body)
        except Exception as exc:  # noqa: BLE001 - then it is JSON like any other
            record.setdefault("notes", []).append(f"not a valid structured CloudEvent: {exc}")
        else:
            record["cloudevent"] = attributes
            if not isinstance(data, bytes):
                return _done(record, "cloudevents", data)
            body = data

    local = where.local.decode(body, (where.destination, where.origin), where.connection) if where.local else None
    if local is not None and local[0]:
        decoder, value, schema, _ = local
        if schema:
            record["schema"] = schema
        return _done(record, decoder, value)
    if local is not None and local[3]:
        record.setdefault("notes", []).append(local[3])

    if confluent.framed(body, headers):
        registry = where.registry or registries.client_for(where.connection)
        if registry is None:
            schema = _prefix_id(body)
            return _fallback(
                record,
                body,
                f"Confluent wire format (schema id {schema}) but connection {where.connection or '?'} has no "
                "schema_registry in the connections file",
            )
        try:
            read = confluent.read(registry, body, where.destination, headers)
        except Exception as exc:  # noqa: BLE001 - registry down, schema unknown, body not what its schema says
            return _fallback(record, body, f"Confluent wire format, schema {_prefix_id(body)}: {_why(exc)}")
        record["schema"] = {"id": read.schema_id, "guid": read.guid, "name": read.name, "source": "registry"}
        if read.message_indexes is not None:
            record["schema"]["message_indexes"] = read.message_indexes
        if read.schema_id is not None:
            found = registries.subject_version(registry, read.schema_id)
            if found:
                record["schema"]["subject"], record["schema"]["version"] = found
        return _done(record, read.format, read.value)

    if not record:
        return None  # plain JSON or text: nothing to add to the usual views
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _fallback(record, body, "the body is binary and no decoder applies")
    try:
        return _done(record, "json", json.loads(text))
    except (ValueError, RecursionError):
        return _done(record, "text", text)


def decode_key(key: bytes | None, headers: dict[str, bytes], where: Where) -> dict | None:
    """A Kafka key in the Confluent wire format, decoded through the connection's registry; None for any other key
    (a plain key is shown as it is)."""
    if not key or not confluent.framed(key, headers, key=True):
        return None
    registry = where.registry or registries.client_for(where.connection)
    if registry is None:
        return None
    try:
        read = confluent.read(registry, key, where.destination, headers, key=True)
    except Exception as exc:  # noqa: BLE001 - the key is shown raw with the reason
        return {"decoder": "hex", "error": f"Confluent wire format key: {_why(exc)}"}
    return {
        "decoder": read.format,
        "schema": {"id": read.schema_id, "guid": read.guid, "name": read.name, "source": "registry"},
        "value": read.value,
    }


def _prefix_id(body: bytes) -> str:
    return str(int.from_bytes(body[1:5], "big")) if len(body) >= 5 and body[0] == 0 else "from header"


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:500]


def _done(record: dict, decoder: str, value) -> dict:
    record["decoder"] = decoder
    record["value"] = value
    return record


def _fallback(record: dict, body: bytes, reason: str) -> dict:
    record["error"] = reason
    try:
        text = body.decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", body, 0, 1, "NUL")
        record["decoder"] = "text"
        record["value"] = text[:SEARCH_CHARS]
    except UnicodeDecodeError:
        record["decoder"] = "hex"
        record["value"] = None
    return record


def search_text(record: dict) -> str:
    """What full-text search reads of a decoded body: its value as JSON, plus the CloudEvent's attributes."""
    parts = []
    value = record.get("value")
    if value is not None:
        parts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    if record.get("cloudevent"):
        parts.append(" ".join(str(v) for v in record["cloudevent"].values() if v))
    key = (record.get("key") or {}).get("value")
    if key is not None:
        parts.append(key if isinstance(key, str) else json.dumps(key, ensure_ascii=False))
    return "\n".join(parts)[:SEARCH_CHARS].replace("\x00", "\ufffd")


def pretty(record: dict) -> str:
    value = record.get("value")
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def without_contents(record: dict | None) -> dict | None:
    """What a user who may not read message contents sees of a decoded body: which decoder and schema read it."""
    if not record:
        return record
    return {k: record[k] for k in ("decoder", "schema", "compression") if k in record}
