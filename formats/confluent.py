"""The Confluent wire format, read and written with confluent-kafka's own serdes against a schema registry.

A body is in it when it starts with magic byte 0 and a 4-byte schema id (Protobuf then adds its message indexes), or
when the schema id travels in the `__value_schema_id` header (magic 1 and a GUID); confluent-kafka's
dual_schema_id_deserializer reads both. Avro and JSON Schema go through its AvroDeserializer and JSONDeserializer;
Protobuf through the same registry calls and descriptor pool its ProtobufDeserializer uses, because that one needs the
producer's compiled message class, which a console never has.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import time
import uuid
from dataclasses import dataclass

from confluent_kafka.schema_registry import SchemaRegistryClient, dual_schema_id_deserializer
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.serde import SchemaId
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMA_ID_HEADERS = {False: "__value_schema_id", True: "__key_schema_id"}
MAGIC_V0 = 0


def _no_subject(ctx, record_name):  # noqa: ARG001 - confluent-kafka's strategy signature
    """No subject: read with the writer's schema, run no data-contract rules (a console reads, it does not migrate)."""
    return None


@dataclass
class Read:
    format: str  # "avro", "protobuf", "json-schema"
    schema_id: int | None
    guid: str | None
    value: object
    name: str  # the record / message / schema title
    message_indexes: list[int] | None = None


def framed(body: bytes, headers: dict[str, bytes], key: bool = False) -> bool:
    """Whether the body (or the key) is, or says it is, in the Confluent wire format."""
    if SCHEMA_ID_HEADERS[key] in headers:
        return True
    return len(body) >= 5 and body[0] == MAGIC_V0


class _Serdes:
    """Deserializers per registry client, built once: each keeps its own parsed-schema cache."""

    def __init__(self, registry: SchemaRegistryClient):
        conf = {"subject.name.strategy": _no_subject}
        self.avro = AvroDeserializer(registry, conf=conf)
        self.json = JSONDeserializer(None, schema_registry_client=registry, conf=conf)
        self.pools: dict[int, object] = {}


_serdes: dict[int, _Serdes] = {}


def serdes(registry: SchemaRegistryClient) -> _Serdes:
    found = _serdes.get(id(registry))
    if found is None:
        found = _serdes[id(registry)] = _Serdes(registry)
    return found


def context(destination: str, headers: dict[str, bytes], key: bool = False) -> SerializationContext:
    field = MessageField.KEY if key else MessageField.VALUE
    return SerializationContext(destination, field, [(k, v) for k, v in headers.items()])


def read(
    registry: SchemaRegistryClient, body: bytes, destination: str, headers: dict[str, bytes], key: bool = False
) -> Read:
    """Decode one framed body (or key: its id in the prefix or `__key_schema_id`); raises with the reason when the
    registry or the codec cannot."""
    ctx = context(destination, headers, key)
    probe = SchemaId("AVRO")
    dual_schema_id_deserializer(body, ctx, probe)  # the id, from the header or the prefix
    if probe.id is not None:
        schema = _schema(registry, probe.id)
    else:
        schema = registry.get_schema_by_guid(str(probe.guid))
    kind = (schema.schema_type or "AVRO").upper()
    guid = str(probe.guid) if probe.guid else None
    if kind == "AVRO":
        value = serdes(registry).avro(body, ctx)
        return Read("avro", probe.id, guid, jsonable(value), _avro_name(schema.schema_str))
    if kind == "JSON":
        value = serdes(registry).json(body, ctx)
        return Read("json-schema", probe.id, guid, jsonable(value), _json_title(schema.schema_str))
    if kind == "PROTOBUF":
        return _read_protobuf(registry, body, ctx, probe.id, guid)
    raise ValueError(f"schema {probe.id} is of type {kind}, which Switchyard does not read")


def _read_protobuf(registry, body, ctx, schema_id, guid) -> Read:
    from google.protobuf import json_format
    from google.protobuf.message_factory import GetMessageClass

    framing = SchemaId("PROTOBUF")
    payload = dual_schema_id_deserializer(body, ctx, framing)
    pool, fd_proto = _protobuf_pool(registry, schema_id, guid)
    descriptor = _message_descriptor(pool, fd_proto, framing.message_indexes or [0])
    message = GetMessageClass(descriptor)()
    message.ParseFromString(payload.read())
    value = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return Read("protobuf", schema_id, guid, value, descriptor.full_name, framing.message_indexes or [0])


def _protobuf_pool(registry, schema_id: int | None, guid: str | None):
    """The descriptor pool holding the schema (and its references), as ProtobufDeserializer builds it; cached."""
    from confluent_kafka.schema_registry._sync.protobuf import _resolve_named_schema
    from confluent_kafka.schema_registry.common.protobuf import _init_pool, _str_to_proto
    from google.protobuf.descriptor_pool import DescriptorPool

    key = schema_id if schema_id is not None else guid
    cache = serdes(registry).pools
    if key not in cache:
        schema = (
            registry.get_schema(schema_id, fmt="serialized")
            if schema_id is not None
            else registry.get_schema_by_guid(guid, fmt="serialized")
        )
        pool = DescriptorPool()
        _init_pool(pool)
        _resolve_named_schema(schema, registry, pool)
        fd_proto = _str_to_proto("default", schema.schema_str)
        pool.Add(fd_proto)
        cache[key] = (pool, fd_proto)
    return cache[key]


def _message_descriptor(pool, fd_proto, indexes: list[int]):
    """The message the indexes point at: [i] the i-th top-level message, [i, j] its j-th nested one, and so on."""
    messages, path = fd_proto.message_type, []
    for depth, index in enumerate(indexes):
        if not 0 <= index < len(messages):
            raise ValueError(f"message index {indexes} is not in the schema")
        path.append(messages[index].name)
        if depth < len(indexes) - 1:
            messages = messages[index].nested_type
    name = ".".join(path)
    return pool.FindMessageTypeByName(f"{fd_proto.package}.{name}" if fd_proto.package else name)


MISSING_SECONDS = 60.0
_missing: dict[tuple[int, int], tuple[float, str]] = {}


def _schema(registry: SchemaRegistryClient, schema_id: int):
    """The registry's schema `schema_id`. The client caches what it found, not what it did not: a DLQ full of bodies
    that only look framed (a leading zero byte) would otherwise cost a registry round trip each, so a failed lookup
    is remembered for a minute."""
    key = (id(registry), schema_id)
    known = _missing.get(key)
    if known is not None and known[0] > time.monotonic():
        raise LookupError(known[1])
    try:
        return registry.get_schema(schema_id)
    except Exception as exc:
        if len(_missing) > 10_000:
            _missing.clear()
        _missing[key] = (time.monotonic() + MISSING_SECONDS, f"{exc} (remembered for {MISSING_SECONDS:.0f} s)")
        raise


def _avro_name(schema_str: str | None) -> str:
    import json

    try:
        parsed = json.loads(schema_str or "")
    except ValueError:
        return ""
    if isinstance(parsed, dict):
        name = parsed.get("name", "")
        namespace = parsed.get("namespace")
        return f"{namespace}.{name}" if namespace and "." not in name else name
    return ""


def _json_title(schema_str: str | None) -> str:
    import json

    try:
        parsed = json.loads(schema_str or "")
    except ValueError:
        return ""
    return str(parsed.get("title", "")) if isinstance(parsed, dict) else ""


def jsonable(value):
    """A decoded value as JSON: bytes as base64 text, decimals and times as their text (Avro logical types)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN: JSON has none
        return "NaN"
    return value


# --- writing (edit & replay) ---


def encode(
    registry: SchemaRegistryClient, schema_id: int, value, destination: str, message_indexes: list[int] | None = None
) -> bytes:
    """`value` (as `read` gave it, edited) re-encoded with schema `schema_id`, framed with that id. Raises
    validation.SchemaMismatch with the field errors when the schema refuses it."""
    schema = registry.get_schema(schema_id)
    kind = (schema.schema_type or "AVRO").upper()
    conf = {
        "auto.register.schemas": False,
        "use.schema.id": schema_id,
        "subject.name.strategy": _subject_of(registry, schema_id),
    }
    ctx = SerializationContext(destination, MessageField.VALUE)
    if kind == "AVRO":
        from formats import validation

        datum = validation.avro_datum(schema.schema_str, value)
        return AvroSerializer(registry, schema, conf=conf)(datum, ctx)
    if kind == "JSON":
        from formats import validation

        validation.json_schema(schema.schema_str, value)
        return JSONSerializer(schema, registry, conf=conf)(value, ctx)
    if kind == "PROTOBUF":
        return _encode_protobuf(registry, schema_id, value, message_indexes or [0])
    raise ValueError(f"schema {schema_id} is of type {kind}, which Switchyard does not write")


def _subject_of(registry, schema_id):
    from formats import registries

    found = registries.subject_version(registry, schema_id)
    subject = found[0] if found else ""

    def strategy(ctx, record_name):  # noqa: ARG001
        return subject

    return strategy


def _encode_protobuf(registry, schema_id: int, value, indexes: list[int]) -> bytes:
    from google.protobuf import json_format
    from google.protobuf.message_factory import GetMessageClass

    from formats import validation

    pool, fd_proto = _protobuf_pool(registry, schema_id, None)
    descriptor = _message_descriptor(pool, fd_proto, indexes)
    message = GetMessageClass(descriptor)()
    try:
        json_format.ParseDict(value, message)
    except (json_format.ParseError, TypeError, AttributeError) as exc:
        raise validation.SchemaMismatch({"": [str(exc)]}) from None
    framing = SchemaId("PROTOBUF", schema_id, message_indexes=indexes)
    return framing.id_to_bytes() + message.SerializeToString()
