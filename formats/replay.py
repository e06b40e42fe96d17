"""Edit & replay of a decoded body: the operator edits the decoded JSON; it goes out re-encoded with the schema id it
came with (Avro, Protobuf, JSON Schema through the connection's registry, framed as before, compressed again as it
was), or is refused with the schema's field errors. The audit entry gets the diff of the decoded JSON."""

from __future__ import annotations

import difflib
import gzip
import json

import cramjam

from formats import confluent, registries
from formats.validation import SchemaMismatch

ENCODABLE = ("avro", "protobuf", "json-schema")
DIFF_CHARS = 20_000


def is_encodable(decoded: dict | None) -> bool:
    return bool(decoded) and decoded.get("decoder") in ENCODABLE and (decoded.get("schema") or {}).get("id") is not None


def edited_body(dl, body: bytes, schema_id: int | None = None) -> tuple[bytes, str | None]:
    """(the bytes to publish, the decoded diff) for an edit of `dl`, encoded with the schema id it came with or
    `schema_id`, a later version of the same subject. A letter that was not decoded with a schema, or an edit that
    is the stored bytes themselves, is passed through with no diff (None). Raises SchemaMismatch."""
    decoded = dl.decoded
    if schema_id is not None and not is_encodable(decoded):
        raise SchemaMismatch({"schema_id": ["this dead letter was not decoded with a registry schema"]})
    if not is_encodable(decoded) or (body == dl.body_bytes() and schema_id is None):
        return body, None
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise SchemaMismatch({"": [f"is not valid JSON: {exc}"]}) from None
    registry = registries.client_for(dl.source.connection_key)
    if registry is None:
        raise SchemaMismatch({"": [f"{dl.source.connection_key} has no schema_registry to encode with"]})
    schema = decoded["schema"]
    target = schema["id"] if schema_id is None else _later_version(registry, schema, schema_id)
    wire = confluent.encode(registry, target, value, dl.origin, schema.get("message_indexes"))
    wire = _compress(wire, decoded.get("compression"))
    before = json.dumps(decoded.get("value"), indent=2, sort_keys=True, ensure_ascii=False)
    after = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    diff = "\n".join(
        difflib.unified_diff(before.splitlines(), after.splitlines(), "decoded before", "decoded after", lineterm="")
    )
    return wire, diff[:DIFF_CHARS]


def _later_version(registry, schema: dict, schema_id: int) -> int:
    """`schema_id` when it is the same subject as the letter's schema at the same or a later version."""
    found = registries.subject_version(registry, schema_id)
    if found is None:
        raise SchemaMismatch({"schema_id": [f"schema {schema_id} is not registered under any subject"]})
    subject, version = found
    if subject != schema.get("subject"):
        raise SchemaMismatch({"schema_id": [f"schema {schema_id} is {subject}, not {schema.get('subject')}"]})
    if version < (schema.get("version") or 0):
        raise SchemaMismatch(
            {"schema_id": [f"schema {schema_id} is version {version}, older than the letter's {schema['version']}"]}
        )
    return schema_id


def _compress(body: bytes, codec: str | None) -> bytes:
    if codec == "gzip":
        return gzip.compress(body)
    if codec == "zstd":
        return bytes(cramjam.zstd.compress(body))
    if codec == "lz4":
        return bytes(cramjam.lz4.compress(body))
    if codec == "snappy":
        return bytes(cramjam.snappy.compress_raw(body))
    return body
