"""Whether an (edited) decoded value fits its schema, with the field errors when it does not: fastavro's validator
for Avro, jsonschema for JSON Schema (Protobuf: json_format's ParseError, in formats.confluent)."""

from __future__ import annotations

import base64
import binascii
import decimal
import json

import fastavro
from fastavro.validation import validate as avro_validate


class SchemaMismatch(ValueError):
    """The schema refuses a value: field path → messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k or 'body'}: {', '.join(v)}" for k, v in errors.items()))


def avro_datum(schema_str: str, value):
    """The value as fastavro writes it (base64 text back to bytes, decimal text back to Decimal), validated."""
    parsed = fastavro.parse_schema(json.loads(schema_str))
    datum = _to_avro(parsed, value, {})
    errors: dict[str, list[str]] = {}
    try:
        avro_validate(datum, parsed, raise_errors=True)
    except fastavro.validation.ValidationError as exc:
        for item in getattr(exc, "errors", None) or []:
            field = str(getattr(item, "field", "") or "")
            errors.setdefault(_field_path(field), []).append(
                f"{_short(item.datum)} is not a valid {_type_name(item.schema)}"
            )
        if not errors:
            errors[""] = [str(m) for m in json.loads(exc.args[0])] if exc.args else ["does not match the schema"]
    if errors:
        raise SchemaMismatch(errors)
    return datum


def _field_path(field: str) -> str:
    # fastavro names a field by its record's full name: "acme.Order.qty" → "qty"
    return field.rsplit(".", 1)[-1] if field else ""


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(schema) -> str:
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("type"))
    if isinstance(schema, list):
        return " or ".join(_type_name(s) for s in schema)
    return str(schema)


def _to_avro(schema, value, named: dict):
    if isinstance(schema, str):
        schema = named.get(schema, schema)
    if isinstance(schema, list):
        for branch in schema:
            candidate = _to_avro(branch, value, named)
            try:
                avro_validate(candidate, branch if not isinstance(branch, str) else named.get(branch, branch))
                return candidate
            except Exception:  # noqa: BLE001,S112 - the next branch may take it
                continue
        return value
    if isinstance(schema, dict):
        kind = schema.get("type")
        if "name" in schema and kind in ("record", "enum", "fixed"):
            named[schema["name"]] = schema
        logical = schema.get("logicalType")
        if logical == "decimal" and isinstance(value, str):
            try:
                return decimal.Decimal(value)
            except decimal.InvalidOperation:
                return value
        if kind == "record" and isinstance(value, dict):
            fields = {f["name"]: f for f in schema.get("fields", [])}
            return {k: _to_avro(fields[k]["type"], v, named) if k in fields else v for k, v in value.items()}
        if kind == "array" and isinstance(value, list):
            return [_to_avro(schema["items"], v, named) for v in value]
        if kind == "map" and isinstance(value, dict):
            return {k: _to_avro(schema["values"], v, named) for k, v in value.items()}
        if kind in ("bytes", "fixed") and isinstance(value, str):
            return _unbase64(value)
        if isinstance(kind, dict | list):
            return _to_avro(kind, value, named)
        return value
    if schema == "bytes" and isinstance(value, str):
        return _unbase64(value)
    return value


def _unbase64(value: str):
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value


def json_schema(schema_str: str, value) -> None:
    import jsonschema

    schema = json.loads(schema_str)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors: dict[str, list[str]] = {}
    for error in validator.iter_errors(value):
        errors.setdefault(".".join(str(p) for p in error.absolute_path), []).append(error.message)
    if errors:
        raise SchemaMismatch(errors)
