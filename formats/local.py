"""Schemas without a registry (SWITCHYARD_SCHEMAS, a YAML list; README "Message formats"): Avro from .avsc files and
Protobuf from descriptor sets (`protoc --include_imports --descriptor_set_out`), mapped to topics and queues by
pattern, and Protobuf with no schema at all, decoded structurally (field numbers and wire types) by bbpb.

    - match: "orders*"                 # fnmatch on the DLQ's name or its origin
      connection: "kafka:*"            # optional, fnmatch on the connection key
      avro: /etc/switchyard/schemas/order.avsc
    - match: "shipments*"
      protobuf: {descriptor_set: /etc/switchyard/schemas/shipping.desc, message: acme.shipping.ShipmentDelayed}
    - match: "legacy-*"
      protobuf: schemaless

A body still framed in the Confluent wire format is read past its 5-byte prefix (Avro with a registry nobody can
reach from here is the common case). Plain Python: no Django.
"""

from __future__ import annotations

import fnmatch
import io
import json
from dataclasses import dataclass
from pathlib import Path

import yaml


class SchemasError(ValueError):
    """The schemas file cannot be used; the text names the entry and the key."""


@dataclass
class Rule:
    match: str
    connection: str
    kind: str  # "avro", "protobuf", "protobuf-raw"
    file: str = ""
    message: str = ""
    schema: object = None  # parsed Avro schema, or the Protobuf message class

    def applies(self, names: tuple[str, ...], connection: str) -> bool:
        return fnmatch.fnmatchcase(connection, self.connection) and any(
            fnmatch.fnmatchcase(n, self.match) for n in names if n
        )


class Catalogue:
    def __init__(self, rules: list[Rule]):
        self.rules = rules

    def rule_for(self, names: tuple[str, ...], connection: str) -> Rule | None:
        return next((r for r in self.rules if r.applies(names, connection)), None)

    def decode(self, body: bytes, names: tuple[str, ...], connection: str):
        """(decoder, value, schema, error) by the first rule that applies, or None when none does."""
        rule = self.rule_for(names, connection)
        if rule is None:
            return None
        payload = body[5:] if len(body) >= 5 and body[0] == 0 and rule.kind == "avro" else body
        try:
            value = _READERS[rule.kind](rule, payload)
        except Exception as exc:  # noqa: BLE001 - the reason is shown; the body falls back to text or hex
            return None, None, None, f"{rule.kind} by {rule.file or rule.kind} ({rule.match}): {exc}"[:500]
        schema = {"name": rule.message or _avro_name(rule.schema), "file": rule.file, "source": "local"}
        if rule.kind == "protobuf-raw":
            schema = None
        return rule.kind, value, schema, None


def _read_avro(rule: Rule, body: bytes):
    from fastavro import schemaless_reader

    from formats.confluent import jsonable

    stream = io.BytesIO(body)
    value = schemaless_reader(stream, rule.schema, None)
    if stream.tell() != len(body):
        raise ValueError(f"{len(body) - stream.tell()} bytes left after the record: not this schema")
    return jsonable(value)


def _read_protobuf(rule: Rule, body: bytes):
    from google.protobuf import json_format

    message = rule.schema()
    message.ParseFromString(body)
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _read_raw(rule: Rule, body: bytes):  # noqa: ARG001 - one signature for every reader
    import blackboxprotobuf

    from formats.confluent import jsonable

    value, typedef = blackboxprotobuf.decode_message(body)
    return {"fields": jsonable(value), "types": {k: v.get("type") for k, v in typedef.items()}}


_READERS = {"avro": _read_avro, "protobuf": _read_protobuf, "protobuf-raw": _read_raw}


def _avro_name(schema) -> str:
    return str(schema.get("name", "")) if isinstance(schema, dict) else ""


def load(path: str | None) -> Catalogue:
    if not path:
        return Catalogue([])
    try:
        document = yaml.safe_load(Path(path).read_text()) or []
    except (OSError, yaml.YAMLError) as exc:
        raise SchemasError(f"SWITCHYARD_SCHEMAS={path}: {exc}") from None
    if not isinstance(document, list):
        raise SchemasError(f"{path}: a list of {{match, avro | protobuf}} entries")
    base = Path(path).parent
    return Catalogue([_rule(entry, i, base, path) for i, entry in enumerate(document)])


def _rule(entry, i: int, base: Path, path) -> Rule:
    where = f"{path}: entry {i + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
        raise SchemasError(f"{where}: needs match (a pattern of topic or queue names)")
    unknown = set(entry) - {"match", "connection", "avro", "protobuf"}
    if unknown:
        raise SchemasError(f"{where}: unknown key {', '.join(sorted(unknown))}")
    rule = Rule(match=entry["match"], connection=str(entry.get("connection") or "*"), kind="")
    if ("avro" in entry) == ("protobuf" in entry):
        raise SchemasError(f"{where}: give avro or protobuf")
    if "avro" in entry:
        import fastavro

        rule.kind, rule.file = "avro", str(base / entry["avro"])
        try:
            rule.schema = fastavro.parse_schema(json.loads(Path(rule.file).read_text()))
        except Exception as exc:  # noqa: BLE001 - named with the entry
            raise SchemasError(f"{where}.avro: {rule.file}: {exc}") from None
        return rule
    proto = entry["protobuf"]
    if proto == "schemaless":
        rule.kind = "protobuf-raw"
        return rule
    if not isinstance(proto, dict) or not proto.get("descriptor_set") or not proto.get("message"):
        raise SchemasError(f"{where}.protobuf: schemaless, or {{descriptor_set, message}}")
    rule.kind, rule.file, rule.message = "protobuf", str(base / proto["descriptor_set"]), str(proto["message"])
    try:
        rule.schema = message_class(Path(rule.file).read_bytes(), rule.message)
    except Exception as exc:  # noqa: BLE001 - named with the entry
        raise SchemasError(f"{where}.protobuf: {rule.file}: {exc}") from None
    return rule


def message_class(descriptor_set: bytes, name: str):
    """The message class `name` from a serialized FileDescriptorSet (files added in dependency order)."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in files}
    added: set[str] = set()
    while pending:
        ready = [f for f in pending.values() if all(d in added or d not in pending for d in f.dependency)]
        if not ready:
            raise ValueError("the descriptor set's imports form a cycle")
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            del pending[f.name]
    return GetMessageClass(pool.FindMessageTypeByName(name))


_cache: dict[str | None, Catalogue] = {}


def catalogue() -> Catalogue:
    """The catalogue of settings.SWITCHYARD_SCHEMAS, loaded once per process (and per path, for tests)."""
    from django.conf import settings

    path = getattr(settings, "SWITCHYARD_SCHEMAS", None)
    if path not in _cache:
        _cache[path] = load(path)
    return _cache[path]
