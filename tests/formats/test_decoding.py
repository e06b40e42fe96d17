"""Bodies as services put them on Kafka — Avro, Protobuf and JSON Schema through confluent-kafka's own serializers
against a schema registry, CloudEvents in binary and structured mode, compressed payloads — dead-lettered on the real
broker, ingested by the worker's step, and then read, searched and grouped as decoded JSON."""

from __future__ import annotations

import gzip
import json

import cramjam
import pytest
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from dlq.models import DeadLetterSource
from tests.formats.conftest import ingest_all

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_AVRO = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "acme.orders",
        "fields": [
            {"name": "order_id", "type": "string"},
            {"name": "quantity", "type": "int"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "signature", "type": "bytes"},
        ],
    }
)
PAYMENT_JSON_SCHEMA = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "PaymentFailed",
        "type": "object",
        "properties": {"payment_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["payment_id", "amount"],
    }
)
FAILURE = {"x-exception-type": b"app.ValidationError", "x-exception-message": b"quantity must be positive"}


def shipment_class():
    """A Protobuf message class built from a descriptor, as protoc's output would give a service: two top-level
    messages, so the one sent (the second) is named by its message index."""
    file = descriptor_pb2.FileDescriptorProto(name="acme/shipping.proto", package="acme.shipping", syntax="proto3")
    first = file.message_type.add(name="Parcel")
    first.field.add(name="weight", number=1, type=2, label=1)  # float
    msg = file.message_type.add(name="ShipmentDelayed")
    msg.field.add(name="shipment_id", number=1, type=9, label=1)  # string
    msg.field.add(name="days", number=2, type=5, label=1)  # int32
    msg.field.add(name="carriers", number=3, type=9, label=3)  # repeated string
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("acme.shipping.ShipmentDelayed"))


def test_it_decodes_avro_protobuf_and_json_schema_from_the_registry(dlq_topic, produce, producer_client, registry):
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    avro = AvroSerializer(producer_client, ORDER_AVRO)
    shipment = shipment_class()
    proto = ProtobufSerializer(shipment, producer_client, {"use.deprecated.format": False})
    js = JSONSerializer(PAYMENT_JSON_SCHEMA, producer_client)
    produce(
        dlq_topic,
        avro({"order_id": "ord-7781", "quantity": -2, "note": None, "signature": b"\x00\xffsig"}, ctx),
        {**FAILURE, "n": b"avro"},
    )
    produce(dlq_topic, proto(shipment(shipment_id="shp-42", days=3, carriers=["dhl", "ups"]), ctx), {"n": b"proto"})
    produce(dlq_topic, js({"payment_id": "pay-9", "amount": 12.5}, ctx), {"n": b"json"})
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic)

    letters = ingest_all(source, 3)

    avro_dl = letters["avro"]
    assert avro_dl.decoded["decoder"] == "avro"
    assert avro_dl.decoded["value"] == {"order_id": "ord-7781", "quantity": -2, "note": None, "signature": "AP9zaWc="}
    schema = avro_dl.decoded["schema"]
    assert (schema["name"], schema["subject"], schema["version"]) == (
        "acme.orders.OrderPlaced",
        f"{dlq_topic}-value",
        1,
    )
    assert schema["id"] == int.from_bytes(avro_dl.body_bytes()[1:5], "big")
    assert avro_dl.message_type == "acme.orders.OrderPlaced"  # grouped by the record it carries

    proto_dl = letters["proto"]
    assert proto_dl.decoded["decoder"] == "protobuf"
    assert proto_dl.decoded["value"] == {"shipment_id": "shp-42", "days": 3, "carriers": ["dhl", "ups"]}
    assert proto_dl.decoded["schema"]["name"] == "acme.shipping.ShipmentDelayed"
    assert proto_dl.decoded["schema"]["message_indexes"] == [1]

    json_dl = letters["json"]
    assert json_dl.decoded["decoder"] == "json-schema"
    assert json_dl.decoded["value"] == {"payment_id": "pay-9", "amount": 12.5}
    assert json_dl.decoded["schema"]["name"] == "PaymentFailed"
    # The registry was asked once per schema, not per message, and with the connection's credentials.
    assert registry.requests.count(f"GET /schemas/ids/{schema['id']}") == 1


def test_it_reads_the_schema_id_from_the_value_schema_id_header(dlq_topic, produce, producer_client):
    from confluent_kafka.schema_registry import header_schema_id_serializer

    ctx = SerializationContext(dlq_topic, MessageField.VALUE, [])
    avro = AvroSerializer(producer_client, ORDER_AVRO, conf={"schema.id.serializer": header_schema_id_serializer})
    body = avro({"order_id": "ord-h", "quantity": 1, "note": "via header", "signature": b""}, ctx)
    assert body[:1] != b"\x00"  # the id is not in the body
    produce(dlq_topic, body, dict(ctx.headers))
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic)

    (dl,) = ingest_all(source, 1).values()

    assert dl.decoded["decoder"] == "avro"
    assert dl.decoded["value"]["note"] == "via header"


def test_it_decodes_cloudevents_in_binary_and_structured_mode(dlq_topic, produce, producer_client):
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    avro = AvroSerializer(producer_client, ORDER_AVRO)
    binary_headers = {
        "ce_specversion": b"1.0",
        "ce_type": b"com.acme.order.placed",
        "ce_source": b"/services/checkout",
        "ce_id": b"evt-123",
        "ce_subject": b"saga-8812",
        "content-type": b"application/avro",
        "n": b"binary",
    }
    produce(dlq_topic, avro({"order_id": "ord-ce", "quantity": 3, "note": None, "signature": b""}, ctx), binary_headers)
    structured = {
        "specversion": "1.0",
        "type": "com.acme.payment.failed",
        "source": "/services/payments",
        "id": "evt-456",
        "subject": "saga-9000",
        "datacontenttype": "application/json",
        "data": {"payment_id": "pay-ce", "reason": "card declined"},
    }
    produce(
        dlq_topic,
        json.dumps(structured).encode(),
        {"content-type": b"application/cloudevents+json", "n": b"structured"},
    )
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic)

    letters = ingest_all(source, 2)

    binary = letters["binary"]
    assert binary.decoded["cloudevent"]["source"] == "/services/checkout"
    assert binary.decoded["cloudevent"]["id"] == "evt-123"
    assert binary.decoded["decoder"] == "avro" and binary.decoded["value"]["order_id"] == "ord-ce"
    assert (binary.message_type, binary.correlation_id) == ("com.acme.order.placed", "saga-8812")
    structured_dl = letters["structured"]
    assert structured_dl.decoded["decoder"] == "cloudevents"
    assert structured_dl.decoded["cloudevent"]["mode"] == "structured"
    assert structured_dl.decoded["value"] == {"payment_id": "pay-ce", "reason": "card declined"}
    assert (structured_dl.message_type, structured_dl.correlation_id) == ("com.acme.payment.failed", "saga-9000")


def test_it_inflates_gzip_zstd_snappy_and_lz4_bodies(dlq_topic, produce, producer_client):
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    avro_body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "ord-zstd", "quantity": 1, "note": None, "signature": b""}, ctx
    )
    text = json.dumps({"order_id": "ord-gzip", "lines": ["a"] * 50}).encode()
    produce(dlq_topic, gzip.compress(text), {"n": b"gzip"})  # by magic bytes
    produce(dlq_topic, bytes(cramjam.zstd.compress(avro_body)), {"n": b"zstd"})  # compressed Avro in wire format
    produce(dlq_topic, bytes(cramjam.snappy.compress_raw(text)), {"n": b"snappy", "content-encoding": b"snappy"})
    produce(dlq_topic, bytes(cramjam.lz4.compress(text)), {"n": b"lz4"})
    produce(dlq_topic, gzip.compress(text)[:-12], {"n": b"broken"})
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic)

    letters = ingest_all(source, 5)

    for n in ("gzip", "snappy", "lz4"):
        assert letters[n].decoded["compression"] == n
        assert letters[n].decoded["decoder"] == "json"
        assert letters[n].decoded["value"]["order_id"] == "ord-gzip"
    assert letters["zstd"].decoded["compression"] == "zstd"
    assert letters["zstd"].decoded["decoder"] == "avro"
    assert letters["zstd"].decoded["value"]["order_id"] == "ord-zstd"
    broken = letters["broken"].decoded
    assert broken["decoder"] == "hex" and broken["error"].startswith("gzip could not be inflated")


def test_it_falls_back_to_hex_with_the_reason(dlq_topic, produce, producer_client, registry):
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "o", "quantity": 1, "note": None, "signature": b""}, ctx
    )
    produce(dlq_topic, b"\x00\x00\x00\x03\xe7" + body[5:], {"n": b"unknown-id"})  # schema 999 does not exist
    produce(dlq_topic, b"\x00\x00\x00\x03\xe7" + body[5:], {"n": b"unknown-again"})
    produce(dlq_topic, body[:6], {"n": b"truncated"})
    produce(dlq_topic, b'{"plain": "json"}', {"n": b"plain"})
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic)

    letters = ingest_all(source, 4)

    unknown = letters["unknown-id"].decoded
    assert registry.requests.count("GET /schemas/ids/999") == 1  # a failed lookup is remembered
    assert sum("remembered" in letters[n].decoded["error"] for n in ("unknown-id", "unknown-again")) == 1
    assert unknown["decoder"] == "hex" and "schema 999" in unknown["error"]
    assert letters["truncated"].decoded["error"].startswith("Confluent wire format")
    assert letters["plain"].decoded is None  # plain JSON: the usual views, nothing decoded
    assert not letters["unknown-id"].parse_error  # the message was read as it came


def test_it_shows_searches_and_groups_decoded_bodies(dlq_topic, produce, producer_client, world):
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    avro = AvroSerializer(producer_client, ORDER_AVRO)
    hostile = '<script>alert("x")</script>'
    for n, order in enumerate(["ord-search-1", "ord-search-2", "ord-search-3"]):
        body = avro({"order_id": order, "quantity": n, "note": hostile, "signature": b""}, ctx)
        produce(dlq_topic, body, {**FAILURE, "n": str(n).encode()})
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic)
    letters = ingest_all(source, 3)
    client = world.client(world.operator)

    page = client.get(f"/dead-letters/{letters['1'].pk}/").content.decode()
    assert 'data-testid="decoder">avro' in page
    assert "acme.orders.OrderPlaced id " in page and f"{dlq_topic}-value v1" in page
    assert "ord-search-2" in page
    assert hostile not in page and "&lt;script&gt;" in page  # escaped: bodies are hostile

    found = client.get("/api/v1/dead-letters?q=ord-search-2").json()["dead_letters"]
    assert [d["id"] for d in found] == [letters["1"].pk]  # full-text search reads the decoded body
    one = client.get(f"/api/v1/dead-letters/{letters['1'].pk}").json()
    assert one["decoded"]["value"]["order_id"] == "ord-search-2"

    groups = client.get("/api/v1/dead-letter-groups").json()
    (group,) = [g for g in groups["groups"] if g["message_type"] == "acme.orders.OrderPlaced"]
    assert group["count"] == 3


def test_it_hides_the_decoded_body_from_who_may_not_read_contents(dlq_topic, produce, producer_client, world, settings):
    settings.CONTENTS_ROLE = "operator"
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "ord-secret", "quantity": 1, "note": "card 4111", "signature": b""}, ctx
    )
    produce(dlq_topic, body, FAILURE)
    (dl,) = ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic), 1).values()
    viewer = world.client(world.viewer)

    one = viewer.get(f"/api/v1/dead-letters/{dl.pk}").json()
    assert one["decoded"]["decoder"] == "avro" and "value" not in one["decoded"]
    exported = b"".join(viewer.get("/api/v1/dead-letters/export").streaming_content).decode()
    page = viewer.get(f"/dead-letters/{dl.pk}/").content.decode()
    for text in (json.dumps(one), exported, page):
        assert "card 4111" not in text and "ord-secret" not in text
    assert "card 4111" in world.client(world.operator).get(f"/api/v1/dead-letters/{dl.pk}").content.decode()


def test_it_keeps_a_large_decoded_value_out_of_the_row(dlq_topic, produce, settings):
    settings.DLQ_INLINE_BODY_MAX = 1000
    text = json.dumps({"order_id": "ord-big", "lines": ["x" * 50] * 100}).encode()
    produce(dlq_topic, gzip.compress(text))
    (dl,) = ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic), 1).values()
    assert dl.decoded["compression"] == "gzip" and dl.decoded["value"] is None
    assert "not kept" in dl.decoded["notes"][0]
    assert "ord-big" in dl.body_text  # still found by search


def test_it_decodes_a_key_in_the_wire_format(dlq_topic, produce, producer_client):
    key_schema = json.dumps({"type": "record", "name": "OrderKey", "namespace": "acme", "fields": [
        {"name": "tenant", "type": "string"}, {"name": "order", "type": "long"}]})  # fmt: skip
    key = AvroSerializer(producer_client, key_schema)(
        {"tenant": "t-1", "order": 7781}, SerializationContext(dlq_topic, MessageField.KEY)
    )
    produce(dlq_topic, b'{"plain": "body"}', {"n": b"k"}, key=key)
    (dl,) = ingest_all(DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic), 1).values()
    assert dl.decoded["key"]["decoder"] == "avro"
    assert dl.decoded["key"]["value"] == {"tenant": "t-1", "order": 7781}
    assert dl.decoded["key"]["schema"]["name"] == "acme.OrderKey"
    assert "decoder" not in dl.decoded  # the body is plain JSON: its usual views


def test_it_decodes_an_avro_outbox_payload_on_its_page(kafka, producer_client, world):
    from django.db import transaction

    from outbox import publish

    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "ord-outbox", "quantity": 2, "note": "<b>hi</b>", "signature": b""},
        SerializationContext("orders", MessageField.VALUE),
    )
    with transaction.atomic():
        event = publish("kafka://orders", "k", "acme.orders.OrderPlaced", body)
    page = world.client(world.operator).get(f"/outbox/events/{event.pk}/").content.decode()
    assert 'data-testid="decoder">avro' in page and "ord-outbox" in page
    assert "<b>hi</b>" not in page and "&lt;b&gt;hi&lt;/b&gt;" in page
    assert 'data-testid="decoded-edit"' not in page  # replay of an outbox row is not an edit of a dead letter
