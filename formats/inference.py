"""JSON Schemas inferred from sample values, and compatibility between two schemas with the breaking fields named.

The model is the common part of Avro, JSON Schema and what inference gives: objects with named properties, each with
its types and whether it is required (Avro: a field without default; inferred: present in every sample). Rules, as
the registries define the modes for the reader and the writer:
  backward (a consumer on the new version reads events of the old): a property required now that the old version
    did not always carry, or a type the new version no longer accepts, breaks;
  forward (a consumer on the old version reads events of the new): a property the old version required that the new
    may lack, or a new type the old one does not accept, breaks;
  full: both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_DEPTH = 12
# Avro's promotions a reader accepts (the writer's type → readers that read it).
AVRO_PROMOTE = {"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"}}


def type_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def infer(values: list, depth: int = 0) -> dict:
    """A JSON Schema that every one of `values` matches: types, object properties (required: in every sample)."""
    types = sorted({type_of(v) for v in values})
    schema: dict = {"type": types[0] if len(types) == 1 else types}
    if depth >= MAX_DEPTH:
        return schema
    objects = [v for v in values if isinstance(v, dict)]
    if objects:
        keys = sorted({k for o in objects for k in o})
        schema["properties"] = {k: infer([o[k] for o in objects if k in o], depth + 1) for k in keys}
        schema["required"] = [k for k in keys if all(k in o for o in objects)]
    arrays = [item for v in values if isinstance(v, list) for item in v]
    if arrays:
        schema["items"] = infer(arrays, depth + 1)
    return schema


def merge(a: dict | None, b: dict | None) -> dict | None:
    """The schema both a's and b's samples match (used to grow an inferred schema refresh by refresh)."""
    if a is None or b is None:
        return a or b
    types = sorted(set(_types(a)) | set(_types(b)))
    out: dict = {"type": types[0] if len(types) == 1 else types}
    pa, pb = a.get("properties"), b.get("properties")
    if pa is not None or pb is not None:
        pa, pb = pa or {}, pb or {}
        out["properties"] = {k: merge(pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb))}
        ra = set(a.get("required", [])) if a.get("properties") is not None else set(pb)
        rb = set(b.get("required", [])) if b.get("properties") is not None else set(pa)
        out["required"] = sorted(ra & rb)
    if a.get("items") or b.get("items"):
        out["items"] = merge(a.get("items"), b.get("items"))
    return out


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


# --- Avro → the common model ---


def from_avro(schema, named: dict | None = None, depth: int = 0) -> dict:
    named = {} if named is None else named
    if isinstance(schema, str) and schema.lstrip()[:1] in ("{", "["):
        try:
            schema = json.loads(schema)  # the schema text as the registry keeps it
        except ValueError:
            pass
    if isinstance(schema, str):
        return named.get(schema) or {"type": _avro_primitive(schema)}
    if isinstance(schema, list):
        branches = [from_avro(s, named, depth + 1) for s in schema]
        out = {"type": sorted({t for b in branches for t in _types(b)})}
        for b in branches:
            for key in ("properties", "required", "items"):
                if key in b:
                    out[key] = b[key]
        if len(out["type"]) == 1:
            out["type"] = out["type"][0]
        return out
    kind = schema.get("type")
    if kind == "record":
        props, required = {}, []
        out = {"type": "object", "properties": props, "required": required}
        named[schema.get("name", "")] = out
        for field in schema.get("fields", []):
            props[field["name"]] = from_avro(field["type"], named, depth + 1)
            if "default" not in field:
                required.append(field["name"])
        return out
    if kind == "array":
        return {"type": "array", "items": from_avro(schema["items"], named, depth + 1)}
    if kind == "map":
        return {"type": "object"}
    if kind == "enum":
        return {"type": "string", "enum": schema.get("symbols", [])}
    if kind == "fixed":
        return {"type": "string"}
    if isinstance(kind, dict | list):
        return from_avro(kind, named, depth + 1)
    if schema.get("logicalType") in ("decimal",):
        return {"type": "string"}
    return {"type": _avro_primitive(kind)}


def _avro_primitive(name: str) -> str:
    return {
        "null": "null",
        "boolean": "boolean",
        "int": "integer",
        "long": "integer",
        "float": "number",
        "double": "number",
        "bytes": "string",
        "string": "string",
    }.get(name, "string")


# FieldDescriptorProto types → the common model's (descriptor.proto's numbering)
_PROTO_TYPES = {1: "number", 2: "number", 3: "integer", 4: "integer", 5: "integer", 6: "integer", 7: "integer",
                8: "boolean", 9: "string", 12: "string", 13: "integer", 14: "string", 15: "integer", 16: "integer",
                17: "integer", 18: "integer"}  # fmt: skip


def from_protobuf(schema_str: str, message: str = "") -> dict | None:
    """A Protobuf schema as the registry serializes it (a base64 FileDescriptorProto) in the common model: every
    field optional (proto3), a type change breaking. Keyed by field name; None for .proto text (no parser here)."""
    from confluent_kafka.schema_registry.common.protobuf import _str_to_proto

    try:
        fd = _str_to_proto("catalogue", schema_str)
    except Exception:  # noqa: BLE001 - .proto text, which Python cannot compile without protoc
        return None
    package = f"{fd.package}." if fd.package else ""
    messages = {}

    def collect(prefix: str, items) -> None:
        for m in items:
            messages[f"{prefix}{m.name}"] = m
            collect(f"{prefix}{m.name}.", m.nested_type)

    collect(package, fd.message_type)
    if not messages:
        return None
    root = messages.get(message) or messages[f"{package}{fd.message_type[0].name}"]

    def convert(m, depth: int) -> dict:
        props = {}
        for f in m.field:
            if f.type == 11:  # a message
                nested = messages.get(f.type_name.lstrip("."))
                item = convert(nested, depth + 1) if nested is not None and depth < MAX_DEPTH else {"type": "object"}
            else:
                item = {"type": _PROTO_TYPES.get(f.type, "string")}
            props[f.name] = {"type": "array", "items": item} if f.label == 3 else item
        return {"type": "object", "properties": props, "required": []}

    return convert(root, 0)


def structural(kind: str, schema, name: str = "") -> dict | None:
    """A stored schema (avro text, a JSON Schema, an inferred one) in the common model; None if it has none."""
    if schema is None:
        return None
    if kind == "avro":
        return from_avro(schema)
    if kind == "protobuf":
        return from_protobuf(schema, name) if isinstance(schema, str) else None
    if isinstance(schema, str):
        try:
            return json.loads(schema)
        except ValueError:
            return None
    return schema


# --- compatibility ---


@dataclass
class Breaking:
    field: str
    why: str

    def as_json(self) -> dict:
        return {"field": self.field, "why": self.why}


def compatible(old: dict, new: dict, mode: str) -> list[Breaking]:
    """What breaks between `old` and `new` (common-model schemas) in `mode`: backward, forward or full."""
    found: list[Breaking] = []
    if mode in ("backward", "full"):
        found += _reader_breaks(reader=new, writer=old, path="", who="backward")
    if mode in ("forward", "full"):
        found += _reader_breaks(reader=old, writer=new, path="", who="forward")
    unique = {(b.field, b.why): b for b in found}
    return list(unique.values())


def _accepts(reader_types: set[str], writer_types: set[str]) -> set[str]:
    """The writer's types a reader cannot take (integer is a number; nothing else is promoted)."""
    return {t for t in writer_types if t not in reader_types and not (t == "integer" and "number" in reader_types)}


def _reader_breaks(reader: dict, writer: dict, path: str, who: str, depth: int = 0) -> list[Breaking]:
    out = []
    if depth > MAX_DEPTH:
        return out
    rtypes, wtypes = set(_types(reader)), set(_types(writer))
    if rtypes and wtypes:
        missing = _accepts(rtypes, wtypes)
        if missing:
            side = "the new version" if who == "backward" else "the old version"
            out.append(Breaking(path or "(root)", f"{side} does not accept {'/'.join(sorted(missing))} here "
                                f"(reads {'/'.join(sorted(rtypes))})"))  # fmt: skip
    rprops, wprops = reader.get("properties"), writer.get("properties")
    if rprops is not None and wprops is not None:
        wrequired = set(writer.get("required", []))
        for name in reader.get("required", []):
            if name not in wrequired:
                where = f"{path}.{name}" if path else name
                if who == "backward":
                    why = "required by the new version, but events of the old may lack it (add a default)"
                else:
                    why = "required by the old version, but events of the new may lack it"
                out.append(Breaking(where, why))
        for name, rschema in rprops.items():
            if name in wprops:
                where = f"{path}.{name}" if path else name
                out += _reader_breaks(rschema or {}, wprops[name] or {}, where, who, depth + 1)
    if reader.get("items") and writer.get("items"):
        out += _reader_breaks(reader["items"], writer["items"], f"{path}[]", who, depth + 1)
    return out


def differences(schema: dict, value, path: str = "", depth: int = 0) -> list[Breaking]:
    """How one body differs from a schema: missing required fields, fields it does not know, wrong types."""
    out: list[Breaking] = []
    if depth > MAX_DEPTH:
        return out
    types = set(_types(schema))
    actual = type_of(value)
    if types and _accepts(types, {actual}):
        out.append(Breaking(path or "(root)", f"is {actual}, the current version has {'/'.join(sorted(types))}"))
        return out
    if isinstance(value, dict) and schema.get("properties") is not None:
        props = schema["properties"]
        for name in schema.get("required", []):
            if name not in value:
                out.append(Breaking(f"{path}.{name}" if path else name, "missing; the current version requires it"))
        for name, item in value.items():
            where = f"{path}.{name}" if path else name
            if name not in props:
                out.append(Breaking(where, "not in the current version"))
            else:
                out += differences(props[name] or {}, item, where, depth + 1)
    return out
