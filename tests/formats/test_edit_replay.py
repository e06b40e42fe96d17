"""Edit & replay of a decoded body: re-encoded with the schema id it came with, onto the real broker, and read back
with confluent-kafka's own deserializer; an edit the schema refuses is not sent and its fields are named; the audit
entry holds the decoded diff."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from console.models import AuditEntry
from dlq.models import DeadLetterSource
from tests.formats.conftest import ingest_all
from tests.formats.test_decoding import FAILURE, ORDER_AVRO

pytestmark = pytest.mark.django_db(transaction=True)


def _read_one(kafka, topic: str, seconds: float = 20):
    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(kafka.bootstrap_servers),
            "group.id": f"t-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                return msg
        raise AssertionError(f"nothing on {topic}")
    finally:
        consumer.close()


def test_it_replays_an_edited_avro_body_with_the_same_schema_id(
    kafka, destinations, dlq_topic, produce, producer_client, world
):
    origin = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}-orders")
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "ord-edit", "quantity": -2, "note": None, "signature": b"\x01\x02"}, ctx
    )
    produce(dlq_topic, body, FAILURE)
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic, origin=origin)
    (dl,) = ingest_all(source, 1).values()
    schema_id = dl.decoded["schema"]["id"]
    client = world.client(world.operator)

    page = client.get(f"/dead-letters/{dl.pk}/").content.decode()
    assert 'data-testid="decoded-edit"' in page

    bad = {**dl.decoded["value"], "quantity": "many"}
    refused = client.post(
        f"/api/v1/dead-letters/{dl.pk}/edit-replay",
        {"body": json.dumps(bad), "reason": "fix qty", "idempotency_key": str(uuid.uuid4())},
        content_type="application/json",
    )
    assert refused.status_code == 400, refused.content
    assert "body.quantity" in refused.json()["fields"], refused.json()

    fixed = {**dl.decoded["value"], "quantity": 2}
    sent = client.post(
        f"/api/v1/dead-letters/{dl.pk}/edit-replay",
        {"body": json.dumps(fixed), "reason": "fix qty", "idempotency_key": str(uuid.uuid4())},
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.content

    msg = _read_one(kafka, origin)
    assert int.from_bytes(msg.value()[1:5], "big") == schema_id  # the same schema id
    value = AvroDeserializer(producer_client)(msg.value(), SerializationContext(origin, MessageField.VALUE))
    assert value == {"order_id": "ord-edit", "quantity": 2, "note": None, "signature": b"\x01\x02"}
    entry = AuditEntry.objects.filter(action="dead_letter.edit_replay").latest("id")
    assert '-  "quantity": -2' in entry.parameters["body_diff"]
    assert '+  "quantity": 2' in entry.parameters["body_diff"]


def test_it_replays_an_edited_protobuf_body_with_its_message_index(
    kafka, destinations, dlq_topic, produce, producer_client, world
):
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    from tests.formats.test_decoding import shipment_class

    origin = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}-shipments")
    shipment = shipment_class()
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    body = ProtobufSerializer(shipment, producer_client, {"use.deprecated.format": False})(
        shipment(shipment_id="shp-edit", days=40, carriers=["dhl"]), ctx
    )
    produce(dlq_topic, body, FAILURE)
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic, origin=origin)
    (dl,) = ingest_all(source, 1).values()
    client = world.client(world.operator)

    refused = client.post(
        f"/api/v1/dead-letters/{dl.pk}/edit-replay",
        {"body": json.dumps({**dl.decoded["value"], "days": "soon"}), "reason": "r", "idempotency_key": "k1"},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "days" in json.dumps(refused.json()["fields"])
    sent = client.post(
        f"/api/v1/dead-letters/{dl.pk}/edit-replay",
        {"body": json.dumps({**dl.decoded["value"], "days": 4}), "reason": "r", "idempotency_key": "k2"},
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.content

    msg = _read_one(kafka, origin)
    assert msg.value()[:5] == body[:5]  # the same schema id
    value = ProtobufDeserializer(shipment, {"use.deprecated.format": False})(
        msg.value(), SerializationContext(origin, MessageField.VALUE)
    )
    assert (value.shipment_id, value.days, list(value.carriers)) == ("shp-edit", 4, ["dhl"])


def test_it_replays_with_a_chosen_later_version_of_the_schema(
    kafka, destinations, dlq_topic, produce, producer_client, world
):
    origin = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}-orders")
    ctx = SerializationContext(dlq_topic, MessageField.VALUE)
    v1 = AvroSerializer(producer_client, ORDER_AVRO)
    produce(dlq_topic, v1({"order_id": "ord-v", "quantity": 0, "note": None, "signature": b""}, ctx), FAILURE)
    later = json.loads(ORDER_AVRO)
    later["fields"].append({"name": "currency", "type": "string", "default": "EUR"})
    v2 = AvroSerializer(producer_client, json.dumps(later))
    v2({"order_id": "x", "quantity": 1, "note": None, "signature": b"", "currency": "EUR"}, ctx)  # registers v2
    other = AvroSerializer(producer_client, json.dumps({**later, "name": "Other"}))
    other({"order_id": "x", "quantity": 1, "note": None, "signature": b"", "currency": "EUR"},
          SerializationContext("elsewhere", MessageField.VALUE))  # fmt: skip
    subject = f"{dlq_topic}-value"
    v2_id = producer_client.get_latest_version(subject).schema_id
    other_id = producer_client.get_latest_version("elsewhere-value").schema_id
    source = DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic, origin=origin)
    (dl,) = ingest_all(source, 1).values()
    assert dl.decoded["schema"]["version"] == 1
    client = world.client(world.operator)
    edited = {**dl.decoded["value"], "quantity": 3, "currency": "CHF"}

    wrong = client.post(
        f"/api/v1/dead-letters/{dl.pk}/edit-replay",
        {"body": json.dumps(edited), "reason": "r", "idempotency_key": "a", "schema_id": other_id},
        content_type="application/json",
    )
    assert wrong.status_code == 400 and "schema_id" in wrong.json()["fields"], wrong.content
    sent = client.post(
        f"/api/v1/dead-letters/{dl.pk}/edit-replay",
        {"body": json.dumps(edited), "reason": "r", "idempotency_key": "b", "schema_id": v2_id},
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.content

    msg = _read_one(kafka, origin)
    assert int.from_bytes(msg.value()[1:5], "big") == v2_id
    value = AvroDeserializer(producer_client)(msg.value(), SerializationContext(origin, MessageField.VALUE))
    assert (value["quantity"], value["currency"]) == (3, "CHF")


def test_it_names_the_refused_fields_on_the_page(kafka, destinations, dlq_topic, produce, producer_client, world):
    origin = destinations("kafka", f"sy-{uuid.uuid4().hex[:10]}-orders")
    body = AvroSerializer(producer_client, ORDER_AVRO)(
        {"order_id": "ord-page", "quantity": 1, "note": None, "signature": b""},
        SerializationContext(dlq_topic, MessageField.VALUE),
    )
    produce(dlq_topic, body, FAILURE)
    (dl,) = ingest_all(
        DeadLetterSource.objects.create(broker="kafka", destination=dlq_topic, origin=origin), 1
    ).values()
    client = world.client(world.operator)
    bad = json.dumps({**dl.decoded["value"], "quantity": "lots"})
    response = client.post(
        f"/dead-letters/{dl.pk}/edit-replay",
        {"body": bad, "headers": "{}", "reason": "fix", "idempotency_key": str(uuid.uuid4())},
        follow=True,
    )
    page = response.content.decode()
    assert "Not replayed" in page and "quantity" in page and "not a valid int" in page
    dl.refresh_from_db()
    assert dl.replay_count == 0 and dl.status == "new"
