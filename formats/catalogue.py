"""The schema catalogue: every event type seen in outbox rows and dead letters, per version, kept in SchemaVersion
by `refresh()` — a beat job reading each table from where it stopped (Cursor), so a pass costs what arrived since.

For each (type, version): first and last seen, destinations, producers (the outbox's `x-producer` / CloudEvents
source header, else "outbox"), how many were published and how many failed, and its schema: the registry's when the
letters were decoded with one (Avro, JSON Schema, Protobuf), else a JSON Schema inferred from the outbox payloads
(from the dead letters only while no outbox row of that version was seen: failed bodies are suspects).

Then each dead-letter group touched is compared with the current version of its type (the highest); a group whose
latest body differs is flagged "schema mismatch" (GroupMismatch) with the differing fields.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from formats import inference, registries
from formats.models import Cursor, GroupMismatch, SchemaVersion
from formats.validation import SchemaMismatch

log = logging.getLogger(__name__)

BATCH = 5_000
SAMPLES_PER_VERSION = 50  # per refresh pass
VERSION_HEADERS = ("x-schema-version", "schema_version", "schema-version", "ce_dataschemaversion")
PRODUCER_HEADERS = ("x-producer", "x-service", "ce-source", "ce_source")
REGISTERED = ("avro", "json-schema")


class _Seen:
    def __init__(self):
        self.first = self.last = None
        self.destinations: set[str] = set()
        self.producers: set[str] = set()
        self.seen = self.failed = 0
        self.samples: list = []
        self.outbox_samples = 0
        self.registry: tuple | None = None  # (id, subject, connection)

    def at(self, when) -> None:
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last


def version_key(version: str):
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _header(headers: dict, names) -> str:
    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    for name in names:
        value = lowered.get(name)
        if isinstance(value, str) and value:
            return value[:100]
    return ""


def _body_sample(decoded: dict | None, body_text: str):
    """The event's data as JSON: the decoded value, or a JSON body (the outbox envelope's payload)."""
    if decoded and decoded.get("value") is not None and decoded.get("decoder") not in ("text", "hex", "protobuf-raw"):
        return decoded["value"]
    text = (body_text or "").strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and "event_type" in value and "payload" in value:
        return value["payload"]
    return value


# Where the rows come from: dlq and outbox register their tables' readers when they start (their apps.py), as they
# register dashboard tiles; formats imports neither, they import formats (its decoders).
# feed(after_id, limit) -> rows in id order, each a tuple shaped as _refresh reads it.
_feeds: dict[str, Callable[[int, int], list[tuple]]] = {}


def register_feed(name: str, rows: Callable[[int, int], list[tuple]]) -> None:
    """Rows of "outbox": (id, event_type, schema_version, destination, headers, created_at, payload, encoding);
    of "dlq": (id, message_type, decoded, headers, origin, broker, connection, first_failure_at, body_text,
    fingerprint)."""
    _feeds[name] = rows


def _rows(name: str, after: int) -> list[tuple]:
    feed = _feeds.get(name)
    return feed(after, BATCH) if feed else []


def refresh() -> dict:
    """One pass, in one transaction that holds the cursors: a second pass started meanwhile (a slow run overlapping
    the next beat) finds them locked and returns at once, so nothing is counted twice."""
    for name in ("outbox", "dlq"):
        Cursor.objects.get_or_create(name=name)
    with transaction.atomic():
        cursors = {
            c.name: c for c in Cursor.objects.select_for_update(skip_locked=True).filter(name__in=["outbox", "dlq"])
        }
        if len(cursors) < 2:
            return {"outbox": 0, "dead_letters": 0, "versions": 0, "skipped": True}
        return _refresh(cursors["outbox"].last_id, cursors["dlq"].last_id)


def _refresh(outbox_from: int, dlq_from: int) -> dict:
    seen: dict[tuple[str, str], _Seen] = defaultdict(_Seen)

    rows = _rows("outbox", outbox_from)
    for pk, event_type, version, destination, headers, created_at, payload, encoding in rows:
        entry = seen[(event_type, str(version))]
        entry.at(created_at)
        entry.seen += 1
        entry.destinations.add(destination)
        entry.producers.add(_header(headers, PRODUCER_HEADERS) or "outbox")
        if encoding == "json" and payload is not None and len(entry.samples) < SAMPLES_PER_VERSION:
            try:
                entry.samples.append(json.loads(bytes(payload)))
                entry.outbox_samples += 1
            except ValueError:
                pass
        outbox_from = pk

    letters = _rows("dlq", dlq_from)
    groups: dict[str, tuple[str, object]] = {}
    for pk, message_type, decoded, headers, origin, broker, connection, failed_at, body_text, fingerprint in letters:
        schema = (decoded or {}).get("schema") or {}
        version = str(schema.get("version") or "") or _header(headers, VERSION_HEADERS) or "1"
        entry = seen[(message_type, version)]
        entry.at(failed_at)
        entry.failed += 1
        if origin:
            entry.destinations.add(f"{broker}:{connection}/{origin}")
        if schema.get("id") is not None and schema.get("source") == "registry":
            entry.registry = (schema["id"], schema.get("subject", ""), f"{broker}:{connection}")
        sample = _body_sample(decoded, body_text)
        if sample is not None:
            if len(entry.samples) < SAMPLES_PER_VERSION and not entry.outbox_samples:
                entry.samples.append(sample)
            groups[fingerprint] = (message_type, sample)
        dlq_from = pk

    for (event_type, version), entry in seen.items():
        _save(event_type[:300], version[:100], entry)
    Cursor.objects.filter(name="outbox").update(last_id=outbox_from)
    Cursor.objects.filter(name="dlq").update(last_id=dlq_from)
    for fingerprint, (event_type, sample) in groups.items():
        check_group(fingerprint, event_type, sample)
    return {"outbox": len(rows), "dead_letters": len(letters), "versions": len(seen)}


def _save(event_type: str, version: str, entry: _Seen) -> None:
    row = SchemaVersion.objects.select_for_update().filter(event_type=event_type, version=version).first()
    if row is None:
        row = SchemaVersion(event_type=event_type, version=version, first_seen=entry.first, last_seen=entry.last)
    inferred_from_failures_only = row.pk is not None and row.seen == 0 and row.samples > 0
    row.first_seen = min(row.first_seen, entry.first)
    row.last_seen = max(row.last_seen, entry.last)
    row.destinations = sorted(set(row.destinations) | entry.destinations)[:50]
    row.producers = sorted(set(row.producers) | entry.producers)[:50]
    row.seen += entry.seen
    row.failed += entry.failed
    if entry.registry and row.kind == "inferred":
        schema_id, subject, connection = entry.registry
        registered = _registered(schema_id, connection)
        if registered is not None:
            row.kind, row.schema = registered
            row.registry_id, row.subject, row.connection = schema_id, subject, connection
    if row.kind == "inferred" and entry.samples:
        if entry.outbox_samples and inferred_from_failures_only:
            row.schema, row.samples = None, 0  # inferred from failed bodies before a published one: start again
        if entry.outbox_samples or not row.seen:
            row.schema = inference.merge(row.schema, inference.infer(entry.samples))
            row.samples += len(entry.samples)
    row.save()


def _registered(schema_id: int, connection: str):
    registry = registries.client_for(connection)
    if registry is None:
        return None
    try:
        schema = registry.get_schema(schema_id)
    except Exception as exc:  # noqa: BLE001 - the next pass tries again; the inferred schema stands meanwhile
        log.warning("schema %s from the registry of %s: %s", schema_id, connection, exc)
        return None
    kind = {"AVRO": "avro", "JSON": "json-schema", "PROTOBUF": "protobuf"}.get((schema.schema_type or "AVRO").upper())
    if kind == "protobuf":
        try:  # the serialized descriptor, which the catalogue compares; a registry gives it for .proto text too
            schema = registry.get_schema(schema_id, fmt="serialized")
        except Exception:  # noqa: BLE001 - kept as the registry gave it
            pass
    return kind, schema.schema_str


def current(event_type: str) -> SchemaVersion | None:
    versions = list(SchemaVersion.objects.filter(event_type=event_type))
    return max(versions, key=lambda v: version_key(v.version)) if versions else None


def check_group(fingerprint: str, event_type: str, sample) -> None:
    latest = current(event_type)
    model = inference.structural(latest.kind, latest.schema, event_type) if latest else None
    found = inference.differences(model, sample) if model else []
    if found:
        GroupMismatch.objects.update_or_create(
            fingerprint=fingerprint,
            defaults={
                "event_type": event_type,
                "version": latest.version,
                "fields": [b.as_json() for b in found[:50]],
                "checked_at": latest.last_seen,
            },
        )
    else:
        GroupMismatch.objects.filter(fingerprint=fingerprint).delete()


def compatibility(old: SchemaVersion, new_kind: str, new_schema, mode: str) -> list[dict]:
    a = inference.structural(old.kind, old.schema, old.event_type)
    b = inference.structural(new_kind, new_schema, old.event_type)
    if a is None or b is None:
        return [{"field": "(root)", "why": "no schema to compare (Protobuf given as .proto text cannot be read here)"}]
    return [x.as_json() for x in inference.compatible(a, b, mode)]


def consecutive(event_type: str) -> list[dict]:
    """Each version with the breaking fields against the one before it, in every mode."""
    versions = sorted(SchemaVersion.objects.filter(event_type=event_type), key=lambda v: version_key(v.version))
    out = []
    for before, after in zip([None, *versions], versions, strict=False):
        checks = {}
        if before is not None:
            for mode in ("backward", "forward", "full"):
                checks[mode] = compatibility(before, after.kind, after.schema, mode)
        out.append({"version": after, "previous": before.version if before else None, "checks": checks})
    return out


# --- opt-in outbox validation ---


def validate_outbox(event_type: str, payload) -> None:
    """For the event types named in OUTBOX_VALIDATE_TYPES: the payload against the latest registered schema of the
    type (Avro or JSON Schema from the registry); raises SchemaMismatch with the field errors."""
    if event_type not in settings.OUTBOX_VALIDATE_TYPES or isinstance(payload, bytes | bytearray | memoryview):
        return
    registered = [v for v in SchemaVersion.objects.filter(event_type=event_type) if v.kind in REGISTERED]
    if not registered:
        raise SchemaMismatch({"": [f"{event_type} has no registered schema to validate against"]})
    latest = max(registered, key=lambda v: version_key(v.version))
    from formats import validation

    if latest.kind == "avro":
        validation.avro_datum(latest.schema, payload)
    else:
        validation.json_schema(latest.schema, payload)
