"""CloudEvents, read with the cloudevents SDK's protocol bindings: binary mode (attributes in `ce_` headers on Kafka,
`ce-` on HTTP-style transports such as NATS, SQS attributes and RabbitMQ, `cloudEvents_` / `cloudEvents:` on AMQP)
and structured mode (the whole event as JSON: `application/cloudevents+json`, or a JSON body with a specversion)."""

from __future__ import annotations

import datetime

from cloudevents.core.bindings import amqp, http, kafka
from cloudevents.core.formats.json import JSONFormat

_FORMAT = JSONFormat()
ATTRIBUTES = ("specversion", "type", "source", "id", "subject", "time", "datacontenttype", "dataschema")


def _attributes(event) -> dict:
    out = {}
    for name, value in event.get_attributes().items():
        if isinstance(value, datetime.datetime):
            value = value.isoformat()
        out[name] = value if isinstance(value, str | int | float | bool) or value is None else str(value)
    return out


def binary(headers: dict[str, bytes]) -> dict | None:
    """The attributes of a binary-mode CloudEvent, or None when the headers carry none; raises when they are there
    but do not make a valid event (a required attribute missing)."""
    lowered = [name.lower() for name in headers]
    if any(name.startswith("ce_") for name in lowered):
        event = kafka.from_binary(kafka.KafkaMessage(headers=_bytes(headers), key=None, value=b""), _FORMAT)
        return {"mode": "binary", **_attributes(event)}
    if any(name.startswith("ce-") for name in lowered):
        text = {k: v.decode("utf-8", "replace") for k, v in _bytes(headers).items()}
        event = http.from_binary(http.HTTPMessage(headers=text, body=b""), _FORMAT)
        return {"mode": "binary", **_attributes(event)}
    if any(name.startswith(("cloudevents_", "cloudevents:")) for name in lowered):
        props = {k: v.decode("utf-8", "replace") for k, v in _bytes(headers).items()}
        event = amqp.from_binary(
            amqp.AMQPMessage(properties={}, application_properties=props, application_data=b""), _FORMAT
        )
        return {"mode": "binary", **_attributes(event)}
    return None


def _bytes(headers: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v if isinstance(v, bytes) else str(v).encode() for k, v in headers.items()}


def looks_structured(body: bytes, content_type: str) -> bool:
    if content_type.lower().startswith("application/cloudevents"):
        return True
    head = body[:2048].lstrip()
    return head[:1] == b"{" and b'"specversion"' in head


def structured(body: bytes) -> tuple[dict, object]:
    """(attributes, data) of a structured-mode event: data is a dict or text, or bytes (`data_base64`)."""
    event = _FORMAT.read(None, body)
    return {"mode": "structured", **_attributes(event)}, event.get_data()
